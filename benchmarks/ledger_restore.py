"""The ledger's restore time: how long a ledger instance takes to rebuild its partitions from the changelog.

The changelog is filled with ``tasks`` entries as the ledger writes them (each a task that went through a few
stages, with its emitted events), spread over the status topic's partitions, plus one overwritten version
per task, as compaction may not have run yet. Timed: :meth:`TaskLedger.on_assigned` for every partition,
which reads the changelog to its end and decodes and schedules each entry. This is what a restart or a
rebalance costs before the ledger processes its first status, and it grows with the tasks kept: open ones,
and the closed ones within ``ledger.closed_retention_days``.
"""

import time
from datetime import UTC, datetime, timedelta

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from benchmarks.harness import CONFIG_DIR
from connectors.ledger.changelog import KafkaChangelogReader
from connectors.ledger.metrics import LedgerMetrics
from connectors.ledger.stage import TaskLedger
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.settings import KafkaSettings
from routing.calendar import load_calendar
from routing.records import TaskLedgerEntry
from routing.sla_policy import load_policies
from schemas import Codec

PARTITIONS = 6
_START = datetime(2026, 11, 2, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai, a Monday


def restore_seconds(bootstrap: str, prefix: str, tasks: int) -> float:
    """Fill a changelog with ``tasks`` entries (two versions each) and time a fresh ledger's restore of it."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    changelog = f"{prefix}ledger.changelog.{tasks}"
    ensure_topics(kafka, [TopicSpec(changelog, PARTITIONS, compacted=True)])
    codec = Codec.default()
    producer = make_producer(kafka)
    for n in range(tasks):
        for entry in _versions(n):
            value = codec.encode("TaskLedgerEntry", dict(entry))
            producer.send(changelog, key=entry["task_id"].encode(), value=value, partition=n % PARTITIONS)
    producer.flush()
    producer.close()
    ledger = TaskLedger(
        input_topic=f"{prefix}task-status",
        changelog_topic=changelog,
        sla_topic=f"{prefix}sla",
        dlq_topic=f"{prefix}dlq",
        calendar=load_calendar(CONFIG_DIR / "calendar.yaml"),
        policies=load_policies(CONFIG_DIR / "sla-policies.yaml"),
        codec=codec,
        metrics=LedgerMetrics(CollectorRegistry()),
        reader=KafkaChangelogReader(kafka, changelog),
    )
    started = time.perf_counter()
    ledger.on_assigned([TopicPartition(f"{prefix}task-status", p) for p in range(PARTITIONS)])
    elapsed = time.perf_counter() - started
    restored = sum(len(entries) for entries in ledger.entries.values())
    if restored != tasks:
        message = f"restored {restored} entries of {tasks}"
        raise RuntimeError(message)
    return elapsed


def _versions(n: int) -> tuple[TaskLedgerEntry, TaskLedgerEntry]:
    """A task's entry after its first contact, then after the survey (the later one wins)."""
    created = _START + timedelta(minutes=n % 5000)
    contacted = created + timedelta(hours=1)
    surveyed = contacted + timedelta(hours=20)
    first: TaskLedgerEntry = {
        "task_id": f"bench-task-{n:08d}",
        "utility_id": ("yantai-water", "yantai-gas", "liaocheng-water", "jinan-heat")[n % 4],
        "application_id": None if n % 3 else f"ASD-{n:08d}",
        "kind": "APPLICATION" if n % 3 == 0 else "PRE_INTERVENTION",
        "service": ("WATER", "GAS", "WATER", "HEAT")[n % 4],
        "region_code": ("370602", "370602", "371502", "370102")[n % 4],
        "created_at": created,
        "scenario": "no_external_works",
        "pipe_length_m": None,
        "stage": "CONTACTED",
        "closed": False,
        "rejected_reason": None,
        "stages": [
            {"stage": "RECEIVED", "started_at": created, "ended_at": contacted, "elapsed_working_hours": 1.0},
            {"stage": "CONTACTED", "started_at": contacted, "ended_at": None, "elapsed_working_hours": None},
        ],
        "emitted": [f"bench-task-{n:08d}:first_contact:MET"],
        "updated_at": contacted,
        "unclocked_reason": None,
        "application_filed_at": created if n % 3 == 0 else None,
        "application_kind": "CONNECTION" if n % 3 == 0 else None,
        "permit_granted_at": None if n % 3 == 0 else created,
        "cancelled_at": None,
        "user_category": "ENTERPRISE",
    }
    second: TaskLedgerEntry = {
        **first,
        "stage": "SURVEYED",
        "stages": [
            first["stages"][0],
            {"stage": "CONTACTED", "started_at": contacted, "ended_at": surveyed, "elapsed_working_hours": 7.5},
            {"stage": "SURVEYED", "started_at": surveyed, "ended_at": None, "elapsed_working_hours": None},
        ],
        "updated_at": surveyed,
    }
    return first, second
