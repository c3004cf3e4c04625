"""The ledger's changelog: a compacted topic, co-partitioned with the task-status topic, keyed by task id.

Two kinds of records live on it, both written to the partition number of the status that caused them:

* key ``<task id>``: the task's latest ``TaskLedgerEntry`` (Avro);
* key ``held/<status topic>/<offset>``: a status held because its task's ``RECEIVED`` was not seen yet,
  with the status record's bytes (re-encoded without personal data when it held some,
  :func:`routing.personal_data.strip_held_status`) and headers, so a restarted instance still holds it. A tombstone
  releases it (applied to its task, or dead-lettered), and lets compaction remove the key; an empty value,
  as earlier versions wrote, is read as a release too.

Reading a partition to its end gives the state of that partition as the last owner left it.

Example:
    >>> reader = KafkaChangelogReader(settings.kafka, "ubridge.ledger.changelog.v1")
    >>> latest = reader.read([0, 2])   # {0: {key: record}, 2: {...}}
"""

from collections.abc import Sequence
from typing import Protocol

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.compacted import read_latest
from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings

HELD_PREFIX = "held/"
RELEASED = None
_HELD_TOPIC = "ubridge.held.topic"
_HELD_KEY = "ubridge.held.key"
_HELD_HEADERS = (_HELD_TOPIC, _HELD_KEY)


class ChangelogReader(Protocol):
    """Reads changelog partitions to their end."""

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, ConsumerRecord]]:
        """The latest record per key of each partition; released keys are left out."""
        ...


class KafkaChangelogReader:
    """Reads the changelog with a consumer of its own (no group), one per call.

    Args:
        kafka: Cluster settings.
        topic: The changelog topic (prefix applied).
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._kafka = kafka
        self.topic = topic

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, ConsumerRecord]]:
        """The latest record per key of each partition, read to the end offset seen on entry."""
        consumer = make_consumer(self._kafka, group_id=None)
        try:
            return read_latest(consumer, self.topic, partitions)
        finally:
            consumer.close()


def held_key(record: ConsumerRecord) -> bytes:
    """The changelog key of a held status record."""
    return f"{HELD_PREFIX}{record.topic}/{record.offset}".encode()


def is_held_key(key: bytes) -> bool:
    """Whether a changelog key is a held status rather than a task id."""
    return key.startswith(HELD_PREFIX.encode())


def held_value(record: ConsumerRecord) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    """What the changelog keeps of a held status: its bytes and headers, plus its source topic and key."""
    headers = tuple((n, v) for n, v in (record.headers or []) if n not in _HELD_HEADERS)
    return record.value, (*headers, (_HELD_TOPIC, record.topic.encode()), (_HELD_KEY, record.key or b""))


def original(held: ConsumerRecord) -> ConsumerRecord:
    """The status record a held changelog record stands for (same topic, partition, offset, key, bytes)."""
    headers = dict(held.headers or [])
    topic = headers.get(_HELD_TOPIC, b"").decode()
    key = headers.get(_HELD_KEY) or None
    offset = int(held.key.decode().rsplit("/", 1)[1])
    kept = [(n, v) for n, v in (held.headers or []) if n not in _HELD_HEADERS]
    return ConsumerRecord(topic, held.partition, -1, offset, held.timestamp, 0, key, held.value, kept, None, 0, 0, 0)
