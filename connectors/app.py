"""One ubridge process: the chosen stages, each in its own supervised thread, and the metrics/health endpoint.

Scale-out is Kafka's: start the same configuration in more processes and each stage's consumer group
spreads the partitions across them. Failures stay where they happen: a record that cannot be processed is
dead-lettered, a stage that fails is rebuilt and restarted by its :class:`~connectors.supervisor.Supervisor`
while the others keep running, and a Kafka outage is waited out (at start too). The process ends on SIGTERM,
or at start when a stage cannot be built from its configuration.

Every process follows the control topic (pauses and restart requests, :mod:`connectors.admin.control`) and
publishes its stages' status every few seconds (:mod:`connectors.admin.status`); with ``admin.port`` set it
also serves the admin API (:mod:`connectors.admin.api`).

``/readyz`` answers 503 while a stage is not running and joined, or while no Kafka broker is reachable
(:class:`~connectors.runtime.kafka_probe.KafkaProbe`), naming the cause; ``/healthz`` stays 200 while every
stage is running or restarting by itself.

Example:
    >>> app = App(load_settings(Path("ubridge.yaml")))
    >>> app.start()
    >>> app.wait()          # until SIGTERM (app.stop())
"""

import os
import socket
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, Final

import structlog
from fastapi import APIRouter
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from connectors.admin.api import admin_router
from connectors.admin.followers import ControlFollower, StatusPublisher
from connectors.admin.service import AdminService
from connectors.admin.status import StageStatus, state_of
from connectors.migrate.task_topics import pending
from connectors.registry import Context, Runnable, StageSpec, stage_specs, topics
from connectors.runtime.health import HealthServer
from connectors.runtime.kafka import (
    TopicSpec,
    align_topic_configs,
    ensure_topics,
    replication_of,
    under_replicated,
)
from connectors.runtime.kafka_probe import KafkaProbe
from connectors.runtime.metrics import Metrics, per_stage
from connectors.runtime.schema_registry import codec_for
from connectors.runtime.web_app import build_app
from connectors.runtime.web_server import WebServer
from connectors.settings import Settings
from connectors.supervisor import Supervisor
from routing.calendar import SHANGHAI, load_calendar
from schemas import Codec

log = structlog.get_logger(__name__)

_KAFKA_WAIT_S: Final = (1.0, 30.0)  # first and longest pause between attempts to reach Kafka at start
STATUS_EVERY_S: Final = 5.0  # the stage-status heartbeat


def serve_admin(settings: Settings) -> tuple[WebServer, AdminService] | None:
    """Serve the admin API when ``admin.port`` is set: the server and the service behind it (close both)."""
    admin = settings.admin
    if admin is None or admin.port is None:
        return None
    service = AdminService(settings, stale_after_s=3 * STATUS_EVERY_S)
    tokens = {name: token.get_secret_value() for name, token in admin.tokens.items()}
    # the admin API on a listener of its own: operators reach it, the utilities and upstream systems do not
    app = build_app([admin_router(service, tokens)], description="ubridge's admin API")
    server = WebServer(app, host=admin.host, port=admin.port, name="admin-api")
    server.start()
    log.info("admin_serving", url=f"http://{admin.host}:{server.port}")
    return server, service


class UnknownStageError(ValueError):
    """A stage name that this configuration does not define."""


def select_stages(specs: Sequence[StageSpec], only: Iterable[str] | None) -> list[StageSpec]:
    """The specs named in ``only`` (None: all), in flow order.

    Raises:
        UnknownStageError: ``only`` names a stage the configuration does not define.
    """
    wanted = set(only) if only is not None else {s.name for s in specs}
    unknown = wanted - {s.name for s in specs}
    if unknown:
        configured = ", ".join(s.name for s in specs)
        message = f"unknown stage(s) {', '.join(sorted(unknown))}; configured: {configured}"
        raise UnknownStageError(message)
    return [s for s in specs if s.name in wanted]


class App:
    """Builds, runs and stops a set of stages.

    Args:
        settings: The validated configuration.
        only: Names of the stages to run; None runs every configured stage.
        registry: Where metrics live; a fresh one by default.
        serve_metrics: Start the ``/metrics`` endpoint (off for embedded use in tests).
        routers: More parts of the process's HTTP surface, served beside ``/metrics`` (the admin API).
        health_port_file: Set in a child of ``ubridge run`` (:mod:`connectors.process_tree`): health is served
            on a free loopback port written to this file, and the parent serves metrics and the admin API.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        only: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool = True,
        routers: Sequence[APIRouter] = (),
        health_port_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self._health_port_file = health_port_file
        self.stop_event = threading.Event()
        self.metrics = Metrics(registry or CollectorRegistry())
        self._specs = select_stages(stage_specs(settings), only)
        self._serve_metrics = serve_metrics
        self._routers = tuple(routers)
        self.supervisors: list[Supervisor] = []
        self._threads: list[threading.Thread] = []
        self.probe = KafkaProbe(settings.kafka.bootstrap, gauge=self.metrics.kafka_up, stop=self.stop_event)
        self.failed = False
        self.health: HealthServer | None = None
        self.control = ControlFollower(settings.kafka, settings.topic("control"), on_restart=self._restart)
        self._status = StatusPublisher(
            settings.kafka, settings.topic("stage_status"), collect=self._statuses, every_s=STATUS_EVERY_S
        )
        self.admin: WebServer | None = None
        self._admin_service: AdminService | None = None

    @property
    def runnables(self) -> list[Runnable]:
        """The stages as currently built (a restarted stage is a new object)."""
        return [s.runnable for s in self.supervisors if s.runnable is not None]

    def start(self) -> None:
        """Serve health, wait for Kafka, create missing topics, build every stage and start supervising them.

        Raises:
            SchemaRegistryError: with ``kafka.value_encoding: registry``, the registry refused a schema or is down.
            Exception: Whatever building a stage raised other than a Kafka error: the configuration is wrong.
        """
        # the value encoding is chosen here, once and before anything runs: every stage and intake takes the
        # process-wide codec, and a schema the registry refuses stops start-up (SchemaRegistryError)
        Codec.install(codec_for(self.settings))
        self._expose_calendar_coverage()
        threading.Thread(target=self.probe.run, name="kafka-probe", daemon=True).start()
        ctx = Context(self.settings, self.metrics, self.stop_event, Codec.default(), paused=self.control.paused)
        self.supervisors = [Supervisor(spec, ctx, on_fatal=self._fatal) for spec in self._specs]
        if self._serve_metrics:
            obs = self.settings.observability
            child = self._health_port_file is not None
            self.health = HealthServer(
                self.metrics.registry,
                self._live,
                self._ready,
                "127.0.0.1" if child else obs.metrics_host,
                0 if child else obs.metrics_port,
                detail=self._detail,
                routers=self._routers,
            )
            self.health.start()
            if self._health_port_file is not None:
                written = self._health_port_file.with_suffix(".tmp")
                written.write_text(str(self.health.port), encoding="ascii")
                written.replace(self._health_port_file)  # the parent never reads half a number
            else:
                log.info("metrics_serving", url=f"http://{obs.metrics_host}:{self.health.port}/metrics")
        if not self._ensure_topics():
            return
        self._start_admin()
        for supervisor, spec in zip(self.supervisors, self._specs, strict=True):
            try:
                supervisor.runnable = spec.build(supervisor.context())
            except KafkaError as exc:
                log.warning("stage_build_failed", stage=spec.name, error=str(exc))  # its supervisor retries
        for supervisor in self.supervisors:
            thread = threading.Thread(target=supervisor.run, name=supervisor.name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def ready(self) -> bool:
        """Every stage runs and joined its consumer group, and Kafka is reachable."""
        return all(self._ready().values())

    def stop(self) -> None:
        """Ask every stage to finish its in-flight work and commit."""
        self.stop_event.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every stage thread returned; False if ``timeout_s`` (in all) passed first."""
        deadline = None if timeout_s is None else monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self.health is not None:
            self.health.stop()
            self.health = None
        if done:
            self._stop_admin()
        return done

    def _start_admin(self) -> None:
        """Follow the control topic, publish status, and serve the admin API when ``admin.port`` is set."""
        self.control.start()
        self._status.start()
        if self._health_port_file is not None:
            return  # a child of ``ubridge run``: its parent serves the admin API
        served = serve_admin(self.settings)
        if served is not None:
            self.admin, self._admin_service = served

    def _stop_admin(self) -> None:
        """Tombstone this process's status entries, stop following, stop serving (once)."""
        self.control.close()
        self._status.close()
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        if self._admin_service is not None:
            self._admin_service.close()
            self._admin_service = None

    def _restart(self, stage: str) -> None:
        for supervisor in self.supervisors:
            if supervisor.name == stage:
                supervisor.restart()

    def _statuses(self) -> list[StageStatus]:
        """What this process publishes of its stages now (an error text is masked by the supervisor)."""
        host, pid, now = socket.gethostname(), os.getpid(), datetime.now(UTC)
        records_in = per_stage(self.metrics.records_in)
        records_out = per_stage(self.metrics.records_out)
        lags = per_stage(self.metrics.consumer_lag)
        statuses = []
        for supervisor in self.supervisors:
            report, stage = supervisor.report(), supervisor.name
            statuses.append(
                StageStatus(
                    stage=stage,
                    host=host,
                    pid=pid,
                    state=state_of(supervisor.phase, paused=self.control.paused(stage)),
                    last_error=report.get("last_error"),
                    restarts=report["restarts"],
                    records_in=records_in.get(stage, 0.0),
                    records_out=records_out.get(stage, 0.0),
                    lag=lags.get(stage),
                    heartbeat_at=now,
                )
            )
        return statuses

    def _ensure_topics(self) -> bool:
        """Create missing topics and read the control topic, waiting out an unreachable Kafka; False if stopped.

        An installation whose single task topic of earlier releases is not migrated yet does not start: its
        sinks would take the revisions' offsets in the old topic for offsets in their own, and its routers
        would put new tasks ahead of the old ones the migration copies later.
        """
        pause, longest = _KAFKA_WAIT_S
        while True:
            try:
                unmigrated = pending(self.settings)
                if unmigrated is not None:
                    log.error("task_topics_not_migrated", reason=unmigrated)
                    self._fatal()
                    return False
                specs = topics(self.settings)
                created = ensure_topics(self.settings.kafka, specs)
                self._align_retention(specs)
                self._check_replication(specs)
                self.control.catch_up()  # before any stage starts: a paused stage starts paused
            except KafkaError as exc:
                log.warning(
                    "kafka_unreachable", bootstrap=self.settings.kafka.bootstrap, error=str(exc), retry_in_s=pause
                )
                if self.stop_event.wait(pause):
                    return False
                pause = min(longest, pause * 2)
                continue
            if created:
                log.info("topics_created", topics=created)
            return True

    def _align_retention(self, specs: list[TopicSpec]) -> None:
        """Bring existing topics to the configured retention (``kafka.retention.apply_to_existing``), or warn.

        A cluster that refuses to describe or alter topic configs (ACLs without those operations) gets a warning,
        not a stop: the retention is policy, and the stages can run without it.
        """
        apply = self.settings.kafka.retention.apply_to_existing
        try:
            differing = align_topic_configs(self.settings.kafka, specs, apply=apply)
        except KafkaError as exc:
            log.warning("topic_retention_unchecked", error=str(exc))
            return
        for topic, diff in differing.items():
            changes = {name: f"{was} -> {wanted}" for name, (was, wanted) in diff.items()}
            if apply:
                log.info("topic_retention_changed", topic=topic, changes=changes)
            else:
                log.warning("topic_retention_differs", topic=topic, changes=changes)

    def _check_replication(self, specs: list[TopicSpec]) -> None:
        """Warn of each topic with fewer replicas than ``kafka.replication_factor`` (made before it was raised)."""
        kafka = self.settings.kafka
        actual = replication_of(kafka, [spec.name for spec in specs])
        for topic, replicas in under_replicated(actual, kafka.replication_factor).items():
            log.warning("topic_under_replicated", topic=topic, replicas=replicas, configured=kafka.replication_factor)

    def _fatal(self) -> None:
        self.failed = True
        self.stop_event.set()

    def _expose_calendar_coverage(self) -> None:
        """Set ``ubridge_calendar_official_until`` from the configured calendars (the earliest end wins)."""
        settings = self.settings
        paths = {section.calendar for section in (settings.applications, settings.ledger) if section is not None}
        if not paths:
            return
        today = datetime.now(SHANGHAI).date()
        until = min(load_calendar(path).official_until(today) for path in paths)
        ends = datetime.combine(until + timedelta(days=1), time(), SHANGHAI)
        self.metrics.calendar_official_until.set(ends.astimezone(UTC).timestamp())
        log.info("calendar_official_until", last_official_day=until.isoformat())

    def _live(self) -> dict[str, bool]:
        return {s.name: s.live() for s in self.supervisors}

    def _ready(self) -> dict[str, bool]:
        return {**{s.name: s.ready() for s in self.supervisors}, "kafka": self.probe.ok}

    def _detail(self) -> dict[str, Any]:
        kafka: dict[str, Any] = {"reachable": self.probe.ok}
        if self.probe.error is not None:
            kafka["error"] = self.probe.error
        return {"kafka": kafka, "stages": {s.name: s.report() for s in self.supervisors}}
