"""The 工改 push webhook against the real broker: signed GBK batches in, raw records in the default format out."""

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.gonggai.webhook import WEBHOOK_PATH, build_webhook
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.kafka import TopicSpec, ensure_topics
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from simulators.approval.generator import EventGenerator, inject_defect
from simulators.approval.push import push_events
from tests.support import read_topic

pytestmark = pytest.mark.integration

MAPPINGS = Path(__file__).parents[2] / "deploy" / "config" / "mappings"
SECRET = "integration-secret-0123456789"


@dataclass
class Running:
    url: str
    topic: str
    metrics: Metrics


@pytest.fixture
def webhook(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Running]:
    """The Liaocheng webhook on a free port, writing to a fresh raw topic on the real broker."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    topic = f"{unique_prefix}ubridge.raw.gonggai.v1"
    ensure_topics(kafka, [TopicSpec(topic, 3)])
    settings = GonggaiWebhookSettings(
        name="gonggai-webhook-liaocheng", port=0, secret=SECRET, mapping=MAPPINGS / "vendor-liaocheng.yaml"
    )
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    intake = build_webhook(settings, kafka=kafka, raw_topic=topic, metrics=metrics, stop=stop)
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    yield Running(f"http://127.0.0.1:{intake.port}{WEBHOOK_PATH}", topic, metrics)
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_gbk_batches_become_raw_records_in_the_default_format(kafka_bootstrap: str, webhook: Running) -> None:
    """120 events pushed as GBK Liaocheng batches land once each, mapped, keyed by project and stamped."""
    events = EventGenerator(seed=31).generate(120)
    results = push_events(webhook.url, SECRET, events, charset="gbk", batch=50, vendor="liaocheng")
    assert [(r.status, r.body["accepted"]) for r in results] == [(202, 50), (202, 50), (202, 20)]
    records = read_topic(kafka_bootstrap, webhook.topic)
    assert sorted((json.loads(r.value) for r in records), key=lambda e: e["seq"]) == events
    for record in records:
        event = json.loads(record.value.decode("utf-8"))
        assert record.key == event["xmdm"].encode()
        headers = dict(record.headers)
        assert headers["ubridge.source"] == b"gonggai-webhook-liaocheng"
        assert headers["ubridge.vendor"] == b"liaocheng"
        assert headers["ubridge.format"] == b"default"
        assert headers["ubridge.ingested_at"].endswith(b"+00:00")
    by_partition: dict[int, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(record.partition, []).append(json.loads(record.value)["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_partition.values())  # each project's events in order
    out = webhook.metrics.registry.get_sample_value("ubridge_records_out_total", {"stage": "gonggai-webhook-liaocheng"})
    assert out == 120


def test_rejected_batch_leaves_the_topic_empty(kafka_bootstrap: str, webhook: Running) -> None:
    """A batch with one invalid event is refused with 422 naming the vendor field, and nothing is written."""
    events = EventGenerator(seed=32).generate(10)
    events[6] = inject_defect(events[6], "region", random.Random(1))
    (result,) = push_events(webhook.url, SECRET, events, charset="gbk", batch=10, vendor="liaocheng")
    assert result.status == 422
    assert (result.body["field"], result.body["index"]) == ("project.行政区划", 6)
    (bad_secret,) = push_events(webhook.url, "not-the-secret-at-all", events[:5], charset="gbk", vendor="liaocheng")
    assert bad_secret.status == 401
    assert read_topic(kafka_bootstrap, webhook.topic) == []
