"""Signed-push replays refused across restarts and processes: the accepted signatures live on a Kafka topic.

Every process of one installation follows the compacted topic ``ubridge.push-signatures.v1`` (with the
``kafka.topic_prefix``) into its in-memory :class:`~connectors.runtime.signed_push.ReplayCache`:

* an accepted request's signature is written with the request's records, before the 2xx: key
  ``<stage>:<signature>``, value the unix second it expires (ASCII); so a signature accepted anywhere is
  refused everywhere as soon as the record is read (milliseconds), and after any restart;
* a request whose records were not stored (503) gets a tombstone, so its sender may resend it unchanged;
* on start a process reads the topic from two replay windows back (a record's signature expires at most
  that long after it was written: the sender's clock may lead ours by one window) to its end, and only then
  listens; the set in memory holds only signatures within their window.

Two processes that receive the same signed request within those milliseconds may both accept it: the
records are then written twice, which downstream deterministic ids absorb, as for any resend.

Example:
    >>> replays = SharedReplays.on_kafka(kafka, producer=producer, topic=settings.topic("push_signatures"),
    ...                                  stage="gonggai-webhook", window_s=300, max_entries=100_000)
    >>> replays.catch_up(timeout_s=30)
    >>> threading.Thread(target=replays.follow, args=(stop,), daemon=True).start()
"""

import heapq
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final, Literal, Protocol

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError

from connectors.runtime.interface import Output
from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings

log = structlog.get_logger(__name__)

_POLL_MS: Final = 200

CacheOutcome = Literal["added", "seen", "full"]


class ReplayCache:
    """Signatures accepted within the replay window; bounded and safe to share between request threads."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, signature: str, now: float) -> bool:
        """Tell whether ``signature`` was accepted and has not expired yet."""
        with self._lock:
            return self._expiry.get(signature, -1.0) >= now

    def add(self, signature: str, *, expires_at: float, now: float) -> CacheOutcome:
        """Record ``signature`` until ``expires_at`` unless already there; ``full`` leaves it unrecorded."""
        with self._lock:
            self._prune(now)
            if signature in self._expiry:
                return "seen"
            if len(self._expiry) >= self._max_entries:
                return "full"
            self._insert(signature, expires_at)
            return "added"

    def remember(self, signature: str, *, expires_at: float, now: float) -> None:
        """Record a signature another process accepted; past the bound too, since refusing it is the point."""
        with self._lock:
            self._prune(now)
            if expires_at >= now and self._expiry.get(signature) != expires_at:
                self._insert(signature, expires_at)

    def discard(self, signature: str) -> None:
        """Forget ``signature`` (its request was not stored after all, so it may be sent again)."""
        with self._lock:
            self._expiry.pop(signature, None)

    def _insert(self, signature: str, expires_at: float) -> None:
        self._expiry[signature] = expires_at
        heapq.heappush(self._heap, (expires_at, signature))

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires_at, signature = heapq.heappop(self._heap)
            if self._expiry.get(signature) == expires_at:
                del self._expiry[signature]


class SharedReplays:
    """The signatures one stage accepted in any process, read from and written to the signatures topic.

    Args:
        consumer: Reads the topic (no group: every process reads all of it).
        producer: Writes tombstones (the intake's producer; records go with the request's records).
        topic: The signatures topic (prefix applied).
        stage: The intake's stage name; a topic may serve several intakes.
        window_s: The stage's replay window.
        max_entries: Most signatures this process accepts within the window (see :class:`ReplayCache`).
        clock: Unix time.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        *,
        producer: KafkaProducer,
        topic: str,
        stage: str,
        window_s: int,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = ReplayCache(max_entries=max_entries)
        self._consumer = consumer
        self._producer = producer
        self._topic = topic
        self._prefix = f"{stage}:"
        self._stage = stage
        self._window_s = window_s
        self._clock = clock
        self._released: queue.SimpleQueue[str] = queue.SimpleQueue()

    @classmethod
    def on_kafka(
        cls, kafka: KafkaSettings, *, producer: KafkaProducer, topic: str, stage: str, window_s: int, max_entries: int
    ) -> "SharedReplays":
        """The shared signatures of ``stage`` on the cluster of ``kafka``, read by a consumer of their own."""
        consumer = make_consumer(kafka, group_id=None)
        return cls(consumer, producer=producer, topic=topic, stage=stage, window_s=window_s, max_entries=max_entries)

    def record(self, signature: str, expires_at: int) -> Output:
        """The record that tells every process ``signature`` was accepted, to write with the request's records."""
        return Output(self._topic, self._key(signature), str(expires_at).encode())

    def release(self, signature: str) -> None:
        """Forget ``signature`` everywhere: a tombstone, written by :meth:`follow` (never blocking an answer)."""
        self._released.put(signature)

    def catch_up(self, timeout_s: float) -> None:
        """Read every signature that may still be within its window, up to the topic's current end.

        Raises:
            KafkaError: the topic does not exist, or could not be read to its end within ``timeout_s``.
        """
        numbers = self._consumer.partitions_for_topic(self._topic)
        if not numbers:
            message = f"replay topic {self._topic} does not exist"
            raise UnknownTopicOrPartitionError(message)
        partitions = [TopicPartition(self._topic, n) for n in sorted(numbers)]
        self._consumer.assign(partitions)
        since_ms = int((self._clock() - 2 * self._window_s) * 1000)
        starts = self._consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        ends = self._consumer.end_offsets(partitions)
        for partition in partitions:
            start = starts.get(partition)
            self._consumer.seek(partition, ends[partition] if start is None else start.offset)
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                message = f"replay topic {self._topic} not read to its end within {timeout_s:g} s"
                raise KafkaTimeoutError(message)
            self._apply(self._records(self._consumer.poll(timeout_ms=_POLL_MS)))
        log.info("replays_caught_up", stage=self._stage, signatures=len(self.cache))

    def follow(self, stop: threading.Event) -> None:
        """Apply what other processes accept and write this one's tombstones, until ``stop`` is set."""
        while not stop.is_set():
            self._write_tombstones()
            try:
                batches = self._consumer.poll(timeout_ms=_POLL_MS)
            except KafkaError as exc:
                log.warning("replays_read_failed", stage=self._stage, error=str(exc))
                stop.wait(1.0)
                continue
            self._apply(self._records(batches))

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()

    def _key(self, signature: str) -> bytes:
        return (self._prefix + signature).encode()

    def _write_tombstones(self) -> None:
        while not self._released.empty():
            signature = self._released.get()
            try:
                self._producer.send(self._topic, key=self._key(signature), value=None)
            except KafkaError as exc:
                log.warning("replay_release_failed", stage=self._stage, error=str(exc))

    def _apply(self, records: Iterable[ConsumerRecord]) -> None:
        now = self._clock()
        for record in records:
            key = bytes(record.key or b"").decode("ascii", "replace")
            if not key.startswith(self._prefix):
                continue
            signature = key.removeprefix(self._prefix)
            if record.value is None:
                self.cache.discard(signature)
            elif bytes(record.value).isdigit():
                self.cache.remember(signature, expires_at=float(record.value), now=now)
            else:
                log.warning("replay_record_skipped", stage=self._stage, offset=record.offset)

    @staticmethod
    def _records(batches: dict[TopicPartition, list[ConsumerRecord]]) -> Iterable[ConsumerRecord]:
        return (record for batch in batches.values() for record in batch)


class SignedPushSettings(Protocol):
    """What a signed-push intake's settings say about replays."""

    @property
    def name(self) -> str:
        """The intake's stage name."""
        ...

    @property
    def replay_window_s(self) -> int:
        """How long a signature stays a replay."""
        ...

    @property
    def replay_cache_max_entries(self) -> int:
        """The bound of the in-memory set."""
        ...


def shared_replays(
    kafka: KafkaSettings, settings: SignedPushSettings, *, producer: KafkaProducer, topic: str | None
) -> "SharedReplays | None":
    """The replay set shared through ``topic`` by every process of the installation; None: this process only."""
    if topic is None:
        return None
    return SharedReplays.on_kafka(
        kafka,
        producer=producer,
        topic=topic,
        stage=settings.name,
        window_s=settings.replay_window_s,
        max_entries=settings.replay_cache_max_entries,
    )
