"""A consumer whose rebalance began finishes it even when the metadata change that began it is gone again.

The flap is what a lagging broker's metadata response does to the group's leader: its view of a topic differs
from the one it assigned with for one response, then is back. The test makes that difference by hand (the
metadata snapshot kafka-python compares) and lets the rest happen on the real broker.
"""

import threading
import time
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.coordinator.base import MemberState

import connectors.runtime.kafka  # noqa: F401 - installs the fix, as every ubridge process does
from connectors.runtime.subscribe import subscribe


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.assigned: list[set[int]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to hand over."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Note each completed rebalance."""
        self.assigned.append({tp.partition for tp in assigned})


def _poll_until(consumer: KafkaConsumer, done: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)


def test_a_rebalance_begun_on_a_passing_metadata_change_is_finished(kafka_bootstrap: str, unique_prefix: str) -> None:
    """The leader starts a rejoin, the change vanishes before the next poll: it still rejoins and fetches again."""
    topic = f"{unique_prefix}flap"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    listener = _Assignments()
    group = f"{unique_prefix}g"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    coordinator = consumer._coordinator
    try:
        # joins once its metadata has the new topic, as every stage does: the leader assigns only what it knows
        subscribe(consumer, [topic], listener=listener, stop=threading.Event(), stage="flap")
        _poll_until(consumer, lambda: listener.assigned, 60)
        assert listener.assigned == [{0, 1, 2}]
        seen = coordinator._metadata_snapshot
        coordinator._metadata_snapshot = {topic: set()}  # one metadata response without the topic
        consumer.poll(timeout_ms=0)  # sees the change: the rejoin begins and its JoinGroup goes out
        assert coordinator.state is MemberState.REBALANCING
        coordinator._metadata_snapshot = seen  # the next response has the topic again
        _poll_until(consumer, lambda: len(listener.assigned) > 1, 30)
        assert (coordinator.state, listener.assigned) == (MemberState.STABLE, [{0, 1, 2}, {0, 1, 2}])
    finally:
        consumer.close()
        admin.close()
