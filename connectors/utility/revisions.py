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

from collections.abc import Sequence
from typing import Protocol

import structlog

from connectors.runtime.compacted import read_partitions
from connectors.settings import KafkaSettings
from routing.revisions import Revision, decode_revision

log = structlog.get_logger(__name__)


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
        stored = read_partitions(self._kafka, self._topic, partitions, key_prefix=self._prefix)
        return {partition: self._decoded(values) for partition, values in stored.items()}

    def _decoded(self, values: dict[bytes, bytes]) -> dict[str, Revision]:
        revisions: dict[str, Revision] = {}
        for key, value in values.items():
            task_id = key[len(self._prefix) :].decode()
            try:
                revisions[task_id] = decode_revision(value)
            except ValueError as exc:
                log.warning("revision_unreadable", topic=self._topic, task_id=task_id, error=str(exc))
        return revisions
