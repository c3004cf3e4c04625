"""Where each utility's sink keeps the revision it last delivered of every task: a compacted topic.

``ubridge.delivery-revisions.v1`` is co-partitioned with the task topic: the revision of a task read from
task partition *p* is written to partition *p*, keyed ``<utility>/<task id>``, valued
:func:`routing.revisions.encode_revision`. A sink that is assigned task partitions reads the same partitions
of this topic to their end first, so revision numbers survive restarts and rebalances, and a reprocessed
task topic repeats its revisions instead of numbering them again.

Example:
    >>> reader = KafkaRevisionReader(settings.kafka, "ubridge.delivery-revisions.v1", utility="yantai-water")
    >>> reader.read([0, 2])   # {0: {task id: Revision}, 2: {...}}
"""

import time
from collections.abc import Sequence
from typing import Final, Protocol

import structlog
from kafka import TopicPartition

from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from routing.revisions import Revision, decode_revision

log = structlog.get_logger(__name__)

_READ_TIMEOUT_S: Final = 120.0
_POLL_MS: Final = 500


def revision_key(utility: str, task_id: str) -> bytes:
    """The key of a task's revision on the revision topic."""
    return f"{utility}/{task_id}".encode()


class RevisionReader(Protocol):
    """Reads the revisions of one utility's tasks in some partitions."""

    def read(self, partitions: Sequence[int]) -> dict[int, dict[str, Revision]]:
        """Task id → last revision, per partition."""
        ...


class KafkaRevisionReader:
    """Reads the revision topic with a consumer of its own (no group), one per call.

    Args:
        kafka: Cluster settings.
        topic: The revision topic (prefix applied).
        utility: Only this utility's keys are kept.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, *, utility: str) -> None:
        self._kafka = kafka
        self._topic = topic
        self._prefix = f"{utility}/".encode()

    def read(self, partitions: Sequence[int]) -> dict[int, dict[str, Revision]]:
        """Task id → last revision per partition, read to the end offsets seen on entry.

        Raises:
            LookupError: the topic or a partition does not exist.
            TimeoutError: the end was not reached within two minutes.
        """
        consumer = make_consumer(self._kafka, group_id=None)
        try:
            existing = consumer.partitions_for_topic(self._topic) or set()
            missing = sorted(set(partitions) - existing)
            if missing:
                message = f"topic {self._topic} has no partition {missing}: it needs as many as the task topic"
                raise LookupError(message)
            result: dict[int, dict[str, Revision]] = {p: {} for p in partitions}
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            if not tps:
                return result
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + _READ_TIMEOUT_S
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    message = f"could not read {self._topic} to its end within {_READ_TIMEOUT_S} s"
                    raise TimeoutError(message)
                for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
                    for record in records:
                        if record.offset < end[tp] and record.key is not None and record.key.startswith(self._prefix):
                            self._keep(result[tp.partition], record.key, record.value)
            return result
        finally:
            consumer.close()

    def _keep(self, revisions: dict[str, Revision], key: bytes, value: bytes | None) -> None:
        task_id = key[len(self._prefix) :].decode()
        try:
            revisions[task_id] = decode_revision(value or b"")
        except ValueError as exc:
            log.warning("revision_unreadable", topic=self._topic, task_id=task_id, error=str(exc))
