import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.settings import Settings
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import YANTAI_WATER_AREAS, make_task, running_utility, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

TASKS = 300
UTILITY = "yantai-water"


@pytest.fixture
def utility() -> Iterator[tuple[UtilitySimulator, str]]:
    with running_utility(UTILITY) as running:
        yield running


def write_config(tmp_path: Path, bootstrap: str, prefix: str, url: str) -> tuple[Path, Settings]:
    document = {
        "kafka": {
            "bootstrap": bootstrap,
            "topic_prefix": prefix,
            "session_timeout_ms": 6000,
            "max_poll_records": 20,
        },
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(YANTAI_WATER_AREAS)},
        "utilities": [utility_config(UTILITY, url)],
    }
    path = tmp_path / "ubridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path, settings_for(bootstrap, prefix, utilities=document["utilities"], kafka=document["kafka"])


def sink_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "--config",
        str(config),
        "--stage",
        f"sink-{UTILITY}",
    ]
    with log.open("ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())


def test_kill_9_mid_stream_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, utility: tuple[UtilitySimulator, str]
) -> None:
    """A sink killed with -9 mid-stream and restarted delivers every task; repeats are idempotent."""
    sim, url = utility
    sim.set_faults(latency_ms=15, fail_after_store_rate=0.05)
    config, settings = write_config(tmp_path, kafka_bootstrap, unique_prefix, url)
    ensure_topics(settings.kafka, [TopicSpec(settings.task_topic(UTILITY), 3)])
    producer = make_producer(settings.kafka)
    for n in range(TASKS):
        task = make_task(UTILITY, n, project=f"2026-370602-47-01-{n % 30:06d}")
        producer.send(
            settings.task_topic(UTILITY),
            key=task["project_code"].encode(),
            value=Codec.default().encode("UtilityTask", task),
        )  # type: ignore[union-attr]
    producer.flush()
    producer.close()

    log = tmp_path / "sink.log"
    first = sink_process(config, log)
    wait_until(lambda: sim.stats().unique >= TASKS // 4, timeout_s=60, what="a quarter of the tasks")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert sim.stats().unique < TASKS, "the kill came too late to test anything"

    second = sink_process(config, log)
    try:
        wait_until(lambda: sim.stats().unique == TASKS, timeout_s=90, what="every task after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    received = [t.task_id for t in sim.tasks()]
    assert sorted(received) == [f"{UTILITY}-{n:05d}" for n in range(TASKS)]
    stats = sim.stats()
    assert stats.repeats > 0, "a kill mid-batch and lost acknowledgements must cause re-deliveries"
    # Re-deliveries are bounded: the batch in flight at the kill plus the acknowledgements the utility lost.
    assert stats.repeats <= stats.faults_injected + 20
    assert (stats.key_conflicts, stats.revisions) == (0, 0), "a repeat is sent with its revision's very body"
    assert "13912345678" not in log.read_text(encoding="utf-8")
