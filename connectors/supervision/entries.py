"""The ledger's entries, read from its compacted changelog without a consumer group.

:func:`read_entries` reads every partition once (the monthly report's CLI); :class:`LedgerFollower` keeps them
in memory and follows the topic (the supervision view). Both skip the changelog's held statuses (keys
``held/…``, see :mod:`connectors.ledger.changelog`); a tombstone removes its task; a value that does not decode
as a ``TaskLedgerEntry`` is logged and skipped (the ledger wrote it; the view must not stop over one).

Example:
    >>> follower = LedgerFollower(settings.kafka, settings.topic("ledger_changelog"))
    >>> threading.Thread(target=follower.run, args=(stop,), daemon=True).start()
    >>> follower.wait_caught_up(30); follower.entries()
"""

import threading
from typing import Final, cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from connectors.ledger.changelog import is_held_key
from connectors.runtime.compacted import read_latest
from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from routing.records import TaskLedgerEntry
from schemas import Codec

log = structlog.get_logger(__name__)

_POLL_MS: Final = 200
_RETRY_S: Final = 1.0


def decode(record: ConsumerRecord, codec: Codec) -> TaskLedgerEntry | None:
    """The task's entry of a changelog record; None for a held status or an undecodable value (logged)."""
    if record.key is None or is_held_key(record.key):
        return None
    try:
        return cast(TaskLedgerEntry, codec.decode_as("TaskLedgerEntry", record.value))
    except Exception as exc:
        log.warning("ledger_entry_skipped", partition=record.partition, offset=record.offset, error=type(exc).__name__)
        return None


def read_entries(kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> list[TaskLedgerEntry]:
    """Every task's latest entry on the changelog.

    Raises:
        LookupError: The topic does not exist.
    """
    codec = codec or Codec.default()
    consumer = make_consumer(kafka, group_id=None)
    try:
        latest = read_latest(consumer, topic)
    finally:
        consumer.close()
    decoded = (decode(record, codec) for records in latest.values() for record in records.values())
    return [entry for entry in decoded if entry is not None]


class LedgerFollower:
    """The changelog's entries in memory, followed from the topic's start; see the module docstring.

    Args:
        kafka: The cluster.
        topic: The changelog (prefix applied).
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> None:
        self._kafka = kafka
        self._topic = topic
        self._codec = codec or Codec.default()
        self._entries: dict[str, TaskLedgerEntry] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()

    def entries(self) -> list[TaskLedgerEntry]:
        """The entries read so far."""
        with self._lock:
            return list(self._entries.values())

    def entry(self, task_id: str) -> TaskLedgerEntry | None:
        """One task's entry, if read."""
        with self._lock:
            return self._entries.get(task_id)

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the topic was read to the end it had at start; False after ``timeout_s``."""
        return self._caught_up.wait(timeout_s)

    def run(self, stop: threading.Event) -> None:
        """Follow the topic until ``stop`` is set; a Kafka failure starts over from the topic's start."""
        while not stop.is_set():
            try:
                self._follow(stop)
            except KafkaError as exc:
                log.warning("ledger_follow_failed", topic=self._topic, error=str(exc))
                stop.wait(_RETRY_S)

    def _follow(self, stop: threading.Event) -> None:
        consumer = make_consumer(self._kafka, group_id=None)
        try:
            partitions = [
                TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())
            ]
            if not partitions:
                message = f"topic {self._topic} has no partitions yet"
                raise KafkaError(message)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            fresh: dict[str, TaskLedgerEntry] = {}
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=_POLL_MS).values():
                    self._apply(fresh, records)
                if not self._caught_up.is_set() and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    self._caught_up.set()
                    log.info("ledger_view_caught_up", topic=self._topic, tasks=len(self._entries))
        finally:
            consumer.close()

    def _apply(self, fresh: dict[str, TaskLedgerEntry], records: list[ConsumerRecord]) -> None:
        with self._lock:
            if fresh is not self._entries:  # a restart reads the topic again into a new map
                self._entries = fresh
            for record in records:
                if record.key is None or is_held_key(record.key):
                    continue
                if not record.value:
                    self._entries.pop(record.key.decode(), None)
                    continue
                entry = decode(record, self._codec)
                if entry is not None:
                    self._entries[entry["task_id"]] = entry
