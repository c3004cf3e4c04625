"""Building the complaint loop's stage from the configuration.

Example:
    >>> loop = build_complaints(settings, metrics=metrics, stop=stop)
    >>> loop.run()
"""

import threading

from kafka.consumer.fetcher import ConsumerRecord

from connectors.complaints.metrics import ComplaintMetrics
from connectors.complaints.platform import PlatformClient
from connectors.complaints.stage import ComplaintLoop
from connectors.ledger.changelog import is_held_key
from connectors.runtime.compacted import read_latest
from connectors.runtime.kafka import make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings, Settings
from routing.calendar import load_calendar
from routing.complaints import load_complaint_policy
from routing.satisfaction import load_satisfaction_policy
from schemas import Codec


def ledger_records(kafka: KafkaSettings, topic: str) -> dict[int, dict[bytes, ConsumerRecord]]:
    """The latest record per key of each partition of the complaint ledger topic (tombstones removed)."""
    consumer = make_consumer(kafka, group_id=None)
    try:
        return read_latest(consumer, topic)
    finally:
        consumer.close()


def ledger_values(kafka: KafkaSettings, topic: str) -> list[bytes]:
    """The latest entry of every order on the complaint ledger topic (held visits and closes left out)."""
    latest = ledger_records(kafka, topic)
    return [r.value for records in latest.values() for key, r in records.items() if r.value and not is_held_key(key)]


def build_complaints(
    settings: Settings, *, metrics: Metrics, stop: threading.Event, codec: Codec | None = None
) -> StageLoop:
    """The complaint loop's stage (``complaints`` must be set), in consumer group ``<prefix>ubridge.complaints``.

    Raises:
        ValueError: A policy, satisfaction or calendar file is not valid (the message names the file and key).
    """
    config = settings.complaints
    assert config is not None  # noqa: S101 - stage_specs only lists a configured loop
    kafka = settings.kafka
    ledger_topic = settings.topic("complaints_ledger")
    loop = ComplaintLoop(
        status_topic=settings.topic("task_status"),
        visits_topic=settings.topic("hotline_return_visits"),
        closes_topic=settings.topic("complaints_closes"),
        ledger_topic=ledger_topic,
        escalations_topic=settings.topic("complaints_escalations"),
        dlq_topic=settings.dlq_topic(ComplaintLoop.stage),
        policy=load_complaint_policy(config.policy),
        satisfaction=load_satisfaction_policy(config.satisfaction),
        calendar=load_calendar(config.calendar),
        codec=codec or Codec.default(),
        metrics=ComplaintMetrics(metrics.registry),
        restore=lambda: ledger_records(kafka, ledger_topic),
        platform=None if config.platform is None else PlatformClient(config.platform, stop=stop),
        clock=config.clock,
    )
    return StageLoop(
        loop,
        consumer=make_consumer(kafka, group_id=f"{kafka.topic_prefix}ubridge.{ComplaintLoop.stage}", background=True),
        producer=make_producer(kafka),
        dlq_topic=settings.dlq_topic(ComplaintLoop.stage),
        metrics=metrics,
        stop=stop,
    )
