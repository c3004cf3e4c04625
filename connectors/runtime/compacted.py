"""Reading some partitions of a compacted topic to their end: the state a stateful stage restores on assignment.

Example:
    >>> latest = read_partitions(settings.kafka, "ubridge.delivery-revisions.v1", [0, 2])
    >>> latest[0]   # {key: value}, the latest value per key; a tombstone (empty or null value) removes the key
"""

import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from routing.errors import DataError
from schemas import Codec

log = structlog.get_logger(__name__)

_READ_TIMEOUT_S: Final = 120.0
_POLL_MS: Final = 500


def read_latest(
    consumer: KafkaConsumer,
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    only: bytes | None = None,
    key_prefix: bytes = b"",
) -> dict[int, dict[bytes, ConsumerRecord]]:
    """The latest record per key of ``partitions`` (None: all) of ``topic``, read to the end seen on entry.

    A tombstone (a null value, or an empty one as earlier versions wrote) removes its key.

    Args:
        consumer: A consumer without a group; it is assigned the partitions.
        topic: The compacted topic.
        partitions: Partition numbers to read, None for all.
        only: Keep only this key (``ubridge tasks show``), to bound memory.
        key_prefix: Keep only keys that start with it.

    Raises:
        LookupError: the topic, or one of the partitions, does not exist.
        TimeoutError: the end was not reached within two minutes.
    """
    if partitions is not None and not partitions:
        return {}
    existing = consumer.partitions_for_topic(topic)
    if not existing:
        message = f"topic {topic} does not exist"
        raise LookupError(message)
    wanted = sorted(existing) if partitions is None else sorted(partitions)
    missing = sorted(set(wanted) - set(existing))
    if missing:
        message = f"topic {topic} has no partition {missing}: it needs as many partitions as the topic it follows"
        raise LookupError(message)
    result: dict[int, dict[bytes, ConsumerRecord]] = {p: {} for p in wanted}
    tps = [TopicPartition(topic, p) for p in wanted]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    for partition, record in records_to_end(consumer, tps, what=topic):
        key = record.key
        if key is None or only not in (None, key) or not key.startswith(key_prefix):
            continue
        if record.value:
            result[partition][key] = record
        else:
            result[partition].pop(key, None)
    return result


def records_to_end(
    consumer: KafkaConsumer, tps: Sequence[TopicPartition], *, what: str, timeout_s: float = _READ_TIMEOUT_S
) -> Iterator[tuple[int, ConsumerRecord]]:
    """Each record (with its partition) from the consumer's positions to the end offsets seen on entry.

    Raises:
        TimeoutError: the end was not reached within ``timeout_s``.
    """
    end = consumer.end_offsets(list(tps))
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.monotonic() > deadline:
            message = f"could not read {what} to its end within {timeout_s} s"
            raise TimeoutError(message)
        for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
            yield from ((tp.partition, record) for record in records if record.offset < end[tp])


def decoded_to_end(consumer: KafkaConsumer, topic: str, record: str, codec: Codec) -> Iterator[dict[str, Any]]:
    """Every ``record`` of ``topic``, all partitions from their start to the end seen on entry, decoded.

    The consumer has no group; a tombstone is skipped, and so is an unreadable record (logged with its reason:
    the stage that wrote it dead-lettered nothing, and the rest of the topic still counts).
    """
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not tps:
        return
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    for partition, item in records_to_end(consumer, tps, what=topic):
        if not item.value:
            continue
        try:
            yield codec.decode_as(record, item.value)
        except DataError as exc:
            log.warning("record_unreadable", topic=topic, partition=partition, offset=item.offset, reason=str(exc))


def read_partitions(
    kafka: KafkaSettings, topic: str, partitions: Sequence[int], *, key_prefix: bytes = b""
) -> dict[int, dict[bytes, bytes]]:
    """The latest value per key (starting with ``key_prefix``) of ``partitions`` (see :func:`read_latest`)."""
    consumer = make_consumer(kafka, group_id=None)
    try:
        latest = read_latest(consumer, topic, partitions, key_prefix=key_prefix)
    finally:
        consumer.close()
    return {partition: {key: record.value for key, record in records.items()} for partition, records in latest.items()}


class CompactedReader:
    """Reads partitions of one compacted topic (a new consumer per call), for stages restoring their state.

    Args:
        kafka: Cluster settings.
        topic: The compacted topic (prefix applied).
    """

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._kafka = kafka
        self.topic = topic

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
        """The latest value per key of each partition (see :func:`read_partitions`)."""
        return read_partitions(self._kafka, self.topic, partitions)
