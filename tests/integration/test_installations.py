"""Two installations of ubridge on one cluster, told apart by ``kafka.topic_prefix`` alone."""

import json
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from connectors.app import App
from connectors.settings import Settings
from simulators.approval import ApprovalSimulator
from tests.support import read_topic, settings_for, wait_until

pytestmark = pytest.mark.integration

EVENTS = 150


@pytest.fixture
def upstream() -> Iterator[str]:
    simulator = ApprovalSimulator(seed=31)
    url = simulator.start()
    simulator.generate(EVENTS)
    yield url
    simulator.stop()


def installation(bootstrap: str, prefix: str, url: str) -> Settings:
    source = {"base_url": url, "token": "approval-token", "page_size": 20, "poll_interval_s": 0.1}
    return settings_for(bootstrap, prefix, sources={"gonggai_interface": source})


def test_two_installations_run_the_same_source_without_fencing_each_other(
    kafka_bootstrap: str, unique_prefix: str, upstream: str
) -> None:
    """Same source name, same cluster, different prefixes: both deliver everything and neither restarts."""
    settings = [installation(kafka_bootstrap, f"{unique_prefix}{name}.", upstream) for name in ("east", "west")]
    registries = [CollectorRegistry(), CollectorRegistry()]
    apps = [
        App(one, only=["gonggai-interface"], registry=registry, serve_metrics=False)
        for one, registry in zip(settings, registries, strict=True)
    ]
    for app in apps:
        app.start()
    try:
        for one in settings:
            topic = one.topic("raw_gonggai")
            wait_until(lambda: len(read_topic(kafka_bootstrap, topic)) >= EVENTS, timeout_s=60, what=topic)  # noqa: B023
    finally:
        for app in apps:
            app.stop()
        for app in apps:
            assert app.wait(timeout_s=30)
    restarts = [r.get_sample_value("ubridge_stage_restarts_total", {"stage": "gonggai-interface"}) for r in registries]
    seqs = [
        sorted(json.loads(r.value)["seq"] for r in read_topic(kafka_bootstrap, s.topic("raw_gonggai")))
        for s in settings
    ]
    assert (restarts, [app.failed for app in apps], seqs[0] == seqs[1], len(seqs[0])) == (
        [None, None],
        [False, False],
        True,
        EVENTS,
    )
