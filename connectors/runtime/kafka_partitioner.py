"""kafka-python's default partitioner, with each key's murmur2 hash remembered.

kafka-python hashes every keyed record's key in pure Python: 7-8 µs of a 23 µs ``send`` measured here, paid
again for each output of every record. ubridge's keys repeat (a project code keys every event, task and
status of its project), so the hash of a key is kept, in a cache bounded per process. The partition chosen is
the one kafka-python's and the Java client's default partitioner choose, so records keep their partition
across clients, releases and languages.
"""

from functools import lru_cache
from typing import Any

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

KEYS_REMEMBERED = 1 << 14  # about 4 MB of keys and hashes in a process, shared by its producers
_POSITIVE = 0x7FFFFFFF


@lru_cache(maxsize=KEYS_REMEMBERED)
def key_hash(key: bytes) -> int:
    """The non-negative murmur2 hash of ``key`` the default partitioner takes modulo the partition count."""
    return int(murmur2(key)) & _POSITIVE


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """The default partitioner's choice: a keyed record by its key's hash, an unkeyed one at random."""

    def partition(  # noqa: PLR0917 - kafka-python calls it with these six, by position
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        """The partition of ``topic`` a record goes to."""
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        # kafka-python keeps a topic's partitions in a set: sorted, as the default partitioner numbers them
        return int(sorted(partitions)[key_hash(bytes(serialized_key)) % len(partitions)])
