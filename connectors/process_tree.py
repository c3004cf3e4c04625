"""``ubridge run`` over several processes: the parent supervises one child per group of stages.

Each child is an :class:`~connectors.app.App` for its group (:mod:`connectors.runtime.children`), so every
guarantee of a stage is the same as in one process: its consumer group, its transactions, its drain on
SIGTERM. The parent runs no stage. It serves what one process served on ``observability.metrics_port``:
``/metrics`` summed over the children (prometheus-client's multiprocess mode), ``/healthz`` and ``/readyz``
merged from the children's answers (a child that does not answer fails both for its stages), and the admin
API on ``admin.port``. SIGTERM is passed on to every child, which drains and commits; a child still running
after the drain's deadline is killed, its uncommitted work redone by the next owner.

Example:
    >>> tree = ProcessTree(settings, config_path, groups=[["normaliser", "sink-a"], ["router", "sink-b"]])
    >>> tree.start()
    >>> tree.wait()          # until SIGTERM (tree.stop())
"""

import platform
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from time import monotonic
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Info, ProcessCollector, multiprocess

from connectors.app import serve_admin
from connectors.runtime.build import VERSION
from connectors.runtime.children import Child
from connectors.runtime.health import HealthServer
from connectors.runtime.web_server import WebServer
from connectors.settings import Settings

log = structlog.get_logger(__name__)

_DRAIN_MARGIN_S: Final = 5.0  # beyond the children's own shutdown deadline


class ProcessTree:
    """Starts, watches and stops the children; serves their metrics and health as one.

    Args:
        settings: The validated configuration.
        config: Its file, which every child reads again.
        groups: The stages of each child.
        shutdown_s: How long a child may take to drain after SIGTERM.
    """

    def __init__(self, settings: Settings, config: Path, *, groups: Sequence[Sequence[str]], shutdown_s: float) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.exit_status = 0
        self._shutdown_s = shutdown_s
        self._workdir = Path(tempfile.mkdtemp(prefix="ubridge-run-"))
        metrics_dir = self._workdir / "metrics"
        metrics_dir.mkdir()
        self._metrics_dir = metrics_dir
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        ProcessCollector(registry=self.registry)
        build = Info("ubridge_build", "The running ubridge's version and Python.", registry=self.registry)
        build.info({"version": VERSION, "python": platform.python_version()})
        restarts = Counter(
            "ubridge_child_restarts_total",
            "Times a child process of ubridge run was started again after it exited unasked.",
            ["group"],
            registry=self.registry,
        )
        command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config), "--child"]
        self.children = [
            Child(
                index,
                stages,
                command=command,
                workdir=self._workdir,
                metrics_dir=metrics_dir,
                restarts=restarts,
                on_fatal=self._fatal,
                stop=self.stop_event,
            )
            for index, stages in enumerate(groups, start=1)
        ]
        self._threads: list[threading.Thread] = []
        self.health: HealthServer | None = None
        self.admin: WebServer | None = None
        self._closers: list[Any] = []

    def start(self) -> None:
        """Serve metrics and health, serve the admin API, start every child."""
        obs = self.settings.observability
        self.health = HealthServer(
            self.registry, self._live, self._ready, obs.metrics_host, obs.metrics_port, detail=self._detail
        )
        self.health.start()
        log.info("metrics_serving", url=f"http://{obs.metrics_host}:{self.health.port}/metrics")
        served = serve_admin(self.settings)
        if served is not None:
            self.admin, service = served
            self._closers.append(service)
        for child in self.children:
            thread = threading.Thread(target=child.run, name=child.name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("children_started", groups={child.name: list(child.stages) for child in self.children})

    def stop(self) -> None:
        """Ask every child to drain and stop."""
        self.stop_event.set()
        for child in self.children:
            child.terminate()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every child ended; False if ``timeout_s`` passed first. Cleans up once all ended."""
        deadline = None if timeout_s is None else monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done:
            self._close()
        return done

    def drain(self) -> None:
        """After :meth:`stop`: wait for the children's drain, kill those past its deadline."""
        if not self.wait(timeout_s=self._shutdown_s + _DRAIN_MARGIN_S):
            busy = [child.name for child in self.children]
            log.warning("children_killed", after_s=self._shutdown_s + _DRAIN_MARGIN_S, groups=busy)
            for child in self.children:
                child.kill()
            self.wait(timeout_s=_DRAIN_MARGIN_S)

    def _fatal(self, status: int) -> None:
        self.exit_status = max(self.exit_status, status)
        self.stop()

    def _close(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        for closer in self._closers:
            closer.close()
        self._closers.clear()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _merged(self, path: str) -> tuple[dict[str, bool], dict[str, Any]]:
        checks: dict[str, bool] = {}
        detail: dict[str, Any] = {"children": {}}
        for child in self.children:
            answer = child.ask(path)
            if answer is None:
                checks.update({stage: False for stage in child.stages})
                detail["children"][child.name] = {"answering": False, "stages": list(child.stages)}
                continue
            checks.update({name: bool(ok) for name, ok in answer.get("stages", {}).items()})
            detail["children"][child.name] = {"answering": True, **answer.get("detail", {})}
        return checks, detail

    def _live(self) -> Mapping[str, bool]:
        return self._merged("/healthz")[0]

    def _ready(self) -> Mapping[str, bool]:
        return self._merged("/readyz")[0]

    def _detail(self) -> Mapping[str, Any]:
        return self._merged("/readyz")[1]
