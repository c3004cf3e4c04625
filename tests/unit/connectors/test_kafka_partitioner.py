"""The producers' partitioner picks the partition kafka-python's (and the Java client's) default picks."""

import pytest
from kafka.partitioner import DefaultPartitioner

from connectors.runtime.kafka_partitioner import KEYS_REMEMBERED, KeyHashPartitioner, key_hash


class _Cluster:
    """What a partitioner reads of kafka-python's cluster metadata: one topic's partitions, some of them up."""

    def __init__(self, partitions: set[int], available: set[int]) -> None:
        self._partitions = partitions
        self._available = available

    def topics(self) -> set[str]:
        """The topics known."""
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """Every partition of ``topic``."""
        return self._partitions if topic == "t" else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        """The partitions of ``topic`` with a leader."""
        return self._available if topic == "t" else set()


KEYS = [f"2026-370602-48-01-{i:06d}".encode() for i in range(500)] + [b"", b"\x00\xff", "供水".encode()]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 12, 50])
def test_every_keyed_record_goes_where_the_default_partitioner_sends_it(count: int) -> None:
    """Same partition as DefaultPartitioner for each key, twice over (the second time from the remembered hash)."""
    cluster = _Cluster(set(range(count)), {0})
    ours, theirs = KeyHashPartitioner(), DefaultPartitioner()
    for _ in range(2):
        for key in KEYS:
            expected = theirs.partition("t", key, key, b"v", b"v", cluster)
            assert ours.partition("t", key, key, b"v", b"v", cluster) == expected


def test_the_hash_is_the_java_clients_murmur2() -> None:
    """Known values of Kafka's Utils.murmur2 (its own test vectors), made positive as toPositive does."""
    assert key_hash(b"21") == -973932308 & 0x7FFFFFFF
    assert key_hash(b"foobar") == -790332482 & 0x7FFFFFFF
    assert key_hash(b"a-little-bit-long-string") == -985981536 & 0x7FFFFFFF


def test_an_unkeyed_record_goes_to_an_available_partition() -> None:
    """Without a key: one of the partitions with a leader, as the default partitioner chooses."""
    cluster = _Cluster({0, 1, 2, 3}, {2, 3})
    chosen = {KeyHashPartitioner().partition("t", None, None, b"v", b"v", cluster) for _ in range(200)}
    assert chosen == {2, 3}


def test_the_remembered_hashes_are_bounded() -> None:
    """More distinct keys than the cache holds: it keeps at most KEYS_REMEMBERED of them."""
    for i in range(KEYS_REMEMBERED + 100):
        key_hash(f"key-{i}".encode())
    assert key_hash.cache_info().currsize == KEYS_REMEMBERED
