"""The SLA ledger: a stateful stage over task statuses, its changelog, metrics and ``ubridge tasks show``.

Example:
    >>> loop = build_ledger(kafka=settings.kafka, status_topic=settings.topic("task_status"),
    ...                     changelog_topic=settings.topic("ledger_changelog"), sla_topic=settings.topic("sla"),
    ...                     dlq_topic=settings.dlq_topic("ledger"), calendar_path=Path("deploy/config/calendar.yaml"),
    ...                     policies_path=Path("deploy/config/sla-policies.yaml"), clock="wall",
    ...                     metrics=metrics, stop=stop)
    >>> loop.run()
"""

import threading
from datetime import timedelta
from pathlib import Path

from connectors.ledger.changelog import KafkaChangelogReader
from connectors.ledger.metrics import LedgerMetrics
from connectors.ledger.stage import DEFAULT_CLOSED_RETENTION, Clock, TaskLedger
from connectors.runtime.kafka import make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.calendar import load_calendar
from routing.sla_policy import load_policies
from schemas import Codec

__all__ = ["Clock", "LedgerMetrics", "TaskLedger", "build_ledger"]


def build_ledger(
    *,
    kafka: KafkaSettings,
    status_topic: str,
    changelog_topic: str,
    sla_topic: str,
    dlq_topic: str,
    calendar_path: Path,
    policies_path: Path,
    clock: Clock,
    metrics: Metrics,
    stop: threading.Event,
    max_held_per_partition: int = 1000,
    closed_retention: timedelta = DEFAULT_CLOSED_RETENTION,
    codec: Codec | None = None,
) -> StageLoop:
    """The ledger stage's loop, in consumer group ``<prefix>ubridge.ledger``; topic names are prefixed already.

    The ledger's own collectors are registered in ``metrics.registry``, so build one ledger per registry.

    Raises:
        ValueError: the calendar or policies file is not valid (the message names the file and key).
    """
    ledger = TaskLedger(
        input_topic=status_topic,
        changelog_topic=changelog_topic,
        sla_topic=sla_topic,
        dlq_topic=dlq_topic,
        calendar=load_calendar(calendar_path),
        policies=load_policies(policies_path),
        codec=codec or Codec.default(),
        metrics=LedgerMetrics(metrics.registry),
        reader=KafkaChangelogReader(kafka, changelog_topic),
        clock=clock,
        max_held_per_partition=max_held_per_partition,
        closed_retention=closed_retention,
    )
    return StageLoop(
        ledger,
        consumer=make_consumer(kafka, group_id=f"{kafka.topic_prefix}ubridge.{TaskLedger.stage}", background=True),
        producer=make_producer(kafka),
        dlq_topic=dlq_topic,
        metrics=metrics,
        stop=stop,
    )
