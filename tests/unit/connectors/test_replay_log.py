"""The shared replay set: other processes' signatures are refused, released ones forgotten everywhere."""

import threading
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.replay_log import SharedReplays
from tests.unit.connectors.intake_support import Producer

TOPIC = "t.ubridge.push-signatures.v1"


def record(offset: int, key: bytes, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, 0, offset, 0, 0, key, value, [], None, len(key), len(value or b""), -1)


class Consumer:
    """Hands out the given batches once, then nothing; stops ``stop`` when they are all handed out."""

    def __init__(self, batches: list[list[ConsumerRecord]], stop: threading.Event) -> None:
        self.batches = batches
        self.stop = stop

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[ConsumerRecord]]:
        if not self.batches:
            self.stop.set()
            return {}
        return {TopicPartition(TOPIC, 0): self.batches.pop(0)}

    def close(self) -> None:
        """Nothing to close."""


def replays(batches: list[list[ConsumerRecord]], producer: Producer, stop: threading.Event) -> SharedReplays:
    consumer: Any = Consumer(batches, stop)
    shared: Any = producer
    return SharedReplays(
        consumer,
        producer=shared,
        topic=TOPIC,
        stage="gonggai-webhook",
        window_s=300,
        max_entries=10,
        clock=lambda: 1000.0,
    )


def test_signatures_of_other_processes_and_tombstones_are_applied() -> None:
    """A signature record is remembered, a later tombstone forgets it, other stages' and expired ones are ignored."""
    stop = threading.Event()
    batches = [
        [record(0, b"gonggai-webhook:aa", b"1300"), record(1, b"aishandong-gateway:bb", b"1300")],
        [record(2, b"gonggai-webhook:cc", b"1300"), record(3, b"gonggai-webhook:aa", None)],
        [record(4, b"gonggai-webhook:dd", b"900"), record(5, b"gonggai-webhook:ee", b"not a number")],
    ]
    shared = replays(batches, Producer(), stop)
    shared.follow(stop)
    assert [s for s in ("aa", "bb", "cc", "dd", "ee") if shared.cache.seen(s, 1000.0)] == ["cc"]


def test_release_writes_a_tombstone_from_the_follower() -> None:
    """A released signature becomes a tombstone on the topic, written by the follower, not the request thread."""
    stop = threading.Event()
    producer = Producer()
    shared = replays([[]], producer, stop)
    assert shared.record("ff", 1300).value == b"1300"
    shared.release("ff")
    assert producer.sent == []
    shared.follow(stop)
    assert producer.sent == [(TOPIC, b"gonggai-webhook:ff", None)]
