"""Closing a producer that still holds records (a broker away, a stop that cannot wait): closed for good."""

import gc
import sys
import threading
from typing import Any

import pytest

from connectors.runtime.kafka import TopicSpec, close_producer, ensure_topics, make_producer
from connectors.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_a_producer_closed_with_records_pending_drops_them_and_leaves_nothing_to_its_finaliser(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """kafka-python's close raises and stays open (its sender thread runs on); close_producer stops it for good."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    topic = f"{unique_prefix}pending"
    ensure_topics(kafka, [TopicSpec(topic, 1)])
    producer = make_producer(kafka, client_id=f"{unique_prefix}closing")
    producer.send(topic, b"warm-up").get(timeout=30)
    producer.send(topic, b"pending")  # not acknowledged within the 0 s the close allows
    unraisable: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        delivered = close_producer(producer, timeout_s=0)
        senders = [t.name for t in threading.enumerate() if t.name.startswith(f"{unique_prefix}closing")]
        del producer
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert (delivered, senders, unraisable) == (False, [], [])
