from collections.abc import Iterator

import pytest

from connectors.app import App
from connectors.runtime.kafka import make_producer
from connectors.settings import Settings
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import make_task, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

TASKS_EACH = 40


@pytest.fixture
def utilities() -> Iterator[dict[str, tuple[UtilitySimulator, str]]]:
    sims = {u: UtilitySimulator(u, token=f"token-{u}") for u in ("yantai-water", "jinan-heat")}
    running = {u: (sim, sim.start()) for u, sim in sims.items()}
    yield running
    for sim, _ in running.values():
        sim.stop()


def publish_tasks(settings: Settings, utilities: list[str]) -> None:
    producer = make_producer(settings.kafka)
    codec = Codec.default()
    for n in range(TASKS_EACH):
        for utility in utilities:
            task = make_task(utility, n, project=f"2026-370602-47-01-{n:06d}")
            producer.send(
                settings.task_topic(utility),
                key=task["project_code"].encode(),
                value=codec.encode("UtilityTask", task),
            )  # type: ignore[union-attr]
    producer.flush()
    producer.close()


def test_one_utility_outage_does_not_delay_another(
    kafka_bootstrap: str, unique_prefix: str, utilities: dict[str, tuple[UtilitySimulator, str]]
) -> None:
    """While jinan-heat is down, yantai-water gets every task; jinan-heat gets all of its own once back."""
    down, _ = utilities["jinan-heat"]
    up, _ = utilities["yantai-water"]
    down.set_faults(outage_s=120.0, retry_after_s=0.2)
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        utilities=[utility_config(u, url) for u, (_, url) in utilities.items()],
    )
    app = App(settings, only=["sink-yantai-water", "sink-jinan-heat"], serve_metrics=False)
    app.start()
    try:
        publish_tasks(settings, list(utilities))
        wait_until(lambda: down.stats().faults_injected > 0, timeout_s=30, what="jinan-heat's sink to meet the outage")
        wait_until(lambda: up.stats().unique == TASKS_EACH, timeout_s=30, what="yantai-water's tasks")
        assert down.stats().unique == 0
        down.set_faults()
        wait_until(
            lambda: down.stats().unique == TASKS_EACH,
            timeout_s=30,
            what="jinan-heat's tasks after the outage",
        )
    finally:
        app.stop()
        assert app.wait(timeout_s=15)
    assert not app.failed
    assert {t.task_id for t in up.tasks()} == {f"yantai-water-{n:05d}" for n in range(TASKS_EACH)}
    assert up.stats().repeats == 0


def test_an_outage_longer_than_the_poll_interval_does_not_kill_the_sink(
    kafka_bootstrap: str, unique_prefix: str, utilities: dict[str, tuple[UtilitySimulator, str]]
) -> None:
    """A batch stuck in retries past max.poll.interval.ms loses its commit, not its stage: every task arrives."""
    down, url = utilities["jinan-heat"]
    down.set_faults(outage_s=9.0, retry_after_s=0.5)
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        kafka={"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "max_poll_interval_ms": 3000},
        utilities=[utility_config("jinan-heat", url)],
    )
    app = App(settings, only=["sink-jinan-heat"], serve_metrics=False)
    app.start()
    try:
        publish_tasks(settings, ["jinan-heat"])
        wait_until(lambda: down.stats().unique == TASKS_EACH, timeout_s=60, what="jinan-heat's tasks after the outage")
    finally:
        app.stop()
        assert app.wait(timeout_s=15)
    assert not app.failed
