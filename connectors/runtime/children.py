"""One supervised child process of ``ubridge run``: a group of stages in an interpreter of its own.

The child is ``ubridge run --child`` on the same configuration, limited to its group's stages. It binds its
health endpoint to a free loopback port and writes the port to the file named by ``UBRIDGE_CHILD_STATE``;
the parent asks it for ``/healthz`` and ``/readyz`` there. Its metrics reach the parent through
prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``), so the parent's ``/metrics`` sums the
children's series as if one process had them.

A child that exits when nobody asked is started again, after a backoff that doubles up to 30 s; one that
exits with status 1 (a stage failed for good) or 2 (the configuration is wrong) is not, and says so to the
parent. Each child asks the kernel to kill it when the parent dies (``PR_SET_PDEATHSIG``,
:func:`die_with_parent`), so a SIGKILL of ``ubridge run`` takes its stages with it, as it did when they were
threads.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import httpx
import structlog
from prometheus_client import Counter, multiprocess

log = structlog.get_logger(__name__)

STATE_ENV: Final = "UBRIDGE_CHILD_STATE"
PARENT_ENV: Final = "UBRIDGE_PARENT_PID"
_PR_SET_PDEATHSIG: Final = 1
_BACKOFF_S: Final = (1.0, 30.0)
_ASK_TIMEOUT_S: Final = 2.0
FATAL_EXITS: Final = frozenset({1, 2})  # a stage failed for good, or the configuration is wrong


def die_with_parent() -> bool:
    """In a child at start: have the kernel SIGKILL it when its parent goes (Linux); False if already gone.

    The parent's pid comes in ``UBRIDGE_PARENT_PID``: a parent that died before the request was made left
    the child with another parent, and the child must not run orphaned.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.environ.get(PARENT_ENV) == str(os.getppid())


class Child:
    """Runs one group's stages in a child process, restarting it when it dies unasked.

    Args:
        index: The group's number (names its thread and its state file).
        stages: The stages it runs.
        command: The ``ubridge run`` command line before the ``--stage`` options.
        workdir: Where its state file goes.
        metrics_dir: prometheus-client's multiprocess directory, shared by the children.
        restarts: Counts restarts per group.
        on_fatal: Told the exit status when the child exits for good (1 or 2).
        stop: Set when the parent shuts down.
    """

    def __init__(
        self,
        index: int,
        stages: Sequence[str],
        *,
        command: Sequence[str],
        workdir: Path,
        metrics_dir: Path,
        restarts: Counter,
        on_fatal: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        self.name = f"group-{index}"
        self.stages = tuple(stages)
        self._command = [*command, *(arg for stage in stages for arg in ("--stage", stage))]
        self._state = workdir / f"{self.name}.port"
        self._env = {
            **os.environ,
            STATE_ENV: str(self._state),
            PARENT_ENV: str(os.getpid()),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        self._metrics_dir = metrics_dir
        self._restarts = restarts.labels(self.name)
        self._on_fatal = on_fatal
        self._stop = stop
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        """Start the child and start it again whenever it exits unasked, until ``stop``."""
        pause = _BACKOFF_S[0]
        while not self._stop.is_set():
            process = self._spawn()
            code = process.wait()
            multiprocess.mark_process_dead(process.pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
            if self._stop.is_set():
                return
            if code in FATAL_EXITS:
                log.error("child_failed", group=self.name, exit_status=code, stages=list(self.stages))
                self._on_fatal(code)
                return
            log.warning("child_exited", group=self.name, exit_status=code, restart_in_s=pause)
            if self._stop.wait(pause):
                return
            pause = min(_BACKOFF_S[1], pause * 2)
            self._restarts.inc()

    def terminate(self) -> None:
        """Ask the child to drain and stop (SIGTERM)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the child at once (after a drain that took too long)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()

    def ask(self, path: str) -> Mapping[str, Any] | None:
        """The child's answer to ``/healthz`` or ``/readyz``; None while it does not answer."""
        try:
            port = int(self._state.read_text(encoding="ascii"))
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=_ASK_TIMEOUT_S)
            body: Mapping[str, Any] = answer.json()
        except (OSError, ValueError, httpx.HTTPError):
            return None
        return body

    def _spawn(self) -> "subprocess.Popen[bytes]":
        self._state.unlink(missing_ok=True)
        with self._lock:
            self._process = subprocess.Popen(self._command, env=self._env)  # noqa: S603 - our own interpreter
        log.info("child_started", group=self.name, pid=self._process.pid, stages=list(self.stages))
        return self._process
