"""Builds the joint-survey stages from the configuration (the registry lists them; this module knows their parts).

Three stages: ``joint-surveys`` (proposes and agrees; leased: it holds every project's open tasks),
``survey-notices`` (each change to every participant) and ``survey-replies`` (the utilities' answers, HTTP).
"""

import threading
from collections.abc import Iterator
from typing import cast

from connectors.runtime.compacted import decoded_to_end
from connectors.runtime.http_intake import intake_producer
from connectors.runtime.kafka import make_consumer
from connectors.runtime.metrics import Metrics
from connectors.runtime.utility_notices import utility_targets
from connectors.settings import Settings
from connectors.surveys.intake import SurveyReplyHandler, SurveyReplyIntake
from connectors.surveys.notices import NOTICES_PATH, SurveyNotices
from connectors.surveys.settings import SurveySettings
from connectors.surveys.stage import JointSurveys, catch_up
from routing.calendar import load_calendar
from routing.records import TaskStatus
from routing.surveys import load_survey_policy
from schemas import Codec


def _config(settings: Settings) -> SurveySettings:
    config = settings.surveys
    assert config is not None  # noqa: S101 - the registry lists the stages only when surveys are configured
    return config


def build_joint_surveys(settings: Settings, *, codec: Codec) -> JointSurveys:
    """The stage, with every survey proposed so far and every task's status learnt."""
    config = _config(settings)
    stage = JointSurveys(
        status_topic=settings.topic("task_status"),
        replies_topic=settings.topic("survey_replies"),
        surveys_topic=settings.topic("surveys"),
        policy=load_survey_policy(config.policy),
        calendar=load_calendar(config.calendar),
        settle_s=config.settle_s,
        codec=codec,
    )
    reader = make_consumer(settings.kafka, group_id=None)
    try:
        surveys = list(decoded_to_end(reader, settings.topic("surveys"), "SurveyProposal", codec))
        statuses = cast(
            "Iterator[TaskStatus]", decoded_to_end(reader, settings.topic("task_status"), "TaskStatus", codec)
        )
        catch_up(stage, surveys=surveys, statuses=statuses)
    finally:
        reader.close()
    return stage


def build_survey_notices(settings: Settings, *, metrics: Metrics, stop: threading.Event, codec: Codec) -> SurveyNotices:
    """The notices stage: every configured utility is a target, with its task credentials."""
    config = _config(settings)
    targets = utility_targets(
        settings.utilities,
        path=NOTICES_PATH,
        endpoints=config.endpoints,
        subject="survey",
        retry=config.retry,
        retries=metrics.survey_retries,
        stop=stop,
    )
    return SurveyNotices(input_topic=settings.topic("surveys"), targets=targets, codec=codec)


def build_survey_replies(settings: Settings, *, metrics: Metrics, stop: threading.Event) -> SurveyReplyIntake:
    """The reply intake, bound to its port; a utility authenticates with its status-callback token."""
    config = _config(settings)
    tokens = {u.callback_token.get_secret_value(): u.id for u in settings.utilities if u.callback_token is not None}
    handler = SurveyReplyHandler(
        tokens=tokens, topic=settings.topic("survey_replies"), dlq_topic=settings.dlq_topic(SurveyReplyHandler.stage)
    )
    return SurveyReplyIntake(
        handler,
        host=config.intake.host,
        port=config.intake.port,
        producer=intake_producer(settings.kafka, config.intake),
        metrics=metrics,
        stop=stop,
        max_body_bytes=config.intake.max_body_bytes,
        limits=config.intake,
    )
