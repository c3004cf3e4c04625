"""Memory under sustained load: the resident set of one ``ubridge run`` process after 10,000 and 50,000 events.

The demo's traffic (approval-system events through the exchange database, 爱山东 applications alongside,
utilities that work through their tasks and report back in compressed office time) is offered at a steady
rate to a ``ubridge run`` of its own, with every stage in it, so the figure is that process tree's memory
alone (the parent and the children it spreads the stages over, summed): the simulators and this harness live
in other processes. The ledger keeps closed entries for
one simulated day, so the run sees tasks open, close and expire; what must stay flat is everything else.

RSS is read from ``/proc/<pid>/status`` of every process of the tree when its normaliser has taken in 10,000
and 50,000 events; the two must differ by less than 20% (issue 11). The peak (``VmHWM``) is printed too.
"""

import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from connectors.demo.ports import free_port
from connectors.demo.runner import Demo, DemoOptions

_KIB_PER_MIB = 1024


@dataclass
class MemoryFigures:
    """RSS in MiB at each checkpoint (events taken in by the normaliser), and the process's peak."""

    rss_mib: dict[int, float] = field(default_factory=dict)
    peak_mib: float = 0.0
    events_per_s: float = 0.0


def memory_under_load(
    bootstrap: str,
    prefix: str,
    *,
    checkpoints: tuple[int, ...],
    rate_per_s: float,
    source: Literal["spgl", "interface"] = "spgl",
    progress: bool = True,
) -> MemoryFigures:
    """Offer ``max(checkpoints)`` events at ``rate_per_s`` to a separate ubridge process; RSS at each checkpoint."""
    workdir = Path(tempfile.mkdtemp(prefix="ubridge-bench-memory-"))
    total = max(checkpoints)
    options = DemoOptions(
        events=total,
        rate_per_s=rate_per_s,
        bootstrap=bootstrap,
        workdir=workdir,
        metrics_port=free_port(),
        timeout_s=600,
        seed=11,
        faults=False,
        topic_prefix=prefix,
        source=source,
    )
    demo = Demo(options, Console(stderr=True, quiet=not progress))
    process: subprocess.Popen[bytes] | None = None
    try:
        demo.configure()
        document = yaml.safe_load(demo.config_path.read_text(encoding="utf-8"))
        document["ledger"]["closed_retention_days"] = 1
        document["observability"]["log_level"] = "warning"
        demo.config_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(demo.config_path)]
        with (workdir / "ubridge.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own CLI
        metrics_url = f"http://127.0.0.1:{options.metrics_port}"
        wait_ready(metrics_url, process)
        demo.drive_utilities()
        feeder = threading.Thread(target=demo.feed, name="bench-memory-feed", daemon=True)
        started = time.monotonic()
        feeder.start()
        normaliser = "normaliser-gonggai-spgl" if source == "spgl" else "normaliser-gonggai"
        figures = _watch(process.pid, metrics_url, normaliser, checkpoints, progress=progress)
        figures.events_per_s = total / (time.monotonic() - started)
        feeder.join(timeout=60)  # its last applications may still be on their way to the gateway
        return figures
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        demo.stop()


def _watch(
    pid: int, metrics_url: str, normaliser: str, checkpoints: tuple[int, ...], *, progress: bool
) -> MemoryFigures:
    figures = MemoryFigures()
    pending = sorted(checkpoints)
    last_report = 0.0
    with httpx.Client(base_url=metrics_url, timeout=10) as http:
        while pending:
            taken = _records_in(http, normaliser)
            while pending and taken >= pending[0]:
                figures.rss_mib[pending.pop(0)] = _tree_mib(pid, "VmRSS")
            if progress and time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                print(f"# memory: {taken:.0f} events in, RSS {_tree_mib(pid, 'VmRSS'):.0f} MiB", file=sys.stderr)
            time.sleep(0.5)
    figures.peak_mib = _tree_mib(pid, "VmHWM")
    return figures


def _records_in(http: httpx.Client, stage: str) -> float:
    text = http.get("/metrics").raise_for_status().text
    for family in text_string_to_metric_families(text):
        if family.name == "ubridge_records_in":
            return sum(s.value for s in family.samples if s.labels.get("stage") == stage and s.name.endswith("_total"))
    return 0.0


def _tree_mib(pid: int, name: str) -> float:
    """``name`` of ``pid`` and of every process under it, summed: ``ubridge run`` runs its stages in children.

    Summed peaks (``VmHWM``) are each process's own high-water mark, an upper bound of the tree's peak.
    """
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += _status_mib(current, name)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # it exited between the listing and the reading: a child being restarted
    return total


def _status_mib(pid: int, name: str) -> float:
    match = re.search(rf"^{name}:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        message = f"/proc/{pid}/status has no {name}"
        raise RuntimeError(message)
    return int(match.group(1)) / _KIB_PER_MIB


def wait_ready(metrics_url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until ubridge's /readyz answers 200; raises if it exits or takes over 120 s."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = f"ubridge exited with {process.returncode} before it was ready (see its log in the workdir)"
            raise RuntimeError(message)
        try:
            if httpx.get(f"{metrics_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    message = "ubridge was not ready within 120 s"
    raise TimeoutError(message)
