"""The complaint ledger's orders in memory, followed from its compacted topic (the supervision view's source).

The figures of the supervision view and of the monthly report come from this topic, the complaint stage's own
record of every order (:func:`routing.complaints.complaint_figures`). Held visits and closes (``held/…`` keys)
are skipped; a tombstone removes its key; a value that does not decode is logged and skipped.

Example:
    >>> follower = ComplaintFollower(settings.kafka, settings.topic("complaints_ledger"))
    >>> threading.Thread(target=follower.run, args=(stop,), daemon=True).start()
    >>> follower.wait_caught_up(30); follower.entries()
"""

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Final, cast

import structlog
from kafka import TopicPartition
from kafka.errors import KafkaError

from connectors.ledger.changelog import is_held_key
from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from routing.complaints import complaint_figures
from routing.records import ComplaintLedgerEntry
from routing.satisfaction import SatisfactionPolicy
from routing.supervision import ComplaintFigures, Level
from schemas import Codec

log = structlog.get_logger(__name__)

_POLL_MS: Final = 200
_RETRY_S: Final = 1.0

# (now, a month's bounds or None for every order) → the complaint figures per (level, group)
ComplaintSource = Callable[[datetime, tuple[datetime, datetime] | None], dict[tuple[Level, str], ComplaintFigures]]


class ComplaintFollower:
    """Every order of the complaint ledger topic, followed from its start.

    Args:
        kafka: The cluster.
        topic: The complaint ledger topic (prefix applied).
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> None:
        self._kafka = kafka
        self._topic = topic
        self._codec = codec or Codec.default()
        self._entries: dict[str, ComplaintLedgerEntry] = {}
        self._lock = threading.Lock()
        self._caught_up = threading.Event()

    def entries(self) -> list[ComplaintLedgerEntry]:
        """The orders read so far."""
        with self._lock:
            return list(self._entries.values())

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the topic was read to the end it had at start; False after ``timeout_s``."""
        return self._caught_up.wait(timeout_s)

    def run(self, stop: threading.Event) -> None:
        """Follow the topic until ``stop`` is set; a Kafka failure starts over from the topic's start."""
        while not stop.is_set():
            try:
                self._follow(stop)
            except KafkaError as exc:
                log.warning("complaint_follow_failed", topic=self._topic, error=str(exc))
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
            fresh: dict[str, ComplaintLedgerEntry] = {}
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=_POLL_MS).values():
                    for record in records:
                        self._apply(fresh, record.key, record.value, record.offset)
                with self._lock:
                    self._entries = fresh
                if not self._caught_up.is_set() and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    self._caught_up.set()
                    log.info("complaint_view_caught_up", topic=self._topic, orders=len(fresh))
        finally:
            consumer.close()

    def _apply(self, entries: dict[str, ComplaintLedgerEntry], key: bytes | None, value: bytes | None, at: int) -> None:
        if key is None or is_held_key(key):
            return
        with self._lock:
            if not value:
                entries.pop(key.decode(), None)
                return
            try:
                entry = cast(ComplaintLedgerEntry, self._codec.decode_as("ComplaintLedgerEntry", value))
            except Exception as exc:  # the stage wrote it; the view must not stop over one value
                log.warning("complaint_entry_skipped", offset=at, error=type(exc).__name__)
                return
            entries[entry["order_id"]] = entry


def follower_figures(follower: ComplaintFollower, policy: SatisfactionPolicy) -> ComplaintSource:
    """The figures function of the supervision view over the orders the follower holds now."""
    return lambda now, within: complaint_figures(follower.entries(), policy, now=now, within=within)
