"""One ubridge process: the chosen stages, each in its own thread, and the metrics/health endpoint.

Scale-out is Kafka's: start the same configuration in more processes and each stage's consumer group
spreads the partitions across them. A stage that dies stops the whole process (exit code 1), so the
supervisor restarts it cleanly rather than leaving a half-working process that looks alive.

Example:
    >>> app = App(load_settings(Path("ubridge.yaml")))
    >>> app.start()
    >>> app.wait()          # until SIGTERM (app.stop()) or a stage failure
"""

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta

import structlog
from prometheus_client import CollectorRegistry

from connectors.registry import Context, Runnable, stage_specs, topics
from connectors.runtime.health import HealthServer
from connectors.runtime.kafka import ensure_topics
from connectors.runtime.metrics import Metrics
from connectors.settings import Settings
from routing.calendar import SHANGHAI, load_calendar
from schemas import Codec

log = structlog.get_logger(__name__)


class UnknownStageError(ValueError):
    """A stage name that this configuration does not define."""


class App:
    """Builds, runs and stops a set of stages.

    Args:
        settings: The validated configuration.
        only: Names of the stages to run; None runs every configured stage.
        registry: Where metrics live; a fresh one by default.
        serve_metrics: Start the ``/metrics`` endpoint (off for embedded use in tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        only: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self.metrics = Metrics(registry or CollectorRegistry())
        specs = stage_specs(settings)
        wanted = set(only) if only is not None else {s.name for s in specs}
        unknown = wanted - {s.name for s in specs}
        if unknown:
            configured = ", ".join(s.name for s in specs)
            message = f"unknown stage(s) {', '.join(sorted(unknown))}; configured: {configured}"
            raise UnknownStageError(message)
        self._specs = [s for s in specs if s.name in wanted]
        self._serve_metrics = serve_metrics
        self.runnables: list[Runnable] = []
        self._threads: list[threading.Thread] = []
        self.failed = False
        self.health: HealthServer | None = None

    def start(self) -> None:
        """Create missing topics, build every stage, start their threads and the endpoint."""
        created = ensure_topics(self.settings.kafka, topics(self.settings))
        if created:
            log.info("topics_created", topics=created)
        self._expose_calendar_coverage()
        ctx = Context(self.settings, self.metrics, self.stop_event, Codec.default())
        self.runnables = [spec.build(ctx) for spec in self._specs]
        if self._serve_metrics:
            obs = self.settings.observability
            self.health = HealthServer(
                self.metrics.registry, self._live, self._ready, obs.metrics_host, obs.metrics_port
            )
            self.health.start()
            log.info("metrics_serving", url=f"http://{obs.metrics_host}:{self.health.port}/metrics")
        for runnable in self.runnables:
            thread = threading.Thread(target=self._run, args=(runnable,), name=runnable.stage, daemon=True)
            thread.start()
            self._threads.append(thread)

    def ready(self) -> bool:
        """Every stage has started and joined its consumer group."""
        return bool(self.runnables) and all(self._ready().values())

    def stop(self) -> None:
        """Ask every stage to finish its in-flight work and commit."""
        self.stop_event.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every stage thread returned; False if ``timeout_s`` passed first."""
        for thread in self._threads:
            thread.join(timeout_s)
        done = not any(t.is_alive() for t in self._threads)
        if done and self.health is not None:
            self.health.stop()
            self.health = None
        return done

    def _run(self, runnable: Runnable) -> None:
        try:
            runnable.run()
        except Exception:
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
        return {r.stage: not r.state.failed for r in self.runnables}

    def _ready(self) -> dict[str, bool]:
        return {r.stage: r.state.ready and not r.state.failed for r in self.runnables}
