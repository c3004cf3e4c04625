"""Builders the stage registry calls: the callback intake, and one status poller per polled utility.

Example (in ``connectors/registry.py``):
    >>> tokens = {u.callback_token.get_secret_value(): u.id for u in settings.utilities if u.callback_token}
    >>> intake = build_callback_intake(settings.status_callbacks, tokens=tokens, kafka=settings.kafka,
    ...                                topic=settings.topic("task_status"), metrics=metrics, stop=stop)
"""

import threading
from collections.abc import Mapping

from pydantic import SecretStr

from connectors.runtime.http_intake import intake_producer
from connectors.runtime.kafka import make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.source_runner import SourceRunner, read_cursor
from connectors.settings import KafkaSettings, StatusCallbackSettings, StatusPollSettings
from connectors.status.callback import StatusCallbackHandler
from connectors.status.callback_intake import CallbackIntake
from connectors.status.poller import StatusPoller
from connectors.status.task_view import TaskView
from schemas import Codec


def build_callback_intake(
    settings: StatusCallbackSettings,
    *,
    tokens: Mapping[str, str],
    kafka: KafkaSettings,
    topic: str,
    metrics: Metrics,
    stop: threading.Event,
) -> CallbackIntake:
    """The ``status-callbacks`` intake, bound to its port, checking reports against the delivered tasks.

    Args:
        settings: Where to listen, the body limit, the read deadline, the Kafka wait and the concurrency.
        tokens: Bearer token → utility id, one token per utility that calls back.
        kafka: The cluster.
        topic: The task-status topic (prefix applied).
        metrics: Process metrics.
        stop: Set to stop serving.
    """
    view = TaskView(kafka, topic, path=settings.task_view_path, wait_s=settings.unknown_task_wait_s)
    handler = StatusCallbackHandler(tokens=tokens, topic=topic, codec=Codec.default(), view=view)
    return CallbackIntake(
        handler,
        view=view,
        host=settings.host,
        port=settings.port,
        producer=intake_producer(kafka, settings),
        metrics=metrics,
        stop=stop,
        max_body_bytes=settings.max_body_bytes,
        limits=settings,
    )


def build_poller(
    settings: StatusPollSettings,
    *,
    utility_id: str,
    token: SecretStr,
    kafka: KafkaSettings,
    topic: str,
    dlq_topic: str,
    offsets_topic: str,
    metrics: Metrics,
    stop: threading.Event,
) -> SourceRunner:
    """The ``status-poll-<utility>`` source, resumed from its last committed cursor.

    Args:
        settings: The utility's change feed.
        utility_id: The utility polled.
        token: Its bearer token.
        kafka: The cluster.
        topic: The task-status topic (prefix applied).
        dlq_topic: The stage's dead-letter topic (prefix applied).
        offsets_topic: The compacted cursor topic (prefix applied).
        metrics: Process metrics.
        stop: Set to stop polling.
    """
    poller = StatusPoller(settings, utility_id=utility_id, token=token, topic=topic, dlq_topic=dlq_topic)
    reader = make_consumer(kafka, group_id=None)
    try:
        cursor = read_cursor(reader, offsets_topic, poller.name)
    finally:
        reader.close()
    return SourceRunner(
        poller,
        producer=make_producer(kafka, transactional_id=f"ubridge-source-{poller.name}"),
        offsets_topic=offsets_topic,
        poll_interval_s=settings.poll_interval_s,
        retry=settings.retry,
        metrics=metrics,
        stop=stop,
        start_cursor=cursor,
        dlq_topic=dlq_topic,
    )
