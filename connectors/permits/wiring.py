"""Builds the permit stages from the configuration (the registry lists them; this module knows their parts).

Four stages: ``permit-intake`` (utilities file, HTTP), ``permit-submitter`` (every department at once),
``permit-follower`` (the departments' decisions; leased: it follows every permit, so one process runs it) and
``permit-notices`` (each state to the utility).
"""

import threading

from connectors.permits.follower import PermitFollower, catch_up, read_statuses
from connectors.permits.intake import PermitIntake, PermitIntakeHandler
from connectors.permits.notices import NOTICES_PATH, PermitNotices
from connectors.permits.settings import PermitSettings
from connectors.permits.submitter import PermitSubmitter
from connectors.runtime.http_intake import intake_producer
from connectors.runtime.kafka import make_consumer
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import PeerPoster
from connectors.runtime.utility_notices import utility_targets
from connectors.settings import Settings
from connectors.status.task_view import TaskView
from routing.calendar import load_calendar
from routing.permits import load_policy
from schemas import Codec

APPROVAL_PEER = "approval"


def _config(settings: Settings) -> PermitSettings:
    config = settings.permits
    assert config is not None  # noqa: S101 - the registry lists the stages only when permits are configured
    return config


def build_permit_intake(settings: Settings, *, metrics: Metrics, stop: threading.Event) -> PermitIntake:
    """The intake, bound to its port; a utility authenticates with its status-callback token.

    It reads the task-status topic into a temporary task view of its own (the status callbacks' one): a utility
    files permits only for tasks delivered to it.
    """
    config = _config(settings)
    tokens = {u.callback_token.get_secret_value(): u.id for u in settings.utilities if u.callback_token is not None}
    view = TaskView(settings.kafka, settings.topic("task_status"), wait_s=config.intake.unknown_task_wait_s)
    handler = PermitIntakeHandler(
        tokens=tokens,
        topic=settings.topic("permits"),
        dlq_topic=settings.dlq_topic(PermitIntakeHandler.stage),
        policy=load_policy(config.policy),
        tasks=view,
    )
    return PermitIntake(
        handler,
        view=view,
        host=config.intake.host,
        port=config.intake.port,
        producer=intake_producer(settings.kafka, config.intake),
        metrics=metrics,
        stop=stop,
        max_body_bytes=config.intake.max_body_bytes,
        limits=config.intake,
    )


def build_permit_submitter(settings: Settings, *, metrics: Metrics, stop: threading.Event) -> PermitSubmitter:
    """The submitter, knowing the permits already on the status topic."""
    config = _config(settings)
    status_topic = settings.topic("permit_status")
    reader = make_consumer(settings.kafka, group_id=None)
    try:
        published = {status["permit_id"] for status in read_statuses(reader, status_topic)}
    finally:
        reader.close()
    poster = PeerPoster(
        APPROVAL_PEER,
        subject="permit",
        token=config.approval.token,
        timeout_s=config.approval.timeout_s,
        retry=config.retry,
        retries=metrics.permit_retries,
        stop=stop,
    )
    return PermitSubmitter(
        input_topic=settings.topic("permits"),
        status_topic=status_topic,
        approval_url=config.approval.url,
        poster=poster,
        policy=load_policy(config.policy),
        calendar=load_calendar(config.calendar),
        metrics=metrics,
        task_status_topic=settings.topic("task_status"),
        published=published,
    )


def build_permit_follower(settings: Settings, *, metrics: Metrics) -> PermitFollower:
    """The follower, with every permit of the status topic learnt."""
    config = _config(settings)
    status_topic = settings.topic("permit_status")
    follower = PermitFollower(
        status_topic=status_topic,
        approval_url=config.approval.url,
        token=config.approval.token,
        policy=load_policy(config.policy),
        calendar=load_calendar(config.calendar),
        metrics=metrics,
        poll_interval_s=config.poll_interval_s,
        timeout_s=config.approval.timeout_s,
    )
    reader = make_consumer(settings.kafka, group_id=None)
    try:
        catch_up(reader, status_topic, follower)
    finally:
        reader.close()
    return follower


def build_permit_notices(settings: Settings, *, metrics: Metrics, stop: threading.Event, codec: Codec) -> PermitNotices:
    """The notices stage: every configured utility is a target, with its task credentials."""
    config = _config(settings)
    targets = utility_targets(
        settings.utilities,
        path=NOTICES_PATH,
        endpoints=config.endpoints,
        subject="permit notice",
        retry=config.retry,
        retries=metrics.permit_retries,
        stop=stop,
    )
    return PermitNotices(input_topic=settings.topic("permit_status"), targets=targets, codec=codec)
