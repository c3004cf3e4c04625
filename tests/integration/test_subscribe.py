"""A stage joins its group only once its consumer's metadata shows its topics (so the leader can assign them)."""

import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from connectors.runtime.subscribe import subscribe


def test_a_topic_just_created_is_in_the_metadata_before_the_join(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Created a moment ago: the consumer knows its 3 partitions when it subscribes, and nothing is warned of."""
    topic = f"{unique_prefix}fresh"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_prefix}g")
    try:
        consumer.topics()  # its metadata cache is filled before the topic exists
        admin.create_topics([NewTopic(topic, 3, 1)])
        with capture_logs() as logs:
            subscribe(consumer, [topic], listener=None, stop=threading.Event(), stage="s")
        assert logs == []
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        assert {tp.partition for tp in consumer.assignment()} == {0, 1, 2}
    finally:
        consumer.close()
        admin.close()


def test_a_topic_that_never_appears_is_named_and_the_join_goes_ahead(kafka_bootstrap: str, unique_prefix: str) -> None:
    """No such topic: after the bounded wait, a warning names it and the consumer subscribes anyway."""
    topic = f"{unique_prefix}absent"
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"{unique_prefix}g", allow_auto_create_topics=False
    )
    try:
        started = time.monotonic()
        with capture_logs() as logs:
            subscribe(consumer, [topic], listener=None, stop=threading.Event(), stage="s", wait_s=1.0)
        assert 1.0 <= time.monotonic() - started < 20
        assert consumer.subscription() == {topic}
        assert [(e["event"], e["topics"]) for e in logs] == [("topics_not_in_metadata", [topic])]
    finally:
        consumer.close()


class _Counting(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts the assignments a consumer is given."""

    def __init__(self) -> None:
        self.assigned = 0

    def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing held."""

    def on_partitions_assigned(self, assigned: object) -> None:
        self.assigned += 1


def test_the_first_member_of_a_group_is_assigned_once_and_not_rebalanced_at_once(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """The leader's reference metadata is the one it assigned with: no second rebalance follows the first join."""
    topic = f"{unique_prefix}once"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=f"{unique_prefix}g")
    listener = _Counting()
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
        subscribe(consumer, [topic], listener=listener, stop=threading.Event(), stage="s")
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        settled = time.monotonic() + 4  # a few metadata responses: each one used to start a second rebalance
        while time.monotonic() < settled:
            consumer.poll(timeout_ms=200)
        assert (listener.assigned, {tp.partition for tp in consumer.assignment()}) == (1, {0, 1, 2})
    finally:
        consumer.close()
        admin.close()
