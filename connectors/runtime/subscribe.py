"""Joining a consumer group only once the consumer's metadata shows the topics it subscribes to.

The group's leader assigns only the partitions its own metadata knows. A member that joins right after its
topics were created (a fresh installation, a new utility's task topic) can be handed nothing, and kafka-python
rejoins only when a later metadata refresh shows the topic, which may take up to ``metadata.max.age.ms`` (5
minutes). CI saw a source lease never owned and stages left without partitions that way. Asking for the topics'
partitions first (kafka-python fetches the metadata when its cache lacks them) closes that window.

The group's leader also remembers what its metadata said when it assigned, and rejoins when a later metadata
response says something else. kafka-python 3.0.12 takes that reference from a snapshot it refreshes only on
metadata responses that arrive after ``subscribe``: a member that joined first (every stage, at every start)
assigned against the empty snapshot of an unsubscribed consumer, so the next metadata response started a
second rebalance at once, revoking what it had just been given; a sink then delivered its tasks in flight
twice. The snapshot is taken from the metadata this module has just checked, as the Java consumer does when it
subscribes.
"""

import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog
from kafka import KafkaConsumer
from kafka.errors import KafkaError

log = structlog.get_logger(__name__)

TOPICS_WAIT_S = 30.0  # then join anyway: a topic still missing is a configuration error the logs name
_RETRY_S = 0.2


def subscribe(
    consumer: KafkaConsumer,
    topics: Sequence[str],
    *,
    listener: Any,
    stop: threading.Event,
    stage: str,
    wait_s: float = TOPICS_WAIT_S,
) -> None:
    """Subscribe ``consumer`` to ``topics`` once its metadata holds each of them, or ``wait_s`` has passed."""
    missing = list(topics)
    deadline = time.monotonic() + wait_s
    while missing:
        missing = [topic for topic in missing if not _partitions(consumer, topic)]
        if not missing:
            break
        if time.monotonic() >= deadline or stop.wait(_RETRY_S):
            log.warning("topics_not_in_metadata", stage=stage, topics=missing, waited_s=wait_s)
            break
    consumer.subscribe(list(topics), listener=listener)
    # kafka-python offers no public way to refresh the snapshot
    coordinator, subscription = consumer._coordinator, consumer._subscription
    coordinator._metadata_snapshot = coordinator._build_metadata_snapshot(subscription, consumer._cluster)


def _partitions(consumer: KafkaConsumer, topic: str) -> set[int]:
    try:
        return set(consumer.partitions_for_topic(topic))
    except KafkaError:
        return set()  # the broker is not answering yet: asked again until the wait is over
