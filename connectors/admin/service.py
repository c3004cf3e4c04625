"""What the admin API does, against the real Kafka: status, control records, dead letters, offsets, audit.

Errors are :class:`AdminError` subclasses naming the field concerned and the reason; the API turns them into
404, 409 and 422 answers. Every change is recorded on the audit topic (who, when, what, why).

Example:
    >>> service = AdminService(settings, stale_after_s=15)
    >>> service.pause("sink-yantai-water", by="ops", reason="utility maintenance")
"""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, NoError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from connectors.admin.audit import audit_value
from connectors.admin.control import control_value, new_nonce, pause_key, restart_key
from connectors.admin.dead_letters import DeadLetterFilter, Letter, NotReplayableError, replay_output
from connectors.admin.models import (
    Action,
    ActionAnswer,
    LetterDetail,
    LetterSummary,
    OffsetsResetAnswer,
    PartitionOffset,
    ReplayAnswer,
)
from connectors.admin.status import StageStatus, StageView, with_staleness
from connectors.registry import StageSpec, stage_specs
from connectors.runtime.compacted import read_latest, records_to_end
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import make_consumer, make_producer
from connectors.settings import Settings
from connectors.tail import render
from routing.privacy import mask_text
from schemas import Codec

_SEND_S: Final = 10.0
_READ_S: Final = 60.0
MAX_REPLAY: Final = 10_000  # dead letters one replay sends (held in memory meanwhile)


class AdminError(Exception):
    """A request the service refuses; ``field`` names what was wrong (the API answers with ``status``)."""

    status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class NotFoundError(AdminError):
    """No such stage or dead letter."""

    status = 404


class ConflictError(AdminError):
    """Not now: the stage runs, or it cannot do what was asked."""

    status = 409


class AdminService:
    """The admin operations of one installation (the configuration's topics and stages).

    Args:
        settings: The installation's configuration.
        stale_after_s: A stage status older than this is shown as stale (its process stopped heartbeating).
    """

    def __init__(self, settings: Settings, *, stale_after_s: float) -> None:
        self._settings = settings
        self._specs = {spec.name: spec for spec in stage_specs(settings)}
        self._stale_after = timedelta(seconds=stale_after_s)
        self._codec = Codec.default()
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None

    def close(self) -> None:
        """Close the producer, if one was made."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=_SEND_S)
        except KafkaError:
            return  # Kafka away: the records it held were never acknowledged, and no answer said they were

    def stages(self) -> list[StageView]:
        """Every stage of every live process (and the stale entries of processes that stopped heartbeating)."""
        consumer = make_consumer(self._settings.kafka, group_id=None)
        try:
            latest = read_latest(consumer, self._settings.topic("stage_status"))
        except LookupError as exc:  # no process of this installation ever started
            raise NotFoundError("topic", str(exc)) from exc
        finally:
            consumer.close()
        statuses = []
        for records in latest.values():
            for record in records.values():
                try:
                    statuses.append(StageStatus.model_validate_json(record.value))
                except ValidationError:
                    continue  # written by a newer or broken publisher: not ours to show
        return with_staleness(statuses, now=datetime.now(UTC), stale_after=self._stale_after)

    def pause(self, stage: str, *, by: str, reason: str | None) -> ActionAnswer:
        """Pause ``stage`` in every process, until resumed (it survives restarts).

        Raises:
            NotFoundError: no such stage.
            ConflictError: the stage is an intake or a status poller, which cannot be paused.
        """
        spec = self._spec(stage)
        if not spec.pausable:
            message = f"stage {stage} cannot be paused (intakes answer their callers; stop the process instead)"
            raise ConflictError("stage", message)
        now = datetime.now(UTC)
        self._write(self._settings.topic("control"), pause_key(stage), control_value(by, reason, now))
        return self._audited("pause", stage, by=by, reason=reason, at=now)

    def resume(self, stage: str, *, by: str, reason: str | None) -> ActionAnswer:
        """Resume a paused stage in every process (a tombstone on its pause key)."""
        self._spec(stage)
        now = datetime.now(UTC)
        self._write(self._settings.topic("control"), pause_key(stage), None)
        return self._audited("resume", stage, by=by, reason=reason, at=now)

    def restart(self, stage: str, *, by: str, reason: str | None) -> ActionAnswer:
        """Have every process running ``stage`` stop it and build it anew now (a failed one too)."""
        self._spec(stage)
        now = datetime.now(UTC)
        value = control_value(by, reason, now, nonce=new_nonce())
        self._write(self._settings.topic("control"), restart_key(stage), value)
        return self._audited("restart", stage, by=by, reason=reason, at=now)

    def dead_letters(self, stage: str, chosen: DeadLetterFilter, *, limit: int) -> list[LetterSummary]:
        """The first ``limit`` dead letters of ``stage`` that ``chosen`` matches, oldest first."""
        summaries = []
        for record in self._letters(stage, chosen):
            context = error_context(record.headers or [])
            summaries.append(
                LetterSummary(
                    partition=record.partition,
                    offset=record.offset,
                    timestamp=_timestamp(record),
                    key=None if record.key is None else mask_text(record.key.decode("utf-8", "replace")),
                    error_class=context.get("class"),
                    field=context.get("field"),
                    message=context.get("message"),
                    source_topic=context.get("topic"),
                    source_partition=context.get("partition"),
                    source_offset=context.get("offset"),
                )
            )
            if len(summaries) >= limit:
                break
        return summaries

    def dead_letter(self, stage: str, partition: int, offset: int) -> LetterDetail:
        """One dead letter, decoded and masked.

        Raises:
            NotFoundError: no such stage, or no dead letter there.
        """
        chosen = DeadLetterFilter(from_offset=offset, to_offset=offset)
        for record in self._letters(stage, chosen, partitions=[partition]):
            line = render(record, self._codec, masked=True)
            return LetterDetail(
                topic=line["topic"],
                partition=line["partition"],
                offset=line["offset"],
                timestamp=_timestamp(record),
                key=line["key"],
                schema_name=line["schema"],
                value=line["value"],
                error=line.get("error", {}),
                headers=line.get("headers", {}),
            )
        raise NotFoundError("offset", f"no dead letter of {stage} at partition {partition}, offset {offset}")

    def replay(
        self,
        stage: str,
        chosen: DeadLetterFilter,
        *,
        offsets: list[int] | None,
        topic: str | None,
        by: str,
        reason: str,
    ) -> ReplayAnswer:
        """Send the chosen dead letters back to their source (or ``topic``) and record it on the audit topic.

        Raises:
            NotFoundError: no dead letter matched.
            AdminError: a letter has no source topic and none was named, or the target topic does not exist.
        """
        wanted = None if offsets is None else set(offsets)
        records = []
        for record in self._letters(stage, chosen):
            if wanted is None or record.offset in wanted:
                records.append(record)
            if len(records) > MAX_REPLAY:
                message = f"more than {MAX_REPLAY} dead letters match: narrow the filter (offsets, times)"
                raise AdminError("offsets", message)
        if not records:
            raise NotFoundError("offsets", f"no dead letter of {stage} matches")
        try:
            outputs = [
                replay_output(error_context(r.headers or []), r.key, r.value, tuple(r.headers or []), topic=topic)
                for r in records
            ]
        except NotReplayableError as exc:
            raise AdminError("topic", str(exc)) from exc
        targets = sorted({output.topic for output in outputs})
        self._require_topics(targets)
        producer = self._producer_now()
        futures = [
            producer.send(o.topic, key=o.key, value=o.value, headers=list(o.headers), partition=o.partition)
            for o in outputs
        ]
        producer.flush(timeout=_SEND_S)
        for future in futures:
            future.get(timeout=_SEND_S)
        done = [r.offset for r in records]
        what = {"stage": stage, "dlq_topic": self._dlq(stage), "offsets": done, "count": len(done), "to": targets}
        self._audit("dlq.replay", by=by, reason=reason, at=datetime.now(UTC), what=what)
        return ReplayAnswer(count=len(done), offsets=done, targets=targets)

    def reset_offsets(self, stage: str, to: datetime | None, *, by: str, reason: str) -> OffsetsResetAnswer:
        """Commit the stage's group offsets at the first record at or after ``to`` (None: the start).

        Raises:
            NotFoundError: no such stage.
            ConflictError: the group has active members (the stage runs somewhere), or never committed.
        """
        self._spec(stage)
        kafka = self._settings.kafka
        group = f"{kafka.topic_prefix}ubridge.{stage}"
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id=kafka.topic_prefix + kafka.client_id)
        try:
            members = admin.describe_groups([group])[group].get("members") or []
            if members:
                message = f"stage {stage} is running: its group {group} has {len(members)} active member(s); stop it"
                raise ConflictError("stage", message)
            committed = admin.list_group_offsets({group: None}).get(group) or {}
            if not committed:
                raise ConflictError("stage", f"group {group} has no committed offsets: it starts at the start anyway")
            targets = self._targets(sorted({tp.topic for tp in committed}), to)
            results = admin.alter_group_offsets(group, {tp: OffsetAndMetadata(o, "", -1) for tp, o in targets.items()})
        finally:
            admin.close()
        failed = sorted(f"{tp.topic}:{tp.partition} {e.__name__}" for tp, e in results.items() if e is not NoError)
        if failed:
            # a member joined between the check and the commit: the broker refuses a running group's offsets
            raise ConflictError("stage", f"the broker refused the new offsets of group {group}: {', '.join(failed)}")
        offsets = [
            PartitionOffset(topic=tp.topic, partition=tp.partition, offset=o) for tp, o in sorted(targets.items())
        ]
        what: dict[str, Any] = {"stage": stage, "group": group, "to": "start" if to is None else to.isoformat()}
        what["offsets"] = [o.model_dump() for o in offsets]
        self._audit("offsets.reset", by=by, reason=reason, at=datetime.now(UTC), what=what)
        return OffsetsResetAnswer(group=group, offsets=offsets)

    def _targets(self, topics: list[str], to: datetime | None) -> dict[TopicPartition, int]:
        consumer = make_consumer(self._settings.kafka, group_id=None)
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            if to is None:
                return dict(consumer.beginning_offsets(tps))
            found = consumer.offsets_for_times({tp: int(to.timestamp() * 1000) for tp in tps})
            end = consumer.end_offsets(tps)
            return {tp: end[tp] if found.get(tp) is None else found[tp].offset for tp in tps}
        finally:
            consumer.close()

    def _spec(self, stage: str) -> StageSpec:
        spec = self._specs.get(stage)
        if spec is None:
            raise NotFoundError("stage", f"no stage {stage}; configured: {', '.join(self._specs)}")
        return spec

    def _dlq(self, stage: str) -> str:
        spec = self._spec(stage)
        if not spec.dead_letters:
            raise NotFoundError("stage", f"stage {stage} has no dead-letter topic (it answers bad input with 4xx)")
        return self._settings.dlq_topic(stage)

    def _letters(
        self, stage: str, chosen: DeadLetterFilter, *, partitions: list[int] | None = None
    ) -> Iterator[ConsumerRecord]:
        """The dead letters of ``stage`` that ``chosen`` matches, read to the end seen on entry."""
        topic = self._dlq(stage)
        consumer = make_consumer(self._settings.kafka, group_id=None)
        try:
            existing = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in existing if partitions is None or p in partitions]
            if not tps:
                return
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, chosen.from_offset or 0)
            yield from _until_end(consumer, tps, chosen)
        finally:
            consumer.close()

    def _require_topics(self, topics: list[str]) -> None:
        consumer = make_consumer(self._settings.kafka, group_id=None)
        try:
            missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        finally:
            consumer.close()
        if missing:
            raise AdminError("topic", f"no topic {', '.join(missing)}")

    def _producer_now(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = make_producer(self._settings.kafka)
            return self._producer

    def _write(self, topic: str, key: bytes, value: bytes | None) -> None:
        producer = self._producer_now()
        producer.send(topic, key=key, value=value).get(timeout=_SEND_S)

    def _audited(self, action: Action, stage: str, *, by: str, reason: str | None, at: datetime) -> ActionAnswer:
        self._audit(f"stage.{action}", by=by, reason=reason, at=at, what={"stage": stage})
        return ActionAnswer(stage=stage, action=action, by=by, at=at)

    def _audit(self, action: str, *, by: str, reason: str | None, at: datetime, what: dict[str, Any]) -> None:
        value = audit_value(action, by=by, reason=reason, at=at, what=what)
        self._write(self._settings.topic("audit"), action.encode(), value)


def _until_end(
    consumer: KafkaConsumer, tps: list[TopicPartition], chosen: DeadLetterFilter
) -> Iterator[ConsumerRecord]:
    try:
        for partition, record in records_to_end(consumer, tps, what="the dead letters", timeout_s=_READ_S):
            letter = Letter(partition, record.offset, _timestamp(record), error_context(record.headers or []))
            if chosen.matches(letter):
                yield record
    except TimeoutError as exc:
        raise KafkaError(str(exc)) from exc


def _timestamp(record: ConsumerRecord) -> datetime:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)
