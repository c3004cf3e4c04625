import threading
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from connectors.registry import Context, Runnable, stage_specs, topics
from connectors.router.stage import ProjectRouter
from connectors.runtime.kafka import ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.settings import Settings
from routing.gonggai import normalise
from routing.records import UtilityTask
from schemas import Codec
from tests.support import read_topic, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CODEC = Codec.default()
PROJECT = "2026-370602-47-01-000123"
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def event(seq: int, stage: int, instance: str, *, withdrawn: bool = False) -> bytes:
    """A granted approval-system event of PROJECT (water only, 芝罘区), or its withdrawal, encoded."""
    fields: dict[str, Any] = {
        "seq": seq,
        "xmdm": PROJECT,
        "xmmc": "幸福里三期",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": stage,
        "spsxslbm": instance,
        "blzt": 11,
        "blsj": f"2026-11-2{stage} 10:00:00",
        "sjyxbs": 0 if withdrawn else 1,
        "xqxx": [{"fwlx": "供水"}],
    }
    return CODEC.encode("ProjectEvent", dict(normalise(fields, source="gonggai-interface", ingested_at=INGESTED)))


class Router:
    """The configured router stage (as ``ubridge run`` builds it) on the test broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ensure_topics(settings.kafka, topics(settings))
        (self.spec,) = [spec for spec in stage_specs(settings) if spec.name == ProjectRouter.stage]
        self.registry = CollectorRegistry()

    def produce(self, *values: bytes) -> None:
        producer = make_producer(self.settings.kafka)
        for value in values:
            producer.send(self.settings.topic("project_events"), key=PROJECT.encode(), value=value)
        producer.flush()
        producer.close()

    def start(self) -> tuple[Runnable, threading.Event, threading.Thread]:
        stop = threading.Event()
        self.registry = CollectorRegistry()
        loop = self.spec.build(Context(self.settings, Metrics(self.registry), stop, CODEC))
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        return loop, stop, thread

    def records_in(self) -> float:
        return self.registry.get_sample_value("ubridge_records_in_total", {"stage": ProjectRouter.stage}) or 0.0

    def tasks(self) -> list[tuple[str, int | None]]:
        records = read_topic(self.settings.kafka.bootstrap, self.settings.task_topic("yantai-water"))
        decoded = [cast(UtilityTask, CODEC.decode_as("UtilityTask", r.value)) for r in records]
        return [(t["action"], t["trigger_stage"]) for t in decoded]

    def grants(self) -> list[tuple[bytes, bool]]:
        """(key, is a tombstone) of every grants-topic record, in order."""
        records = read_topic(self.settings.kafka.bootstrap, self.settings.topic("router_grants"))
        return [(r.key, r.value is None) for r in sorted(records, key=lambda r: r.offset)]


def stopped(run: tuple[Runnable, threading.Event, threading.Thread]) -> None:
    _, stop, thread = run
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert not run[0].state.failed


def test_the_router_keeps_the_standing_grants_across_a_restart(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Grant 1 and 2; restarted: withdraw 1 → UPDATE as stage 2, an unknown one filtered, 2 → CANCEL, tombstone."""
    router = Router(
        settings_for(kafka_bootstrap, unique_prefix, utilities=[utility_config("yantai-water", "http://127.0.0.1:9")])
    )
    router.produce(event(1, 1, "SL-1"), event(2, 2, "SL-2"))
    first = router.start()
    wait_until(lambda: router.records_in() >= 2, timeout_s=60, what="the two grants routed")
    stopped(first)
    assert router.tasks() == [("CREATE", 1), ("CREATE", 2)]

    # A new instance knows nothing but what the grants topic holds; SL-9 was never granted.
    router.produce(event(3, 1, "SL-1", withdrawn=True), event(4, 1, "SL-9", withdrawn=True))
    second = router.start()
    wait_until(lambda: router.records_in() >= 2, timeout_s=60, what="the first withdrawal routed")
    wait_until(lambda: len(router.tasks()) >= 3, timeout_s=20, what="the update")
    router.produce(event(5, 2, "SL-2", withdrawn=True))
    wait_until(lambda: len(router.tasks()) >= 4, timeout_s=30, what="the cancellation")
    stopped(second)
    assert router.tasks() == [("CREATE", 1), ("CREATE", 2), ("UPDATE", 2), ("CANCEL", 2)]
    grants = router.grants()
    assert len({key for key, _ in grants}) == 1  # one water task, one entry
    assert [tombstone for _, tombstone in grants] == [False, False, False, True]
    filtered = {"stage": ProjectRouter.stage, "reason": "withdrawal_of_no_standing_grant"}
    assert router.registry.get_sample_value("ubridge_records_filtered_total", filtered) == 1.0
