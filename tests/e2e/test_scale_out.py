"""Three processes of one configuration, one of them killed with SIGKILL and restarted again and again.

The source runs in one process at a time (its lease moves on each kill), the other stages spread over the
three by their consumer groups; every expected task must reach its utility, none twice as a new task.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connectors.demo.expected import expected_tasks, interface_events
from connectors.settings import parse_settings
from routing.service_areas import load_service_areas
from simulators.approval import ApprovalSimulator
from simulators.utility import UtilitySimulator
from tests.support import SERVICE_AREAS, running_utility, utility_config, wait_until

pytestmark = pytest.mark.integration

UTILITIES = (
    "yantai-water", "yantai-gas", "zhaoyuan-gas", "yantai-heat",
    "liaocheng-water", "liaocheng-gas", "jinan-heat", "jinan-water",
)  # fmt: skip
PROCESSES = 3
KILLS = 10
EVENTS_PER_ROUND = 30


@pytest.fixture
def utilities() -> Iterator[dict[str, tuple[UtilitySimulator, str]]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(running_utility(name)) for name in UTILITIES}


@pytest.fixture
def approval() -> Iterator[tuple[ApprovalSimulator, str]]:
    simulator = ApprovalSimulator(seed=77)
    url = simulator.start()
    yield simulator, url
    simulator.stop()


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config)]
    with log.open("ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())


def test_three_processes_survive_ten_kills_and_deliver_every_task_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    unique_prefix: str,
    utilities: dict[str, tuple[UtilitySimulator, str]],
    approval: tuple[ApprovalSimulator, str],
) -> None:
    """SIGKILL a random process of three and restart it, ten times, under traffic: every task arrives, once."""
    simulator, url = approval
    document = {
        "kafka": {"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "session_timeout_ms": 6000},
        "observability": {"log_format": "json", "metrics_port": 0},
        "sources": {"gonggai_interface": {"base_url": url, "token": "approval-token", "poll_interval_s": 0.1}},
        "routing": {"service_areas": str(SERVICE_AREAS)},
        "utilities": [utility_config(name, utilities[name][1]) for name in UTILITIES],
    }
    config = tmp_path / "ubridge.yaml"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    logs = [tmp_path / f"process-{n}.log" for n in range(PROCESSES)]
    processes = [start(config, log) for log in logs]
    rng = random.Random(11)
    traffic_done = threading.Event()

    def traffic() -> None:
        for _ in range(KILLS + 2):
            simulator.generate(EVENTS_PER_ROUND, invalid_rate=0.02, unserved_rate=0.05)
            time.sleep(1.5)
        traffic_done.set()

    feeder = threading.Thread(target=traffic, daemon=True)
    feeder.start()
    try:
        for _ in range(KILLS):
            time.sleep(2.0)
            victim = rng.randrange(PROCESSES)
            processes[victim].send_signal(signal.SIGKILL)
            processes[victim].wait(timeout=10)
            processes[victim] = start(config, logs[victim])
        traffic_done.wait(timeout=60)
        settings = parse_settings(document, origin="test")
        now = datetime.now(UTC)
        published = simulator.events()
        events = interface_events(
            published, source="gonggai-interface", status_codes=settings.routing.status_codes, now=now
        )
        expectation = expected_tasks(events, published, load_service_areas(SERVICE_AREAS), now=now)

        def delivered() -> bool:
            return all(utilities[u][0].stats().unique >= len(expectation.tasks.get(u, set())) for u in UTILITIES)

        wait_until(delivered, timeout_s=180, what="every expected task at its utility")
        # the process restarted last may still be starting: the other two can finish the delivery first
        wait_until(
            lambda: all('"event": "stage_started"' in log.read_text(encoding="utf-8") for log in logs),
            timeout_s=120,
            what="every process running stages again",
        )
        assert [p.poll() for p in processes] == [None] * PROCESSES, "a process exited by itself"
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=40)
    for name in UTILITIES:
        received = [task.task_id for task in utilities[name][0].tasks()]
        assert (name, sorted(received)) == (name, sorted(expectation.tasks.get(name, set())))
    assert sum(len(expectation.tasks.get(u, set())) for u in UTILITIES) > 100
    texts = [log.read_text(encoding="utf-8") for log in logs]
    # The source ran in one process at a time: its lease was taken, and no producer was ever fenced.
    assert sum(text.count('"event": "source_lease_taken"') for text in texts) >= 1
    assert [text for text in texts if "ProducerFenced" in text] == []
    assert [line for text in texts for line in text.splitlines() if not line.startswith("{")] == []
