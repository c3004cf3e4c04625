"""A topic's records in memory, followed from its start without a consumer group: the latest record per key.

The read-only views keep such a copy (the supervision view: the task ledger, the complaint ledger, the joint
surveys). Each record is decoded as one Avro record type and kept under the key ``key_of`` gives; a tombstone
removes its record key; the changelogs' held statuses (keys ``held/…``, :mod:`connectors.ledger.changelog`)
are skipped; a value that does not decode is logged and skipped (its stage wrote it; the view must not stop
over one). A Kafka failure starts the reading over from the topic's start, into a fresh copy.

Example:
    >>> follower = TopicFollower(kafka, "ubridge.surveys.v1", record="SurveyProposal", key_of=lambda s: s["survey_id"])
    >>> threading.Thread(target=follower.run, args=(stop,), daemon=True).start()
    >>> follower.wait_caught_up(30); follower.entries()
"""

import threading
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from connectors.ledger.changelog import is_held_key
from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from schemas import Codec

log = structlog.get_logger(__name__)

T = TypeVar("T")
_POLL_MS: Final = 200
_RETRY_S: Final = 1.0


class TopicFollower(Generic[T]):
    """The latest record per key of one topic, followed from its start; see the module docstring.

    Args:
        kafka: The cluster.
        topic: The topic (prefix applied).
        record: The Avro record type of its values.
        key_of: The key a decoded record is kept under.
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        record: str,
        key_of: Callable[[T], str],
        codec: Codec | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._record = record
        self._key_of = key_of
        self._codec = codec or Codec.default()
        self._entries: dict[str, T] = {}
        self._by_record_key: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()

    def entries(self) -> list[T]:
        """The records read so far, one per key."""
        with self._lock:
            return list(self._entries.values())

    def entry(self, key: str) -> T | None:
        """The record kept under ``key``, if read."""
        with self._lock:
            return self._entries.get(key)

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the topic was read to the end it had at start; False after ``timeout_s``."""
        return self._caught_up.wait(timeout_s)

    def run(self, stop: threading.Event) -> None:
        """Follow the topic until ``stop`` is set; a Kafka failure starts over from the topic's start."""
        while not stop.is_set():
            try:
                self._follow(stop)
            except KafkaError as exc:
                log.warning("topic_follow_failed", topic=self._topic, error=str(exc))
                stop.wait(_RETRY_S)

    def _follow(self, stop: threading.Event) -> None:
        consumer = make_consumer(self._kafka, group_id=None)
        try:
            numbers = sorted(consumer.partitions_for_topic(self._topic) or ())
            if not numbers:
                message = f"topic {self._topic} has no partitions yet"
                raise KafkaError(message)
            partitions = [TopicPartition(self._topic, p) for p in numbers]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            fresh: dict[str, T] = {}
            with self._lock:  # a restart reads the topic again into a new copy
                self._entries, self._by_record_key = fresh, {}
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=_POLL_MS).values():
                    self._apply(records)
                if not self._caught_up.is_set() and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    self._caught_up.set()
                    log.info("topic_view_caught_up", topic=self._topic, entries=len(fresh))
        finally:
            consumer.close()

    def _apply(self, records: list[ConsumerRecord]) -> None:
        with self._lock:
            for record in records:
                if record.key is None or is_held_key(record.key):
                    continue
                if not record.value:
                    self._entries.pop(self._by_record_key.pop(record.key, record.key.decode()), None)
                    continue
                entry = self._decode(record)
                if entry is not None:
                    key = self._key_of(entry)
                    self._entries[key] = entry
                    self._by_record_key[record.key] = key

    def _decode(self, record: ConsumerRecord) -> T | None:
        try:
            return cast(T, self._codec.decode_as(self._record, record.value))
        except Exception as exc:  # the stage wrote it; the view must not stop over one value
            log.warning("topic_entry_skipped", topic=self._topic, offset=record.offset, error=type(exc).__name__)
            return None


def by_field(name: str) -> Callable[[Any], str]:
    """``key_of`` for records kept under one of their fields."""
    return lambda record: str(record[name])
