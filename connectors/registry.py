"""The one explicit list of what ships: every stage ubridge can run, and the topics each needs.

Which stages run is decided by the configuration (a source without settings is not run; every
configured utility gets its own sink). Nothing registers itself on import.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Protocol

from connectors.aishandong.awaiting import AwaitingApplications
from connectors.aishandong.gateway import build_gateway
from connectors.aishandong.pull_source import AishandongPullSource
from connectors.aishandong.router import (
    ApplicationRouter,
    ChainedLookup,
    HttpProjectLookup,
    KafkaProjectTable,
    ProjectLookup,
)
from connectors.aishandong.rules import load_application_rules
from connectors.complaints.build import build_complaints
from connectors.complaints.stage import STAGE as COMPLAINTS
from connectors.gonggai.interface_source import GonggaiInterfaceSource
from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.gonggai.spgl_normaliser import SpglNormaliser
from connectors.gonggai.spgl_source import SpglSource
from connectors.gonggai.webhook import build_webhook
from connectors.hotline.pull_source import HotlinePullSource
from connectors.hotline.push import build_push
from connectors.hotline.router import HotlineRouter
from connectors.ledger import build_ledger
from connectors.ledger.changelog import KafkaChangelogReader
from connectors.ledger.stage import TaskLedger
from connectors.payments.gateway import build_payment_gateway
from connectors.payments.pull_source import PaymentPullSource
from connectors.payments.stage import STAGE as PAYMENTS
from connectors.payments.wiring import build_payment_delivery
from connectors.permits.follower import STAGE as PERMIT_FOLLOWER
from connectors.permits.intake import STAGE as PERMIT_INTAKE
from connectors.permits.notices import STAGE as PERMIT_NOTICES
from connectors.permits.submitter import STAGE as PERMIT_SUBMITTER
from connectors.permits.wiring import (
    build_permit_follower,
    build_permit_intake,
    build_permit_notices,
    build_permit_submitter,
)
from connectors.router.project_table import ProjectTableWriter
from connectors.router.stage import ProjectRouter
from connectors.runtime.compacted import CompactedReader
from connectors.runtime.interface import Processor, Source, StageState
from connectors.runtime.kafka import TopicSpec, make_consumer, make_producer
from connectors.runtime.lease import SourceLease
from connectors.runtime.metrics import Metrics
from connectors.runtime.retention import compaction_lag_ms, retention_ms
from connectors.runtime.source_runner import SourceRunner, read_cursor
from connectors.runtime.stage import StageLoop
from connectors.runtime.workers import WorkerPool
from connectors.settings import RetrySettings, Settings, UtilitySettings
from connectors.status import build_callback_intake, build_poller
from connectors.status.callback import STAGE as STATUS_CALLBACKS
from connectors.status.poller import stage_name as poll_stage
from connectors.supervision.stage import STAGE as SUPERVISION
from connectors.supervision.stage import build_supervision
from connectors.surveys.intake import STAGE as SURVEY_REPLIES
from connectors.surveys.notices import STAGE as SURVEY_NOTICES
from connectors.surveys.stage import STAGE as JOINT_SURVEYS
from connectors.surveys.wiring import build_joint_surveys, build_survey_notices, build_survey_replies
from connectors.utility.pipeline import SinkLoop
from connectors.utility.revisions import KafkaRevisionReader
from connectors.utility.sink import UtilitySink, stage_name
from routing.calendar import load_calendar
from routing.mapping import load_mapping
from routing.service_areas import load_service_areas
from routing.spgl_dialects import load_dialects
from schemas import Codec


class Runnable(Protocol):
    """A built stage, ready to run in its own thread."""

    stage: str
    state: StageState

    def run(self) -> None:
        """Run until the shared stop event is set."""
        ...


_TRANSFORM = 3.0  # a stage that decodes, transforms and re-encodes every record weighs about three I/O stages


def never_paused(_stage: str) -> bool:
    """No stage is paused (a process without a control topic to follow: tests, tools)."""
    return False


@dataclass(frozen=True)
class Context:
    """What every stage builder gets; ``paused`` says whether the control topic pauses a stage now."""

    settings: Settings
    metrics: Metrics
    stop: threading.Event
    codec: Codec
    paused: Callable[[str], bool] = never_paused


@dataclass(frozen=True)
class StageSpec:
    """A stage that can run: its name and how to build it."""

    name: str
    build: Callable[[Context], Runnable]
    dead_letters: bool = True  # intakes answer bad input with 4xx instead
    pausable: bool = True  # follows the control topic's pauses (intakes and status pollers do not)
    weight: float = 1.0  # its share of a process's CPU when ``ubridge run`` spreads stages (transforms: more)
    # off the path from the upstream systems to the utilities: ``ubridge run`` gives these a process of their
    # own at a lower CPU priority (connectors/runtime/layout.py)
    background: bool = False
    # polls an upstream system (a database, an HTTP feed), mostly waiting on it: ``ubridge run`` gives the
    # readers a process of their own, where no transform holds the interpreter lock between their round trips
    reader: bool = False


def topics(settings: Settings) -> list[TopicSpec]:
    """Every topic the configured stages read or write, with its retention from ``kafka.retention``."""
    partitions = settings.kafka.partitions
    spec = partial(_topic_spec, settings)
    names = ["raw_gonggai", "raw_gonggai_spgl", "project_events", "applications", "task_status", "payments"]
    if settings.hotline is not None:
        names += ["hotline_work_orders"]
    specs = [spec(n, partitions) for n in names]
    # one task topic per utility, so that a utility's sink (and principal) reads only its own tasks
    specs += [spec("tasks", partitions, name=settings.task_topic(u.id)) for u in settings.utilities]
    specs.append(spec("source_offsets", 1, compacted=True))
    # one partition: in each source's lease group exactly one member owns it, and runs the source
    specs.append(spec("coordination", 1))
    specs.append(spec("projects", partitions, compacted=True))
    specs.append(spec("sla", partitions))
    # co-partitioned with the task-status topic: the ledger writes each entry to its input's partition number
    specs.append(spec("ledger_changelog", partitions, compacted=True))
    # co-partitioned with the task topics: each sink writes a task's last revision to its input's partition number
    specs.append(spec("delivery_revisions", partitions, compacted=True))
    # co-partitioned with the applications topic: the 爱山东 router keeps awaiting applications in their partition
    specs.append(spec("applications_awaiting", partitions, compacted=True))
    # co-partitioned with the project-event topic: the router writes each task's standing grants to its input's
    # partition number
    specs.append(spec("router_grants", partitions, compacted=True))
    # the signatures the push intakes accepted, read by every process (connectors/runtime/replay_log.py)
    # (unique keys: compact,delete; a day's retention is far beyond any replay window, whose ceiling is an hour)
    specs.append(spec("push_signatures", partitions, compacted=True))
    # the admin surface (connectors/admin): each process's stage status (keys of dead processes expire), the
    # pauses and restart requests every process follows (kept for good), and the audit trail (kept forever)
    specs.append(spec("stage_status", 1, compacted=True))
    specs.append(spec("control", 1, compacted=True))
    specs.append(spec("audit", 1))
    # the 12345 loop (connectors/complaints): visits and closes in, the 清零 ledger (compacted, key order id), 督办 out
    specs += [spec("hotline_return_visits", partitions), spec("complaints_closes", partitions)]
    specs += [spec("complaints_ledger", partitions, compacted=True), spec("complaints_escalations", partitions)]
    if settings.permits is not None and settings.permits.enabled:
        specs += [spec("permits", partitions), spec("permit_status", partitions)]
    if settings.surveys is not None and settings.surveys.enabled:
        specs += [spec("surveys", partitions), spec("survey_replies", partitions)]
    dlq = [s.name for s in stage_specs(settings) if s.dead_letters]
    specs += [spec("dlq", 1, name=settings.dlq_topic(stage)) for stage in dlq]
    return specs


def _topic_spec(
    settings: Settings, key: str, partitions: int, *, compacted: bool = False, name: str | None = None
) -> TopicSpec:
    """The spec of the topic named by ``key`` (a field of TopicNames, or ``dlq`` with ``name``)."""
    policy = settings.kafka.retention
    return TopicSpec(
        settings.topic(key) if name is None else name,
        partitions,
        compacted=compacted,
        retention_ms=retention_ms(policy, key),
        compaction_lag_ms=compaction_lag_ms(policy) if compacted else None,
    )


def stage_specs(settings: Settings) -> list[StageSpec]:
    """The stages this configuration runs, in flow order."""
    specs = []
    gonggai = settings.sources.gonggai_interface
    if gonggai is not None and gonggai.enabled:
        specs.append(StageSpec(gonggai.name, _leased(gonggai.name, _gonggai_interface), reader=True))
    spgl = settings.sources.gonggai_spgl
    if spgl is not None and spgl.enabled:
        specs.append(StageSpec(spgl.name, _leased(spgl.name, _gonggai_spgl), reader=True))
        specs.append(StageSpec(SpglNormaliser.stage, _spgl_normaliser, weight=_TRANSFORM))
    webhook = settings.sources.gonggai_webhook
    if webhook is not None and webhook.enabled:
        specs.append(StageSpec(webhook.name, _gonggai_webhook, dead_letters=False, pausable=False))
    gateway = settings.sources.aishandong_gateway
    if gateway is not None:
        specs.append(StageSpec(gateway.name, _aishandong_gateway, dead_letters=False, pausable=False))
    pull = settings.sources.aishandong_pull
    if pull is not None and pull.enabled:
        specs.append(StageSpec(pull.name, _leased(pull.name, _aishandong_pull), reader=True))
    specs += _hotline_specs(settings)
    specs += [
        StageSpec(GonggaiNormaliser.stage, _normaliser, weight=_TRANSFORM),
        StageSpec(ProjectRouter.stage, _router, weight=_TRANSFORM),
    ]
    if settings.applications is not None and settings.applications.enabled:
        specs.append(StageSpec(ProjectTableWriter.stage, _project_table))
        specs.append(StageSpec(ApplicationRouter.stage, _application_router, weight=_TRANSFORM))
    specs += [StageSpec(stage_name(u.id), _sink_builder(u)) for u in settings.utilities]
    specs += _payment_specs(settings)
    specs += _permit_specs(settings)
    specs += _survey_specs(settings)
    callbacks = settings.status_callbacks
    if callbacks is not None and callbacks.enabled:
        specs.append(
            StageSpec(STATUS_CALLBACKS, _status_callbacks, dead_letters=False, pausable=False, background=True)
        )
    specs += [
        StageSpec(poll_stage(u.id), _leased(poll_stage(u.id), _status_poller(u)), pausable=False, background=True)
        for u in settings.utilities
        if u.status_poll is not None and u.status_poll.enabled
    ]
    if settings.ledger is not None and settings.ledger.enabled:
        specs.append(StageSpec(TaskLedger.stage, _ledger, weight=_TRANSFORM, background=True))
    if settings.complaints is not None and settings.complaints.enabled:
        # its state is every order (visits keyed by order, statuses by task): one process runs it at a time
        specs.append(StageSpec(COMPLAINTS, _leased(COMPLAINTS, _complaints), weight=_TRANSFORM, background=True))
    if settings.supervision is not None and settings.supervision.enabled:
        specs.append(StageSpec(SUPERVISION, _supervision, dead_letters=False, pausable=False, background=True))
    return specs


def _payment_specs(settings: Settings) -> list[StageSpec]:
    """The 爱山东 payment stages: the pull source and the push intake when configured, and the delivery."""
    specs = []
    pull = settings.sources.aishandong_payments_pull
    if pull is not None and pull.enabled:
        specs.append(StageSpec(pull.name, _leased(pull.name, _payments_pull), reader=True))
    payments = settings.payments
    if payments is not None and payments.enabled:
        if payments.gateway is not None:
            specs.append(StageSpec(payments.gateway.name, _payment_gateway, dead_letters=False, pausable=False))
        specs.append(StageSpec(PAYMENTS, _payment_delivery))
    return specs


def _permit_specs(settings: Settings) -> list[StageSpec]:
    """The external-works permit stages (connectors/permits), when ``permits:`` is configured."""
    permits = settings.permits
    if permits is None or not permits.enabled:
        return []
    return [
        StageSpec(PERMIT_INTAKE, _permit_intake, pausable=False, background=True),
        StageSpec(PERMIT_SUBMITTER, _permit_submitter, background=True),
        # it follows every permit at the approval system: one process at a time
        StageSpec(PERMIT_FOLLOWER, _leased(PERMIT_FOLLOWER, _permit_follower), background=True),
        StageSpec(PERMIT_NOTICES, _permit_notices, background=True),
    ]


def _survey_specs(settings: Settings) -> list[StageSpec]:
    """The joint-survey stages (connectors/surveys), when ``surveys:`` is configured."""
    surveys = settings.surveys
    if surveys is None or not surveys.enabled:
        return []
    return [
        StageSpec(SURVEY_REPLIES, _survey_replies, pausable=False, background=True),
        # it holds every project's open tasks: one process at a time
        StageSpec(JOINT_SURVEYS, _leased(JOINT_SURVEYS, _joint_surveys), background=True),
        StageSpec(SURVEY_NOTICES, _survey_notices, background=True),
    ]


def _hotline_specs(settings: Settings) -> list[StageSpec]:
    """The 12345 hotline's intakes and router, as ``hotline:`` configures them (connectors/hotline)."""
    hotline = settings.hotline
    if hotline is None:
        return []
    specs = []
    if hotline.push is not None:
        specs.append(StageSpec(hotline.push.name, _hotline_push, dead_letters=False, pausable=False))
    if hotline.pull is not None and hotline.pull.enabled:
        specs.append(StageSpec(hotline.pull.name, _leased(hotline.pull.name, _hotline_pull), reader=True))
    if hotline.route:
        specs.append(StageSpec(HotlineRouter.stage, _hotline_router))
    return specs


def _leased(name: str, build: Callable[[Context], Runnable]) -> Callable[[Context], Runnable]:
    """A source stage that runs in one process of the installation at a time (:mod:`connectors.runtime.lease`)."""

    def lease(ctx: Context) -> Runnable:
        kafka = ctx.settings.kafka
        return SourceLease(
            name,
            consumer=make_consumer(kafka, group_id=f"{kafka.topic_prefix}ubridge.lease.{name}"),
            topic=ctx.settings.topic("coordination"),
            build=lambda stop: build(replace(ctx, stop=stop)),
            metrics=ctx.metrics,
            stop=ctx.stop,
        )

    return lease


def _gonggai_interface(ctx: Context) -> Runnable:
    config = ctx.settings.sources.gonggai_interface
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    source = GonggaiInterfaceSource(config, raw_topic=ctx.settings.topic("raw_gonggai"))
    return _source_runner(ctx, source, poll_interval_s=config.poll_interval_s, retry=config.retry)


def _gonggai_spgl(ctx: Context) -> Runnable:
    settings = ctx.settings
    config = settings.sources.gonggai_spgl
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    source = SpglSource(
        config.url.get_secret_value(),
        raw_topic=settings.topic("raw_gonggai_spgl"),
        dlq_topic=settings.dlq_topic(config.name),
        name=config.name,
        page_size=config.page_size,
        max_held=config.max_held,
        max_held_age_s=config.max_held_age_s,
        held_gauge=ctx.metrics.source_held_rows.labels(config.name),
        held_age_gauge=ctx.metrics.source_held_age.labels(config.name),
        schema=config.db_schema,
        lookback=config.lookback,
        dialects=None if config.dialects is None else load_dialects(config.dialects),
        cache_rows=config.cache_rows,
        max_record_bytes=config.max_record_bytes,
        window_every_s=config.poll_interval_s,
    )
    poll_s, probe_s = config.poll_interval_s, config.probe_interval_s
    return _source_runner(ctx, source, poll_interval_s=poll_s, retry=config.retry, probe_interval_s=probe_s)


def _source_runner(
    ctx: Context,
    source: Source,
    *,
    poll_interval_s: float,
    retry: RetrySettings,
    probe_interval_s: float | None = None,
) -> SourceRunner:
    settings = ctx.settings
    offsets_topic = settings.topic("source_offsets")
    reader = make_consumer(settings.kafka, group_id=None)
    try:
        cursor = read_cursor(reader, offsets_topic, source.name)
    finally:
        reader.close()
    return SourceRunner(
        source,
        producer=make_producer(settings.kafka, transactional_id=f"ubridge-source-{source.name}"),
        offsets_topic=offsets_topic,
        poll_interval_s=poll_interval_s,
        probe_interval_s=probe_interval_s,
        retry=retry,
        metrics=ctx.metrics,
        stop=ctx.stop,
        start_cursor=cursor,
        dlq_topic=settings.dlq_topic(source.name),
        paused=partial(ctx.paused, source.name),
    )


def _spgl_normaliser(ctx: Context) -> Runnable:
    settings = ctx.settings
    processor = SpglNormaliser(
        input_topic=settings.topic("raw_gonggai_spgl"),
        output_topic=settings.topic("project_events"),
        status_codes=settings.routing.status_codes,
        codec=ctx.codec,
    )
    return _loop(ctx, processor)


def _gonggai_webhook(ctx: Context) -> Runnable:
    config = ctx.settings.sources.gonggai_webhook
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    return build_webhook(
        config,
        kafka=ctx.settings.kafka,
        raw_topic=ctx.settings.topic("raw_gonggai"),
        metrics=ctx.metrics,
        stop=ctx.stop,
        signatures_topic=ctx.settings.topic("push_signatures"),
    )


def _aishandong_gateway(ctx: Context) -> Runnable:
    config = ctx.settings.sources.aishandong_gateway
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    settings = ctx.settings
    return build_gateway(
        config,
        kafka=settings.kafka,
        topic=settings.topic("applications"),
        metrics=ctx.metrics,
        stop=ctx.stop,
        signatures_topic=settings.topic("push_signatures"),
    )


def _aishandong_pull(ctx: Context) -> Runnable:
    config = ctx.settings.sources.aishandong_pull
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    topic, dlq = ctx.settings.topic("applications"), ctx.settings.dlq_topic(config.name)
    source = AishandongPullSource(config, topic=topic, dlq_topic=dlq, codec=ctx.codec)
    return _source_runner(ctx, source, poll_interval_s=config.poll_interval_s, retry=config.retry)


def _payment_gateway(ctx: Context) -> Runnable:
    config = ctx.settings.payments.gateway if ctx.settings.payments else None
    assert config is not None  # noqa: S101 - stage_specs only lists a configured intake
    return build_payment_gateway(
        config,
        kafka=ctx.settings.kafka,
        topic=ctx.settings.topic("payments"),
        metrics=ctx.metrics,
        stop=ctx.stop,
        signatures_topic=ctx.settings.topic("push_signatures"),
    )


def _payments_pull(ctx: Context) -> Runnable:
    config = ctx.settings.sources.aishandong_payments_pull
    assert config is not None  # noqa: S101 - stage_specs only lists configured sources
    topic, dlq = ctx.settings.topic("payments"), ctx.settings.dlq_topic(config.name)
    source = PaymentPullSource(config, topic=topic, dlq_topic=dlq, codec=ctx.codec)
    return _source_runner(ctx, source, poll_interval_s=config.poll_interval_s, retry=config.retry)


def _permit_intake(ctx: Context) -> Runnable:
    return build_permit_intake(ctx.settings, metrics=ctx.metrics, stop=ctx.stop)


def _permit_submitter(ctx: Context) -> Runnable:
    return _loop(ctx, build_permit_submitter(ctx.settings, metrics=ctx.metrics, stop=ctx.stop))


def _permit_follower(ctx: Context) -> Runnable:
    return _loop(ctx, build_permit_follower(ctx.settings, metrics=ctx.metrics))


def _permit_notices(ctx: Context) -> Runnable:
    return _loop(ctx, build_permit_notices(ctx.settings, metrics=ctx.metrics, stop=ctx.stop, codec=ctx.codec))


def _survey_replies(ctx: Context) -> Runnable:
    return build_survey_replies(ctx.settings, metrics=ctx.metrics, stop=ctx.stop)


def _joint_surveys(ctx: Context) -> Runnable:
    return _loop(ctx, build_joint_surveys(ctx.settings, codec=ctx.codec))


def _survey_notices(ctx: Context) -> Runnable:
    return _loop(ctx, build_survey_notices(ctx.settings, metrics=ctx.metrics, stop=ctx.stop, codec=ctx.codec))


def _payment_delivery(ctx: Context) -> Runnable:
    return _loop(ctx, build_payment_delivery(ctx.settings, metrics=ctx.metrics, stop=ctx.stop, codec=ctx.codec))


def _hotline_push(ctx: Context) -> Runnable:
    settings = ctx.settings
    config = settings.hotline.push if settings.hotline is not None else None
    assert config is not None  # noqa: S101 - stage_specs only lists a configured intake
    return build_push(
        config,
        kafka=settings.kafka,
        work_orders_topic=settings.topic("hotline_work_orders"),
        return_visits_topic=settings.topic("hotline_return_visits"),
        metrics=ctx.metrics,
        stop=ctx.stop,
        signatures_topic=settings.topic("push_signatures"),
    )


def _hotline_pull(ctx: Context) -> Runnable:
    settings = ctx.settings
    config = settings.hotline.pull if settings.hotline is not None else None
    assert config is not None  # noqa: S101 - stage_specs only lists a configured source
    source = HotlinePullSource(
        config,
        work_orders_topic=settings.topic("hotline_work_orders"),
        return_visits_topic=settings.topic("hotline_return_visits"),
        dlq_topic=settings.dlq_topic(config.name),
        codec=ctx.codec,
    )
    return _source_runner(ctx, source, poll_interval_s=config.poll_interval_s, retry=config.retry)


def _hotline_router(ctx: Context) -> Runnable:
    settings = ctx.settings
    processor = HotlineRouter(
        input_topic=settings.topic("hotline_work_orders"),
        task_topic=settings.task_topic,
        areas=load_service_areas(settings.routing.service_areas),
        codec=ctx.codec,
    )
    return _loop(ctx, processor)


def _project_table(ctx: Context) -> Runnable:
    settings = ctx.settings
    table = settings.topic("projects")
    processor = ProjectTableWriter(
        input_topic=settings.topic("project_events"),
        table_topic=table,
        codec=ctx.codec,
        reader=CompactedReader(settings.kafka, table),
    )
    return _loop(ctx, processor)


def _application_router(ctx: Context) -> Runnable:
    settings = ctx.settings
    config = settings.applications
    assert config is not None  # noqa: S101 - stage_specs only lists a configured application router
    consumer = make_consumer(settings.kafka, group_id=None)
    table = KafkaProjectTable(consumer, topic=settings.topic("projects"), store_dir=config.project_table_dir)
    table.start().wait_ready(config.project_table_ready_timeout_s)
    lookups: list[ProjectLookup] = [table]
    if config.project_lookup is not None:
        lookup = config.project_lookup
        lookups.append(HttpProjectLookup(base_url=lookup.base_url, token=lookup.token, timeout_s=lookup.timeout_s))
    processor = ApplicationRouter(
        input_topic=settings.topic("applications"),
        task_topic=settings.task_topic,
        areas=load_service_areas(settings.routing.service_areas),
        calendar=load_calendar(config.calendar),
        shared_materials=load_application_rules(config.rules).shared_materials,
        projects=ChainedLookup(*lookups),
        awaiting=AwaitingApplications(
            topic=settings.topic("applications_awaiting"),
            reader=CompactedReader(settings.kafka, settings.topic("applications_awaiting")),
            table=table,
            codec=ctx.codec,
            contact_retention=timedelta(days=settings.privacy.contact_retention_days),
        ),
        codec=ctx.codec,
        metrics=ctx.metrics,
    )
    return _loop(ctx, processor)


def _normaliser(ctx: Context) -> Runnable:
    settings = ctx.settings
    interface = settings.sources.gonggai_interface
    mappings = {interface.name: load_mapping(interface.mapping)} if interface and interface.mapping else {}
    processor = GonggaiNormaliser(
        input_topic=settings.topic("raw_gonggai"),
        output_topic=settings.topic("project_events"),
        status_codes=settings.routing.status_codes,
        codec=ctx.codec,
        mappings=mappings,
    )
    return _loop(ctx, processor)


def _router(ctx: Context) -> Runnable:
    settings = ctx.settings
    grants = settings.topic("router_grants")
    processor = ProjectRouter(
        input_topic=settings.topic("project_events"),
        task_topic=settings.task_topic,
        grants_topic=grants,
        areas=load_service_areas(settings.routing.service_areas),
        codec=ctx.codec,
        reader=KafkaChangelogReader(settings.kafka, grants),
    )
    return _loop(ctx, processor)


def _sink_builder(utility: UtilitySettings) -> Callable[[Context], Runnable]:
    def build(ctx: Context) -> Runnable:
        revisions = ctx.settings.topic("delivery_revisions")
        sink = UtilitySink(
            utility,
            input_topic=ctx.settings.task_topic(utility.id),
            status_topic=ctx.settings.topic("task_status"),
            revisions_topic=revisions,
            revisions=KafkaRevisionReader(ctx.settings.kafka, revisions, utility=utility.id),
            codec=ctx.codec,
            metrics=ctx.metrics,
            stop=ctx.stop,
        )
        kafka = ctx.settings.kafka
        return SinkLoop(
            sink,
            consumer=make_consumer(kafka, group_id=f"{kafka.topic_prefix}ubridge.{sink.stage}"),
            producer=make_producer(kafka),
            dlq_topic=ctx.settings.dlq_topic(sink.stage),
            metrics=ctx.metrics,
            stop=ctx.stop,
            paused=partial(ctx.paused, sink.stage),
        )

    return build


def _status_callbacks(ctx: Context) -> Runnable:
    settings = ctx.settings
    assert settings.status_callbacks is not None  # noqa: S101 - stage_specs only lists configured intakes
    tokens = {u.callback_token.get_secret_value(): u.id for u in settings.utilities if u.callback_token is not None}
    return build_callback_intake(
        settings.status_callbacks,
        tokens=tokens,
        kafka=settings.kafka,
        topic=settings.topic("task_status"),
        metrics=ctx.metrics,
        stop=ctx.stop,
    )


def _status_poller(utility: UtilitySettings) -> Callable[[Context], Runnable]:
    def build(ctx: Context) -> Runnable:
        settings = ctx.settings
        assert utility.status_poll is not None  # noqa: S101 - stage_specs only lists polled utilities
        return build_poller(
            utility.status_poll,
            utility_id=utility.id,
            token=utility.auth.token,
            kafka=settings.kafka,
            topic=settings.topic("task_status"),
            dlq_topic=settings.dlq_topic(poll_stage(utility.id)),
            offsets_topic=settings.topic("source_offsets"),
            metrics=ctx.metrics,
            stop=ctx.stop,
        )

    return build


def _ledger(ctx: Context) -> Runnable:
    settings = ctx.settings
    config = settings.ledger
    assert config is not None  # noqa: S101 - stage_specs only lists a configured ledger
    return build_ledger(
        kafka=settings.kafka,
        status_topic=settings.topic("task_status"),
        changelog_topic=settings.topic("ledger_changelog"),
        sla_topic=settings.topic("sla"),
        dlq_topic=settings.dlq_topic(TaskLedger.stage),
        calendar_path=config.calendar,
        policies_path=config.policies,
        clock=config.clock,
        metrics=ctx.metrics,
        stop=ctx.stop,
        max_held_per_partition=config.max_held_per_partition,
        closed_retention=timedelta(days=config.closed_retention_days),
        codec=ctx.codec,
    )


def _complaints(ctx: Context) -> Runnable:
    return build_complaints(ctx.settings, metrics=ctx.metrics, stop=ctx.stop, codec=ctx.codec)


def _supervision(ctx: Context) -> Runnable:
    return build_supervision(ctx.settings, metrics=ctx.metrics, stop=ctx.stop)


# The stages between the upstream systems and the utilities: their consumers fetch each record at once; the
# others (ledger, notices, permits, surveys) let the broker gather records (``kafka.background_fetch_wait_ms``).
_DELIVERY_PATH = frozenset(
    {
        GonggaiNormaliser.stage,
        SpglNormaliser.stage,
        ProjectRouter.stage,
        ApplicationRouter.stage,
        HotlineRouter.stage,
        PAYMENTS,
    }
)


def _loop(ctx: Context, processor: Processor) -> StageLoop:
    kafka = ctx.settings.kafka
    group = f"{kafka.topic_prefix}ubridge.{processor.stage}"
    workers = ctx.settings.workers(processor.stage)
    background = processor.stage not in _DELIVERY_PATH
    settings = ctx.settings
    # what the delivery path writes: its first records after a start must not wait for metadata, topic by topic
    outputs = [settings.topic("project_events"), *(settings.task_topic(u.id) for u in settings.utilities)]
    return StageLoop(
        processor,
        consumer=make_consumer(kafka, group_id=group, background=background),
        producer=make_producer(kafka),
        dlq_topic=ctx.settings.dlq_topic(processor.stage),
        metrics=ctx.metrics,
        stop=ctx.stop,
        workers=WorkerPool(processor, workers) if workers else None,
        paused=partial(ctx.paused, processor.stage),
        warm_topics=() if background else outputs,
    )
