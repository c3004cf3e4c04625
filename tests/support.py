"""Helpers shared by integration and end-to-end tests (real broker, real simulators)."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.settings import Settings, parse_settings
from routing.records import TaskStatus, UtilityTask
from simulators.utility import UtilitySimulator

ROOT = Path(__file__).resolve().parents[1]
SERVICE_AREAS = ROOT / "deploy" / "config" / "service-areas.yaml"
YANTAI_WATER_AREAS = ROOT / "tests" / "data" / "service-areas-yantai-water.yaml"  # yantai-water alone
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; fail naming ``what`` when it is still false after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            message = f"timed out after {timeout_s} s waiting for {what}"
            raise AssertionError(message)
        time.sleep(0.1)


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 10.0) -> list[ConsumerRecord]:
    """Every committed record of ``topic`` (all partitions), without a consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def settings_for(bootstrap: str, prefix: str, **sections: Any) -> Settings:
    """A validated configuration on the test broker with the test's own topic prefix."""
    document: dict[str, Any] = {
        "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix},
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(SERVICE_AREAS)},
    }
    document.update(sections)
    return parse_settings(document, origin="test")


def utility_config(utility: str, url: str, **extra: Any) -> dict[str, Any]:
    """The configuration entry of a simulated utility."""
    return {
        "id": utility,
        "endpoint": f"{url}/v1/tasks",
        "auth": {"type": "bearer", "token": f"token-{utility}"},
        "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.5},
        **extra,
    }


def make_task(utility: str, n: int, *, project: str = "2026-370602-47-01-000123") -> UtilityTask:
    """A complete UtilityTask for ``utility``, distinct per ``n``."""
    return {
        "task_id": f"{utility}-{n:05d}",
        "kind": "PRE_INTERVENTION",
        "action": "CREATE",
        "utility_id": utility,
        "service": "WATER",
        "demand": None,
        "project_code": project,
        "project_name": "芝罘区幸福里住宅小区三期",
        "region_code": "370602",
        "site_address": "山东省烟台市芝罘区幸福南路18号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": None,
        "contact_name": "张伟",
        "contact_mobile": "13912345678",
        "project_nature": "新建",
        "floor_area_m2": 56000.0,
        "land_area_m2": 23000.0,
        "trigger_stage": 2,
        "documents": [],
        "missing_materials": [],
        "application_id": None,
        "source": "test",
        "source_event_id": f"event-{n}",
        "occurred_at": NOW,
        "ingested_at": NOW,
        "created_at": NOW,
        "contact_due": None,
        "contact_due_note": None,
        "flags": [],
        "application_filed_at": None,
        "application_kind": None,
        "permit_granted_at": None,
        "revision": 0,
        "materials_to_fetch": [],
        "dropped_materials": [],
        "user_category": "ENTERPRISE",
        "work_order_id": None,
        "answer_due": None,
        "complaint": None,
    }


def received_status(utility: str, task_id: str, created: datetime = NOW) -> TaskStatus:
    """The sink's RECEIVED of a task delivered to ``utility`` at ``created``, the task embedded."""
    task = {**make_task(utility, 1), "task_id": task_id, "created_at": created}
    return {
        "task_id": task_id, "utility_id": utility, "application_id": None, "stage": "RECEIVED",
        "occurred_at": created, "reported_at": created, "pipe_length_m": None, "reason": None,
        "detail": None, "reporter": "sink", "task": task,  # type: ignore[typeddict-item]
    }  # fmt: skip


@contextmanager
def running_utility(utility: str) -> Iterator[tuple[UtilitySimulator, str]]:
    """A utility business-system simulator on a free port, with its bearer token ``token-<utility>``."""
    sim = UtilitySimulator(utility, token=f"token-{utility}")
    url = sim.start()
    try:
        yield sim, url
    finally:
        sim.stop()
