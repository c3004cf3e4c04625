"""Source failover: how long a source is without a runner when the process running it is killed with SIGKILL.

Two ``ubridge run`` processes of one configuration (the demo's, exchange database source) stand side by
side; the one whose ``ubridge_source_owner`` is 1 is killed with SIGKILL, and the time until the other
reports 1 is the failover time. Kafka's group coordinator notices the dead member after
``kafka.session_timeout_ms`` (10 s by default), so that is the floor; what ubridge adds is the rest. The
killed process is started again as the new standby before the next round.
"""

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from benchmarks.memory import wait_ready
from connectors.demo.ports import free_port
from connectors.demo.runner import Demo, DemoOptions

_SOURCE = "gonggai-spgl"


@dataclass(frozen=True)
class Failover:
    """Seconds without a source runner, per kill."""

    seconds: tuple[float, ...]
    session_timeout_s: float

    @property
    def median(self) -> float:
        """The median of the rounds."""
        return statistics.median(self.seconds)


def failover_seconds(bootstrap: str, prefix: str, *, rounds: int) -> Failover:
    """Kill the source's owner ``rounds`` times; the time until the standby runs it, each time."""
    workdir = Path(tempfile.mkdtemp(prefix="ubridge-bench-failover-"))
    options = DemoOptions(
        events=0,
        rate_per_s=1,
        bootstrap=bootstrap,
        workdir=workdir,
        metrics_port=0,
        timeout_s=60,
        seed=13,
        faults=False,
        topic_prefix=prefix,
    )
    demo = Demo(options, Console(stderr=True, quiet=True))
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        settings = demo.configure()
        document = yaml.safe_load(demo.config_path.read_text(encoding="utf-8"))
        ports = [free_port(), free_port()]
        configs = []
        for index, port in enumerate(ports):
            document["observability"]["metrics_port"] = port
            document["sources"]["aishandong_gateway"]["port"] = free_port()
            document["status_callbacks"]["port"] = free_port()
            path = workdir / f"ubridge-{index}.yaml"
            path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
            configs.append(path)
        for index in range(2):
            processes[index] = _start(configs[index], workdir / f"ubridge-{index}.log")
            wait_ready(f"http://127.0.0.1:{ports[index]}", processes[index])
        seconds = []
        for _ in range(rounds):
            owner = _wait_for_owner(ports, processes, timeout_s=120)
            os.kill(processes[owner].pid, signal.SIGKILL)
            killed_at = time.monotonic()
            processes[owner].wait()
            standby = 1 - owner
            _wait_for_owner([ports[standby]], {0: processes[standby]}, timeout_s=120)
            seconds.append(time.monotonic() - killed_at)
            processes[owner] = _start(configs[owner], workdir / f"ubridge-{owner}.log")
            wait_ready(f"http://127.0.0.1:{ports[owner]}", processes[owner])
        return Failover(tuple(seconds), settings.kafka.session_timeout_ms / 1000)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
        demo.stop()


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config)]
    with log.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603 - our own CLI


def _wait_for_owner(ports: list[int], processes: dict[int, subprocess.Popen[bytes]], *, timeout_s: float) -> int:
    """The index (into ``ports``) of the process that reports owning the source."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for index, port in enumerate(ports):
            if processes[index].poll() is None and _owns(port):
                return index
        time.sleep(0.1)
    message = f"no process took the {_SOURCE} source within {timeout_s} s"
    raise TimeoutError(message)


def _owns(port: int) -> bool:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    for family in text_string_to_metric_families(text):
        if family.name == "ubridge_source_owner":
            return any(s.labels.get("stage") == _SOURCE and s.value == 1 for s in family.samples)
    return False
