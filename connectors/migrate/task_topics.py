"""``ubridge migrate tasks-topics``: move the undelivered tasks of the single task topic onto per-utility topics.

Run once, with every ubridge process stopped, after upgrading and before starting the new release (``ubridge
run`` refuses to start while the old topic is not migrated, see :func:`pending`). Per partition of the old
topic, in one transaction: each configured utility's records from its sink group's committed offset on are
copied to the same partition of its own topic (header ``ubridge.migrated-from`` naming the original), its
delivered revisions' offsets are translated to the copy's (:mod:`connectors.migrate.task_plan`), and every
sink group's offset on the old topic, with the migration's own group's, is committed at the partition's end.
A run that stops half-way leaves each partition migrated or not; running again finishes the others and
copies nothing twice. Records of utilities with no configured sink, and records that are no task, stay on
the old topic and are reported.

Example:
    >>> report = migrate_task_topics(load_settings(Path("ubridge.yaml")))
    >>> report.copied   # {"yantai-water": 12, ...}
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from connectors.migrate.task_plan import PartitionPlan, plan_partition, start_offset, translate
from connectors.registry import topics
from connectors.runtime.compacted import read_partitions
from connectors.runtime.kafka import ensure_topics, make_admin, make_consumer, make_producer
from connectors.settings import Settings
from connectors.utility.sink import stage_name
from routing.errors import DataError, UbridgeError
from routing.revisions import decode_revision, encode_revision
from schemas import Codec

log = structlog.get_logger(__name__)

MIGRATED_FROM: Final = "ubridge.migrated-from"
_READ_TIMEOUT_S: Final = 120.0
_POLL_MS: Final = 500
_TRANSACTION_TIMEOUT_MS: Final = 600_000  # a partition's backlog is one transaction; the broker allows 15 min


class MigrationError(UbridgeError):
    """The migration cannot run (or ubridge cannot start before it ran); the message says what to do."""


@dataclass
class MigrationReport:
    """What a run did (or, dry, would do)."""

    legacy_topic: str
    copied: dict[str, int] = field(default_factory=dict)  # utility → records copied to its topic
    revisions_translated: int = 0
    delivered: int = 0  # records below their sink's committed offset, not copied
    unconfigured: dict[str, int] = field(default_factory=dict)
    unreadable: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)
    partitions_migrated: list[int] = field(default_factory=list)
    partitions_already_migrated: list[int] = field(default_factory=list)


def migration_group(settings: Settings) -> str:
    """The consumer group whose offsets on the old topic mark its partitions as migrated."""
    return f"{settings.kafka.topic_prefix}ubridge.migrate.tasks-topics"


def sink_group(settings: Settings, utility: str) -> str:
    """The consumer group of a utility's sink (as :func:`connectors.registry._loop` names it)."""
    return f"{settings.kafka.topic_prefix}ubridge.{stage_name(utility)}"


def pending(settings: Settings) -> str | None:
    """Why ``ubridge run`` must not start yet: the old task topic exists and is not migrated; else None."""
    legacy = settings.topic("tasks")
    admin = make_admin(settings.kafka)
    try:
        if legacy not in admin.list_topics():
            return None
        marks = admin.list_group_offsets({migration_group(settings): None}).get(migration_group(settings)) or {}
    finally:
        admin.close()
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        tps = [TopicPartition(legacy, p) for p in sorted(consumer.partitions_for_topic(legacy) or ())]
        end = consumer.end_offsets(tps)
    finally:
        consumer.close()
    if all(tp in marks and marks[tp].offset >= end[tp] for tp in tps):
        return None
    return (
        f"the task topic of earlier releases, {legacy}, is not migrated to one topic per utility; "
        "stop every ubridge process and run `ubridge migrate tasks-topics --config …` first (README: Upgrading)"
    )


def migrate_task_topics(settings: Settings, *, dry_run: bool = False, codec: Codec | None = None) -> MigrationReport:
    """Copy every undelivered task of the old topic to its utility's topic; see the module's text.

    Raises:
        MigrationError: no old topic, a sink (or another migration) still runs, partition counts differ, a
            partition got records after it was migrated, or the old topic could not be read to its end.
    """
    legacy = settings.topic("tasks")
    report = MigrationReport(legacy)
    decoder = codec or Codec.default()
    utilities = [u.id for u in settings.utilities]
    groups = {u: sink_group(settings, u) for u in utilities}
    marker = migration_group(settings)
    admin = make_admin(settings.kafka)
    try:
        if legacy not in admin.list_topics():
            message = f"no topic {legacy}: nothing to migrate (a new installation has only per-utility task topics)"
            raise MigrationError(message)
        _refuse_running(admin, [*groups.values(), marker])
        committed = admin.list_group_offsets({g: None for g in [*groups.values(), marker]})
    finally:
        admin.close()
    if not dry_run:
        ensure_topics(settings.kafka, topics(settings))
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        partitions = sorted(consumer.partitions_for_topic(legacy) or ())
        if not dry_run:
            _check_partitions(consumer, settings, utilities, len(partitions))
        tps = [TopicPartition(legacy, p) for p in partitions]
        beginning, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            mark = (committed.get(marker) or {}).get(tp)
            if mark is not None:
                if mark.offset < end[tp]:
                    message = (
                        f"{legacy} partition {tp.partition} got records after it was migrated (offset "
                        f"{mark.offset}, end {end[tp]}): an earlier release still writes to it; stop it"
                    )
                    raise MigrationError(message)
                report.partitions_already_migrated.append(tp.partition)
                continue
            starts = {
                u: start_offset(_offset((committed.get(g) or {}).get(tp)), beginning[tp]) for u, g in groups.items()
            }
            records = _read(consumer, tp, min(starts.values(), default=end[tp]), end[tp])
            plan = plan_partition(((r.offset, _utility(decoder, r)) for r in records), starts)
            _count(report, tp.partition, plan)
            if not dry_run:
                by_offset = {r.offset: r for r in records}
                _migrate_partition(
                    settings, tp, plan=plan, records=by_offset, groups=groups, marker=marker, end=end[tp], report=report
                )
            report.partitions_migrated.append(tp.partition)
    finally:
        consumer.close()
    log.info(
        "task_topics_migrated" if not dry_run else "task_topics_migration_planned",
        legacy_topic=legacy,
        copied=report.copied,
        revisions_translated=report.revisions_translated,
        unconfigured=report.unconfigured,
        unreadable=len(report.unreadable),
    )
    return report


def _refuse_running(admin: KafkaAdminClient, groups: list[str]) -> None:
    described = admin.describe_groups(groups)
    running = sorted(g for g in groups if (described.get(g) or {}).get("members"))
    if running:
        message = f"consumer group(s) {', '.join(running)} have active members: stop every ubridge process first"
        raise MigrationError(message)


def _check_partitions(consumer: KafkaConsumer, settings: Settings, utilities: list[str], count: int) -> None:
    """The copies go to the same partition numbers, which the revision topic follows too."""
    for topic in [settings.topic("delivery_revisions"), *map(settings.task_topic, utilities)]:
        found = len(consumer.partitions_for_topic(topic) or ())
        if found != count:
            message = f"{topic} has {found} partitions, {settings.topic('tasks')} {count}: they must be equal"
            raise MigrationError(message)


def _offset(committed: OffsetAndMetadata | None) -> int | None:
    return None if committed is None or committed.offset < 0 else int(committed.offset)


def _utility(codec: Codec, record: ConsumerRecord) -> str | None:
    try:
        return str(codec.decode_as("UtilityTask", record.value)["utility_id"])
    except DataError:
        return None


def _read(consumer: KafkaConsumer, tp: TopicPartition, start: int, end: int) -> list[ConsumerRecord]:
    """The committed records of ``tp`` from ``start`` up to ``end`` (aborted ones are skipped by the consumer)."""
    if start >= end:
        return []
    consumer.assign([tp])
    consumer.seek(tp, start)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + _READ_TIMEOUT_S
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            message = f"could not read {tp.topic} partition {tp.partition} to offset {end} in {_READ_TIMEOUT_S} s"
            raise MigrationError(message)
        for batch in consumer.poll(timeout_ms=_POLL_MS).values():
            records += [r for r in batch if r.offset < end]
    return records


def _count(report: MigrationReport, partition: int, plan: PartitionPlan) -> None:
    for _, utility in plan.copies:
        report.copied[utility] = report.copied.get(utility, 0) + 1
    report.delivered += plan.delivered
    for utility, n in plan.unconfigured.items():
        report.unconfigured[utility] = report.unconfigured.get(utility, 0) + n
    report.unreadable += [(partition, offset) for offset in plan.unreadable]
    if plan.unconfigured or plan.unreadable:
        log.warning(
            "task_migration_left_records",
            partition=partition,
            unconfigured=plan.unconfigured,
            unreadable=list(plan.unreadable),
        )


def _migrate_partition(
    settings: Settings,
    tp: TopicPartition,
    *,
    plan: PartitionPlan,
    records: dict[int, ConsumerRecord],
    groups: dict[str, str],
    marker: str,
    end: int,
    report: MigrationReport,
) -> None:
    """Copies, translated revisions and every group's offset at ``end``: one transaction."""
    kafka = settings.kafka
    new_start = _ends(settings, [settings.task_topic(u) for u in groups], tp.partition)
    revisions = read_partitions(kafka, settings.topic("delivery_revisions"), [tp.partition])[tp.partition]
    producer = make_producer(
        kafka, transactional_id="ubridge-migrate-tasks-topics", transaction_timeout_ms=_TRANSACTION_TIMEOUT_MS
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        sent: dict[str, list[tuple[int, FutureRecordMetadata]]] = defaultdict(list)
        for offset, utility in plan.copies:
            record = records[offset]
            origin = f"{tp.topic}:{tp.partition}:{offset}".encode()
            headers = [*(record.headers or []), (MIGRATED_FROM, origin)]
            topic = settings.task_topic(utility)
            future = producer.send(topic, key=record.key, value=record.value, headers=headers, partition=tp.partition)
            sent[utility].append((offset, future))
        producer.flush()
        copied = {u: [(old, f.get(timeout=0).offset) for old, f in futures] for u, futures in sent.items()}
        starts = {u: new_start[settings.task_topic(u)] for u in groups}
        for key, value in _translated(revisions, copied, starts):
            producer.send(settings.topic("delivery_revisions"), key=key, value=value, partition=tp.partition)
            report.revisions_translated += 1
        done = {tp: OffsetAndMetadata(end, "", -1)}
        for group in [*groups.values(), marker]:
            producer.send_offsets_to_transaction(done, group)
        producer.commit_transaction()
    finally:
        producer.close()


def _translated(
    revisions: dict[bytes, bytes], copied: dict[str, list[tuple[int, int]]], new_start: dict[str, int]
) -> list[tuple[bytes, bytes]]:
    """The revision entries of configured utilities whose offset changes, re-encoded with the copy's offset."""
    changed = []
    for key, value in revisions.items():
        utility = key.decode().partition("/")[0]
        if utility not in new_start:
            continue
        try:
            revision = decode_revision(value)
        except ValueError as exc:  # the sink reads past it too (connectors/utility/revisions.py)
            log.warning("revision_unreadable", key=key.decode(), error=str(exc))
            continue
        moved = translate(revision.offset, copied.get(utility, []), new_start=new_start[utility])
        if moved != revision.offset:
            changed.append((key, encode_revision(revision._replace(offset=moved))))
    return changed


def _ends(settings: Settings, task_topics: list[str], partition: int) -> dict[str, int]:
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        ends = consumer.end_offsets([TopicPartition(t, partition) for t in task_topics])
    finally:
        consumer.close()
    return {tp.topic: int(offset) for tp, offset in ends.items()}
