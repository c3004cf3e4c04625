"""The two threads every process runs for the admin surface: it follows the control topic, and publishes status.

:class:`ControlFollower` reads the compacted control topic from the beginning without a group, so every
process sees every pause and restart request; :class:`StatusPublisher` writes each stage's status every few
seconds and tombstones them on a clean stop.

Example:
    >>> control = ControlFollower(settings.kafka, settings.topic("control"), on_restart=restart_stage)
    >>> control.catch_up()          # before the stages start: a paused stage starts paused
    >>> control.start()
    >>> control.close()             # at the end
"""

import threading
import time
from collections.abc import Callable
from typing import Final

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from connectors.admin.control import ControlState, fold, restarts_due
from connectors.admin.status import StageStatus, status_key
from connectors.runtime.kafka import make_consumer, make_producer
from connectors.settings import KafkaSettings

log = structlog.get_logger(__name__)

_POLL_MS: Final = 500
_RETRY_S: Final = 2.0
_CLOSE_S: Final = 5.0
_METADATA_S: Final = 10.0
_JOIN_S: Final = 10.0
_BLOCK_MS: Final = 2000


class ControlFollower:
    """The control topic's current state, kept up to date by :meth:`follow` in a thread of its own.

    Args:
        kafka: Cluster settings.
        topic: The control topic (prefix applied).
        on_restart: Called with a stage's name when a new restart request for it arrives.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, *, on_restart: Callable[[str], None]) -> None:
        self._kafka = kafka
        self._consumer: KafkaConsumer | None = None  # made by catch_up: building an App touches no broker
        self._topic = topic
        self._on_restart = on_restart
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = ControlState()

    def paused(self, stage: str) -> bool:
        """Whether the control topic pauses ``stage`` now."""
        return stage in self.state.paused

    def catch_up(self) -> None:
        """Read the topic to its end (a stage paused before this process started starts paused).

        Raises:
            LookupError: the control topic does not exist.
        """
        if self._consumer is not None:  # an earlier attempt that Kafka interrupted: read it all again
            self._consumer.close()
        self._consumer = consumer = make_consumer(self._kafka, group_id=None)
        self.state = ControlState()
        partitions = self._partitions(consumer)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
                for record in records:
                    if record.offset < end[tp]:  # history: its restart requests were for earlier processes
                        self.state = fold(self.state, record.key, record.value)
                    else:
                        self._apply(record.key, record.value)
        log.info("control_read", paused=sorted(self.state.paused))

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        """The control topic's partitions, waiting a little for a topic created a moment ago to be known."""
        deadline = time.monotonic() + _METADATA_S
        while not (found := consumer.partitions_for_topic(self._topic)):
            if time.monotonic() > deadline:
                message = f"topic {self._topic} does not exist"
                raise LookupError(message)
            time.sleep(_POLL_MS / 1000)
        return [TopicPartition(self._topic, p) for p in sorted(found)]

    def start(self) -> None:
        """Follow the topic in a thread of its own (after :meth:`catch_up`)."""
        consumer = self._consumer
        assert consumer is not None, "catch_up() first"  # noqa: S101 - a programming error
        self._thread = threading.Thread(target=self._follow, args=(consumer,), name="control-follower", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop following and close the consumer (also when :meth:`start` never came)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(_JOIN_S)
        elif self._consumer is not None:
            self._consumer.close()
        self._consumer = None

    def _follow(self, consumer: KafkaConsumer) -> None:
        """Apply new control records until closed; Kafka errors are waited out."""
        try:
            while not self._done.is_set():
                try:
                    batch = consumer.poll(timeout_ms=_POLL_MS)
                except KafkaError as exc:
                    log.warning("control_read_failed", error=str(exc), retry_in_s=_RETRY_S)
                    self._done.wait(_RETRY_S)
                    continue
                for records in batch.values():
                    for record in records:
                        self._apply(record.key, record.value)
        finally:
            consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        before, self.state = self.state, fold(self.state, key, value)
        if before.paused != self.state.paused:
            log.info("control_changed", paused=sorted(self.state.paused))
        for stage in sorted(restarts_due(before, self.state)):
            log.info("stage_restart_requested", stage=stage)
            self._on_restart(stage)


class StatusPublisher:
    """Writes the statuses ``collect`` returns to the status topic every ``every_s`` seconds, until closed.

    Args:
        kafka: Cluster settings.
        topic: The compacted status topic (prefix applied).
        collect: This process's stage statuses now.
        every_s: The heartbeat period.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, *, collect: Callable[[], list[StageStatus]], every_s: float
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._collect = collect
        self._every_s = every_s
        self._done = threading.Event()
        self._keys: set[bytes] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Publish in a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="status-publisher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Tombstone every key published, and stop."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(_JOIN_S)

    def _run(self) -> None:
        """Publish now and every period until closed; then tombstone every key published."""
        producer = self._producer()
        if producer is None:
            return
        try:
            while True:
                statuses = self._collect()
                self._send(
                    producer, [(status_key(s.host, s.pid, s.stage), s.model_dump_json().encode()) for s in statuses]
                )
                if self._done.wait(self._every_s):
                    break
            self._send(producer, [(key, None) for key in sorted(self._keys)])
        finally:
            _close(producer)

    def _producer(self) -> KafkaProducer | None:
        """A producer, once Kafka lets one be made; None when closed first."""
        while True:
            try:
                # A heartbeat is worth nothing late: records expire before the close gives up waiting for them,
                # so a stop with Kafka away leaves nothing pending for kafka-python's finaliser to choke on.
                return make_producer(
                    self._kafka, max_block_ms=_BLOCK_MS, request_timeout_ms=_BLOCK_MS, delivery_timeout_ms=2 * _BLOCK_MS
                )
            except KafkaError as exc:
                log.warning("status_publish_failed", error=str(exc))
                if self._done.wait(self._every_s):
                    return None

    def _send(self, producer: KafkaProducer, records: list[tuple[bytes, bytes | None]]) -> None:
        try:
            for key, value in records:
                self._keys.add(key)
                producer.send(self._topic, key=key, value=value)
            producer.flush(timeout=_CLOSE_S)
        except KafkaError as exc:  # a status not written goes stale, and the admin API says so
            log.warning("status_publish_failed", error=str(exc))


def _close(producer: KafkaProducer) -> None:
    """Close ``producer``; with Kafka away what it still holds is dropped (the statuses go stale)."""
    try:
        producer.close(timeout=2 * _CLOSE_S)
    except KafkaError as exc:
        log.warning("status_publish_failed", error=str(exc))
