import json
from collections.abc import Iterator

import pytest

from connectors.app import App
from connectors.settings import Settings
from simulators.approval import ApprovalSimulator
from tests.support import read_topic, settings_for, wait_until

pytestmark = pytest.mark.integration


class Upstream:
    def __init__(self) -> None:
        self.simulator = ApprovalSimulator(seed=21)
        self.url = self.simulator.start()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    running = Upstream()
    yield running
    running.simulator.stop()


def source_settings(bootstrap: str, prefix: str, url: str) -> Settings:
    source = {"base_url": url, "token": "approval-token", "page_size": 100, "poll_interval_s": 0.1,
              "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.2}}  # fmt: skip
    return settings_for(bootstrap, prefix, sources={"gonggai_interface": source})


def raw_seqs(settings: Settings) -> list[int]:
    records = read_topic(settings.kafka.bootstrap, settings.topic("raw_gonggai"))
    return [json.loads(r.value)["seq"] for r in records]


def run_source_until(settings: Settings, expected: int) -> None:
    app = App(settings, only=["gonggai-interface"], serve_metrics=False)
    app.start()
    try:
        wait_until(lambda: len(raw_seqs(settings)) >= expected, timeout_s=30, what=f"{expected} raw records")
    finally:
        app.stop()
        assert app.wait(timeout_s=15)
    assert not app.failed


def test_restart_resumes_from_the_committed_cursor(
    kafka_bootstrap: str, unique_prefix: str, upstream: Upstream
) -> None:
    """Stopping and restarting the source loses nothing and emits nothing twice."""
    settings = source_settings(kafka_bootstrap, unique_prefix, upstream.url)
    upstream.simulator.generate(250)
    run_source_until(settings, 250)
    upstream.simulator.generate(120)
    run_source_until(settings, 370)
    assert sorted(raw_seqs(settings)) == [e["seq"] for e in upstream.simulator.events()]


def test_upstream_faults_are_retried_without_loss_or_duplicates(
    kafka_bootstrap: str, unique_prefix: str, upstream: Upstream
) -> None:
    """With a third of the approval system's answers failing, every event still arrives exactly once."""
    settings = source_settings(kafka_bootstrap, unique_prefix, upstream.url)
    upstream.simulator.set_faults(error_rate=0.3, error_status=503)
    upstream.simulator.generate(300)
    run_source_until(settings, 300)
    assert sorted(raw_seqs(settings)) == [e["seq"] for e in upstream.simulator.events()]


def test_raw_records_are_keyed_by_project_and_stamped(
    kafka_bootstrap: str, unique_prefix: str, upstream: Upstream
) -> None:
    """Raw records keep the JSON as received, keyed by project code, with source headers."""
    settings = source_settings(kafka_bootstrap, unique_prefix, upstream.url)
    upstream.simulator.generate(5)
    run_source_until(settings, 5)
    record = read_topic(kafka_bootstrap, settings.topic("raw_gonggai"))[0]
    event = json.loads(record.value)
    assert record.key == event["xmdm"].encode()
    assert dict(record.headers)["ubridge.source"] == b"gonggai-interface"
    assert event in upstream.simulator.events()
