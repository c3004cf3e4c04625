"""Reading some partitions of a compacted topic to their end: the state a stateful stage restores on assignment.

Example:
    >>> latest = read_partitions(settings.kafka, "ubridge.delivery-revisions.v1", [0, 2])
    >>> latest[0]   # {key: value}, the latest value per key; a tombstone (empty or null value) removes the key
"""

import time
from collections.abc import Sequence
from typing import Final

from kafka import TopicPartition

from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings

_READ_TIMEOUT_S: Final = 120.0
_POLL_MS: Final = 500


def read_partitions(
    kafka: KafkaSettings, topic: str, partitions: Sequence[int], *, key_prefix: bytes = b""
) -> dict[int, dict[bytes, bytes]]:
    """The latest value per key (starting with ``key_prefix``) of ``partitions``, read to the end seen on entry.

    Raises:
        LookupError: the topic or a partition does not exist.
        TimeoutError: the end was not reached within two minutes.
    """
    consumer = make_consumer(kafka, group_id=None)
    try:
        existing = consumer.partitions_for_topic(topic) or set()
        missing = sorted(set(partitions) - existing)
        if missing:
            message = f"topic {topic} has no partition {missing}: it needs as many as the topic it follows"
            raise LookupError(message)
        result: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return result
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                message = f"could not read {topic} to its end within {_READ_TIMEOUT_S} s"
                raise TimeoutError(message)
            for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
                for record in records:
                    if record.offset >= end[tp] or record.key is None or not record.key.startswith(key_prefix):
                        continue
                    if record.value:
                        result[tp.partition][record.key] = record.value
                    else:
                        result[tp.partition].pop(record.key, None)
        return result
    finally:
        consumer.close()


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
