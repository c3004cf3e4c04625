"""Runs the demo: broker, simulators, every stage, a replay of traffic with faults, then the summary.

Faults are injected on purpose so the summary shows ubridge coping: one utility answers 503 to a tenth
of requests, one answers 429 with Retry-After, one loses some acknowledgements after storing the task
(idempotent re-delivery), one is down for the first seconds (its tasks wait; the others' do not).
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.aishandong.rules import load_application_rules
from connectors.app import App
from connectors.complaints.cli import read_orders
from connectors.demo.complaints import answer_again, complaints_config, complaints_table
from connectors.demo.expected import (
    Expectation,
    exchange_events,
    expected_application_tasks,
    expected_tasks,
    interface_events,
)
from connectors.demo.hotline import FEED_TOKEN, HOTLINE_ORDERS, HotlineDemo, expected_complaint_tasks
from connectors.demo.payments import DemoPayments, PaymentFigures, payments_line
from connectors.demo.permits import DemoPermits
from connectors.demo.ports import free_port
from connectors.demo.remote import RemoteUtility, Simulators
from connectors.demo.services import linked_line, service_areas
from connectors.demo.summary import SlaFigures, UtilityFigures, sla_table, stage_table, utility_table
from connectors.demo.surveys import answer_surveys, read_surveys, settled, surveys_config, surveys_line
from connectors.settings import Settings, load_settings
from routing.calendar import SHANGHAI, load_calendar
from routing.complaints import state_of
from routing.records import ComplaintLedgerEntry
from routing.satisfaction import load_satisfaction_policy
from routing.service_areas import load_service_areas
from simulators.aishandong import APPLICATIONS_PATH, make_applications, push_applications

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"

HOURS_PER_SECOND = 20.0  # simulated office hours per real second
INVALID_SHARE = 0.01
APPLICATION_SHARE = 0.1  # 爱山东 applications per upstream project event
APPLICATION_REGIONS = ("370602", "370611", "370685", "371502", "370102", "370202")  # 370202: unserved
GATEWAY_SECRET = "demo-aishandong-gateway-secret"  # noqa: S105 - the simulated gateway's, not a secret
UNSERVED_SHARE = 0.03
FAULTS: dict[str, dict[str, Any]] = {
    "yantai-water": {"error_rate": 0.10, "error_status": 503},
    "yantai-gas": {"error_rate": 0.05, "error_status": 429, "retry_after_s": 0.2},
    "liaocheng-gas": {"latency_ms": 10, "fail_after_store_rate": 0.05},
    "jinan-heat": {"outage_s": 5.0, "retry_after_s": 1.0},
}


@dataclass(frozen=True)
class DemoOptions:
    """Knobs of ``ubridge demo``."""

    events: int
    rate_per_s: float
    bootstrap: str
    workdir: Path
    metrics_port: int
    timeout_s: float
    seed: int
    faults: bool = True
    topic_prefix: str | None = None
    source: Literal["spgl", "interface"] = "spgl"


@dataclass
class DemoResult:
    """What the run produced, for the summary and the exit code."""

    utilities: list[UtilityFigures]
    stages: dict[str, dict[str, float]]
    expectation: Expectation
    sla: list[SlaFigures]
    applications_refused: int
    complaints: list[ComplaintLedgerEntry] = field(default_factory=list)
    payments: list[PaymentFigures] | None = None
    payment_line: str = ""
    loop_line: str = ""
    permit_line: str = ""
    survey_line: str = ""

    @property
    def ok(self) -> bool:
        """Every expected task reached its utility exactly once."""
        return all(row.exactly_once for row in self.utilities) and all(p.exactly_once for p in self.payments or [])


class Demo:
    """Owns the simulators and the in-process ubridge for one demo run."""

    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.areas_path = service_areas(CONFIG_DIR / "service-areas.yaml", options.workdir)
        self.areas = load_service_areas(self.areas_path)
        self.exchange_db = f"sqlite:///{options.workdir / f'exchange-{datetime.now(UTC):%Y%m%d%H%M%S%f}.db'}"
        self.simulators = Simulators(
            {u: _token(u) for u in sorted(self.areas.utilities())},
            seed=options.seed,
            exchange_db=self.exchange_db if options.source == "spgl" else None,
        )
        self.approval = self.simulators.approval
        self.utilities = self.simulators.utilities
        self.published_at: dict[int, datetime] = {}
        self.applications: list[dict[str, Any]] = []
        self.applications_refused = 0
        self.hotline = HotlineDemo(options.seed)
        self.loop = ""
        self.registry = CollectorRegistry()
        self.payments = DemoPayments(self.areas, seed=options.seed, faults=options.faults)
        self.permits = DemoPermits(self.approval, seed=options.seed, approval_token=APPROVAL_TOKEN)
        self.permit_line = ""
        self.survey_line = ""
        self.app: App | None = None
        self.config_path = options.workdir / "ubridge.yaml"
        self.settings: Settings

    def start(self) -> Settings:
        """Start the simulators and ubridge; returns the configuration it wrote and runs."""
        settings = self.configure()
        self.app = App(settings, registry=self.registry)
        self.app.start()
        with self.console.status("waiting for every stage to join its consumer group"):
            _wait_for(self.app.ready, timeout_s=60)
        self.drive_utilities()
        self.console.print(f"configuration: {self.config_path}")
        self.console.print(
            f"metrics:       http://127.0.0.1:{self.app.health.port if self.app.health else '-'}/metrics"
        )
        if settings.supervision is not None:
            self.console.print(
                f"supervision:   http://127.0.0.1:{settings.supervision.port}/ (token {SUPERVISION_TOKEN})"
            )
        return settings

    def configure(self) -> Settings:
        """Write the configuration ubridge runs with (here, or in a process of its own) and load it."""
        urls = {u: sim.url for u, sim in self.utilities.items()}
        self.config_path = self._write_config(self.approval.url, urls)
        self.settings = load_settings(self.config_path)
        return self.settings

    def drive_utilities(self) -> None:
        """Inject the faults and start the utilities working through their tasks, reporting back."""
        for utility, faults in FAULTS.items() if self.options.faults else ():
            if utility in self.utilities:
                self.utilities[utility].set_faults(**faults)
        callbacks = self.settings.status_callbacks
        assert callbacks is not None  # noqa: S101 - written by _write_config
        for index, (utility, sim) in enumerate(self.utilities.items()):
            sim.set_progress(
                callback_url=f"http://127.0.0.1:{callbacks.port}",
                callback_token=_callback_token(utility),
                hours_per_second=HOURS_PER_SECOND,
                slow_rate=0.1,
                external_works_rate=0.3,
                reject_rate=0.03,
                seed=self.options.seed + index,
            )
        surveys = self.settings.surveys
        assert surveys is not None  # noqa: S101 - written by _write_config
        reply_url = f"http://127.0.0.1:{surveys.intake.port}"
        answer_surveys(self.utilities, reply_url=reply_url, token_of=_callback_token)

    def replay(self) -> Expectation:
        """Publish the events upstream at the configured rate while showing delivery progress."""
        feeder = threading.Thread(target=self.feed, name="demo-feed", daemon=True)
        with _progress(self.console) as progress:
            published = progress.add_task("events published upstream", total=self.options.events)
            delivered = progress.add_task("tasks delivered to utilities", total=None)
            feeder.start()
            while feeder.is_alive():
                progress.update(published, completed=len(self.published_at))
                progress.update(delivered, completed=self._delivered())
                time.sleep(0.2)
            progress.update(published, completed=len(self.published_at))
            expectation = self._expectation()
            progress.update(delivered, total=expectation.total)
            deadline = time.monotonic() + self.options.timeout_s
            while self._delivered() < expectation.total and time.monotonic() < deadline:
                progress.update(delivered, completed=self._delivered())
                time.sleep(0.2)
            progress.update(delivered, completed=self._delivered())
        with self.console.status("payments posted at the utilities, receipts back to 爱山东"):
            _wait_for(self.payments.settled, timeout_s=self.options.timeout_s)
        with self.console.status("utilities working through their tasks (simulated office hours)"):
            _wait_for(lambda: _unanswered_open_tasks(self.registry) == 0, timeout_s=90)
            _settle(self.registry, quiet_s=2.0, timeout_s=30)
        with self.console.status("joint site surveys agreed"):
            _wait_for(lambda: settled(read_surveys(self.settings)), timeout_s=60)
            notices = sum(sim.survey_notices() for sim in self.utilities.values())
            self.survey_line = surveys_line(read_surveys(self.settings), notices)
        with self.console.status("external-works permits filed with the departments, their decisions told"):
            permits = self.settings.permits
            assert permits is not None  # noqa: S101 - written by _write_config
            self.permits.file(self.utilities, port=permits.intake.port, token_of=_callback_token)
            _wait_for(lambda: self.permits.settled(self.utilities), timeout_s=60)
            self.permit_line = self.permits.line(self.utilities)
        with self.console.status("12345: answers to the platform, return visits, 清零 and 销号"):
            self.loop = self._close_the_loop(expectation)
        return expectation

    def _close_the_loop(self, expectation: Expectation) -> str:
        """The platform visits the callers; the unsatisfied are answered again and visited again. A summary line."""
        served = len(expectation.complaint_orders)
        _wait_for(lambda: len(self.hotline.answered()) >= served, timeout_s=60)
        answered = len(self.hotline.answered())
        unsatisfied = self.hotline.visit_answered()
        _wait_for(lambda: self._on_clearing_ledger(unsatisfied), timeout_s=60)
        answer_again(self.settings, unsatisfied, token_of=_callback_token)
        _wait_for(lambda: self.hotline.reanswered(unsatisfied), timeout_s=60)
        self.hotline.revisit(unsatisfied)
        _settle(self.registry, quiet_s=2.0, timeout_s=30)
        entries = read_orders(self.settings.kafka, self.settings.topics)
        cleared = sum(1 for order in unsatisfied if order in entries and state_of(entries[order]) == "cleared")
        return (
            f"12345 loop: {answered}/{served} orders answered to the platform, {len(self.hotline.answered())} visited,"
            f" {len(unsatisfied)} unsatisfied went on the 清零 ledger, {cleared} answered again and cleared (销号)"
        )

    def _on_clearing_ledger(self, order_ids: list[str]) -> bool:
        entries = read_orders(self.settings.kafka, self.settings.topics)
        return all(order in entries and entries[order]["on_clearing_ledger"] for order in order_ids)

    def result(self, expectation: Expectation) -> DemoResult:
        """Compare what arrived with what should have, utility by utility."""
        rows = [self._figures(u, sim, expectation) for u, sim in self.utilities.items()]
        sla = [_sla_figures(self.registry, u) for u in self.utilities]
        complaints = list(read_orders(self.settings.kafka, self.settings.topics).values())
        payments = self.payments.figures({u: sim.url for u, sim in self.utilities.items()})
        pushed, refused = len(self.payments.pushed), self.payments.refused
        line = payments_line(payments, pushed=pushed, repeated=self.payments.repeated, refused=refused)
        stages = _stage_figures(self.registry)
        refused_apps = self.applications_refused
        return DemoResult(
            rows,
            stages,
            expectation,
            sla,
            refused_apps,
            complaints,
            payments,
            line,
            self.loop,
            self.permit_line,
            self.survey_line,
        )

    def stop(self) -> None:
        """Stop ubridge (commits in-flight work) and the simulators."""
        if self.app is not None:
            self.app.stop()
            self.app.wait(timeout_s=30)
        self.simulators.stop()
        self.payments.stop()
        self.hotline.stop()

    def feed(self) -> None:
        """Publish the events upstream at the configured rate, with applications alongside."""
        chunk = max(1, int(self.options.rate_per_s / 10))
        remaining = self.options.events
        invalid = 0
        while remaining > 0:
            started = time.monotonic()
            size = min(chunk, remaining)
            # One event in a hundred is defective; the simulator rounds per call, so spread them over chunks.
            due = round((self.options.events - remaining + size) * INVALID_SHARE) - invalid
            invalid += due
            events = self.approval.generate(size, invalid_rate=due / size, unserved_rate=UNSERVED_SHARE)
            now = datetime.now(UTC)
            for event in events:
                self.published_at[int(event["seq"])] = now
            self._apply(len(self.published_at), [str(e["xmdm"]) for e in events])
            self.payments.push(len(self.published_at))
            remaining -= len(events)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        self.hotline.replay(HOTLINE_ORDERS)

    def _apply(self, chunk: int, project_codes: list[str]) -> None:
        """File 爱山东 applications alongside the approval traffic, some citing the projects just published."""
        gateway = self.settings.sources.aishandong_gateway
        assert gateway is not None  # noqa: S101 - written by _write_config
        count = max(1, round(len(project_codes) * APPLICATION_SHARE))
        start = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
        apps = make_applications(count, chunk, APPLICATION_REGIONS, project_codes=project_codes, start=start)
        url = f"http://127.0.0.1:{gateway.port}{APPLICATIONS_PATH}"
        for app, result in zip(apps, push_applications(url, GATEWAY_SECRET, apps, charset="gbk"), strict=True):
            if result.status == 202:  # noqa: PLR2004 - HTTP Accepted
                self.applications.append(app)
            else:
                self.applications_refused += 1

    def _expectation(self) -> Expectation:
        codes = self.settings.routing.status_codes
        now = datetime.now(UTC)
        published = self.approval.events()
        if self.options.source == "spgl":
            events = exchange_events(self.exchange_db, source="gonggai-spgl", status_codes=codes, now=now)
        else:
            events = interface_events(published, source="gonggai-interface", status_codes=codes, now=now)
        expectation = expected_tasks(events, published, self.areas, now=now)
        config = self.settings.applications
        assert config is not None  # noqa: S101 - written by _write_config
        rules = load_application_rules(config.rules)
        calendar = load_calendar(config.calendar)
        expected_application_tasks(self.applications, self.areas, calendar, rules, now=now, into=expectation)
        expected_complaint_tasks(self.hotline.orders, self.areas, now=now, into=expectation)
        return expectation

    def _delivered(self) -> int:
        return sum(sim.stats().unique for sim in self.utilities.values())

    def _figures(self, utility: str, sim: RemoteUtility, expectation: Expectation) -> UtilityFigures:
        received = sim.tasks()
        expected = expectation.tasks.get(utility, set())
        ids = [t.task_id for t in received]
        latencies = []
        for task in received:
            seq = expectation.event_of_task.get(task.task_id)
            if seq is not None and seq in self.published_at:
                latencies.append((task.received_at - self.published_at[seq]).total_seconds())
        stage = f"sink-{utility}"
        return UtilityFigures(
            utility=utility,
            expected=len(expected),
            delivered=len(set(ids)),
            missing=len(expected - set(ids)),
            unexpected=len(set(ids) - expected) + (len(ids) - len(set(ids))),
            resent=sim.stats().repeats,
            retries=int(_sum_samples(self.registry, "ubridge_delivery_retries_total", {"utility": utility})),
            dead_lettered=int(_sum_samples(self.registry, "ubridge_records_dead_lettered_total", {"stage": stage})),
            latencies_s=latencies,
        )

    def _sources(self, approval_url: str) -> dict[str, Any]:
        gateway = {"aishandong_gateway": {"port": free_port(), "secret": GATEWAY_SECRET}}
        if self.options.source == "spgl":
            return {"gonggai_spgl": {"url": self.exchange_db, "poll_interval_s": 0.2, "page_size": 2000}, **gateway}
        interface = {"base_url": approval_url, "token": APPROVAL_TOKEN, "page_size": 200, "poll_interval_s": 0.2}
        return {"gonggai_interface": interface, **gateway}

    def _write_config(self, approval_url: str, urls: dict[str, str]) -> Path:
        self.options.workdir.mkdir(parents=True, exist_ok=True)
        document = {
            "kafka": {
                "bootstrap": self.options.bootstrap,
                "topic_prefix": self.options.topic_prefix or f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}.",
            },
            "observability": {
                "log_format": "json",
                "log_level": "info",
                "metrics_port": self.options.metrics_port,
            },
            "sources": self._sources(approval_url),
            "routing": {"service_areas": str(self.areas_path)},
            "status_callbacks": {"port": free_port()},
            "hotline": self.hotline.config(push_port=free_port()),
            "supervision": {"port": free_port(), "token": SUPERVISION_TOKEN},
            "payments": self.payments.section(free_port()),
            "permits": self.permits.section(free_port(), str(CONFIG_DIR / "calendar.yaml")),
            "surveys": surveys_config(CONFIG_DIR, self.options.workdir, free_port()),
            "applications": {
                "calendar": str(CONFIG_DIR / "calendar.yaml"),
                "rules": str(CONFIG_DIR / "aishandong.yaml"),
            },
            "ledger": {
                "calendar": str(CONFIG_DIR / "calendar.yaml"),
                "policies": str(CONFIG_DIR / "sla-policies.yaml"),
                # the simulators report in compressed office time: the latest report is the ledger's "now"
                "clock": "event",
            },
            "utilities": [
                {
                    "id": utility,
                    "endpoint": f"{url}/v1/tasks",
                    "auth": {"type": "bearer", "token": _token(utility)},
                    "callback_token": _callback_token(utility),
                    "timeout_s": 5,
                    "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 2.0},
                }
                for utility, url in urls.items()
            ],
            **complaints_config(self.hotline.url, FEED_TOKEN),
        }
        path = self.options.workdir / "ubridge.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path


SUPERVISION_TOKEN = "demo-supervision-token"  # noqa: S105 - the demo's, printed for the person watching
APPROVAL_TOKEN = "approval-token"  # noqa: S105 - the approval simulator's


def _token(utility: str) -> str:
    return f"demo-token-{utility}"


def _callback_token(utility: str) -> str:
    return f"demo-callback-{utility}"


def print_summary(console: Console, result: DemoResult) -> None:
    """The tables and the verdict."""
    exp = result.expectation
    console.print()
    console.print(stage_table(result.stages))
    console.print(utility_table(result.utilities))
    console.print(sla_table(result.sla))
    console.print(complaints_table(result.complaints, load_satisfaction_policy(CONFIG_DIR / "satisfaction.yaml")))
    console.print(result.loop_line)
    console.print(
        f"爱山东 applications: {exp.applications} routed, {result.applications_refused} refused at the gateway; "
        f"approval-system events: {exp.invalid} invalid (dead-lettered by the normaliser), "
        f"{exp.unserved} events or applications in regions no utility serves (dead-lettered by the routers), "
        f"{exp.filtered} not triggers (filtered)."
    )
    console.print(result.payment_line)
    console.print(result.permit_line)
    console.print(result.survey_line)
    console.print(linked_line(result.utilities))
    verdict = "[green]every expected task reached its utility exactly once[/]" if result.ok else "[red]MISMATCH[/]"
    console.print(verdict)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _wait_for(condition: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _settle(registry: CollectorRegistry, *, quiet_s: float, timeout_s: float) -> None:
    """Wait until no stage has consumed anything for ``quiet_s`` (late re-sends included)."""
    deadline = time.monotonic() + timeout_s
    last = _sum_samples(registry, "ubridge_records_in_total", {})
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
        time.sleep(0.2)
        now = _sum_samples(registry, "ubridge_records_in_total", {})
        if now != last:
            last, quiet_since = now, time.monotonic()


def _sum_samples(registry: CollectorRegistry, name: str, match: dict[str, str]) -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                total += sample.value
    return total


def _unanswered_open_tasks(registry: CollectorRegistry) -> float:
    """Open tasks the utilities still work on: an answered 12345 task stays open until the platform's return visit."""
    open_tasks = "ubridge_ledger_open_tasks"
    return _sum_samples(registry, open_tasks, {}) - _sum_samples(registry, open_tasks, {"stage": "ANSWERED"})


def _sla_figures(registry: CollectorRegistry, utility: str) -> SlaFigures:
    def events(rule_kind: str, kind: str) -> int:
        labels = {"utility": utility, "rule_kind": rule_kind, "kind": kind}
        return int(_sum_samples(registry, "ubridge_sla_events_total", labels))

    return SlaFigures(
        utility=utility,
        open_tasks=int(_sum_samples(registry, "ubridge_ledger_open_tasks", {"utility": utility})),
        first_contact_met=events("first_contact", "MET"),
        first_contact_breached=events("first_contact", "BREACHED"),
        total_met=events("total", "MET"),
        total_breached=events("total", "BREACHED"),
        first_contact_p50_h=_histogram_median(registry, "ubridge_time_to_first_contact_working_hours", utility),
        provisional=int(_sum_samples(registry, "ubridge_sla_events_provisional_total", {"utility": utility})),
    )


def _histogram_median(registry: CollectorRegistry, name: str, utility: str) -> float | None:
    """The upper bound of the bucket holding the median (Prometheus histograms keep no raw values)."""
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for metric in registry.collect()
        for s in metric.samples
        if s.name == f"{name}_bucket" and s.labels.get("utility") == utility
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    half = buckets[-1][1] / 2
    return next(bound for bound, count in buckets if count >= half)


def _stage_figures(registry: CollectorRegistry) -> dict[str, dict[str, float]]:
    names = {
        "ubridge_records_in_total": "in",
        "ubridge_records_out_total": "out",
        "ubridge_records_filtered_total": "filtered",
        "ubridge_records_dead_lettered_total": "dead_lettered",
    }
    stages: dict[str, dict[str, float]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            column = names.get(sample.name)
            if column is not None:
                row = stages.setdefault(sample.labels["stage"], {})
                row[column] = row.get(column, 0.0) + sample.value
    return stages
