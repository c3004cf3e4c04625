from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from connectors.broker import kafka_install
from connectors.broker.local_kafka import broker_status, start_broker, stop_broker
from connectors.runtime.kafka import TopicSpec, ensure_topics
from connectors.settings import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def broker_home(tmp_path: Path) -> Iterator[Path]:
    """A broker home of the test's own, whose broker is stopped however the test ends."""
    home = tmp_path / "broker"
    yield home
    stop_broker(home)


def test_broker_round_trips_a_record(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A record produced to a new, auto-created topic comes back out of a consumer group unchanged."""
    topic = f"{unique_prefix}round-trip"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        producer.send(topic, key=b"key", value=b"value").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_prefix}group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=30_000,
    )
    try:
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert (b"key", b"value") == (record.key, record.value)


def test_restart_needs_no_maven(broker_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped broker starts again from its home on the cached jars, and status follows each step."""
    first = start_broker(broker_home, port=0)
    assert first == broker_status(broker_home)
    assert stop_broker(broker_home)
    assert broker_status(broker_home) is None

    def no_network(mvn: str, libs: Path) -> None:
        pytest.fail(f"Maven was called again to fill {libs}")

    monkeypatch.setattr(kafka_install, "fetch_kafka", no_network)
    second = start_broker(broker_home, port=0)
    assert second == broker_status(broker_home)
    assert first.pid != second.pid


def test_a_compacted_topic_with_retention_also_deletes(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A compacted spec with retention_ms is created compact,delete with that retention (push signatures)."""
    name = f"{unique_prefix}signatures"
    ensure_topics(
        KafkaSettings(bootstrap=kafka_bootstrap), [TopicSpec(name, 1, compacted=True, retention_ms=86_400_000)]
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        admin.close()
    entries = {key: data["value"] for key, data in described["topic"][name].items()}
    assert (entries["cleanup.policy"], entries["retention.ms"]) == ("compact,delete", "86400000")
