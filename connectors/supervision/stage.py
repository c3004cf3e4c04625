"""The supervision view as a stage of ``ubridge run``: the ledger followed in memory, the pages on their own port.

Example:
    >>> view = build_supervision(settings, metrics=metrics, stop=stop)
    >>> view.run()   # until ``stop`` is set
"""

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog
from fastapi import FastAPI

from connectors.complaints.follower import ComplaintFollower, follower_figures
from connectors.ledger.show import DEFAULT_CALENDAR, DEFAULT_POLICIES
from connectors.runtime.interface import StageState
from connectors.runtime.metrics import Metrics
from connectors.runtime.topic_follower import TopicFollower, by_field
from connectors.runtime.web_app import build_app
from connectors.runtime.web_server import WebServer
from connectors.settings import Settings
from connectors.supervision.entries import LedgerFollower
from connectors.supervision.pages import LedgerView, LoginRequired, login_redirect, supervision_router
from routing.calendar import load_calendar
from routing.records import TaskLedgerEntry
from routing.satisfaction import load_satisfaction_policy
from routing.sla_policy import load_policies

log = structlog.get_logger(__name__)

STAGE: Final = "supervision-view"
_CATCH_UP_STEP_S: Final = 5.0


def rules_of(settings: Settings) -> tuple[Path, Path]:
    """The calendar and SLA policy files the view judges by: the ledger's, or the shipped ones.

    With ``ledger.clock: event`` the view reads the figures at the latest report's time, as the ledger does.
    """
    ledger = settings.ledger
    return (ledger.calendar, ledger.policies) if ledger is not None else (DEFAULT_CALENDAR, DEFAULT_POLICIES)


def latest_report(entries: Callable[[], list[TaskLedgerEntry]]) -> Callable[[], datetime]:
    """The ledger's ``event`` clock for the view: the latest report's time among the entries (wall time if none).

    A replay or the demo reports in compressed time; read at the wall clock, its open tasks would all be late.
    """

    def now() -> datetime:
        return max((entry["updated_at"] for entry in entries()), default=datetime.now(UTC))

    return now


def supervision_app(view: LedgerView, token: str) -> FastAPI:
    """The view's application: its pages, a page asked without the token redirected to the login form."""
    app = build_app([supervision_router(view, token)], description="ubridge supervision view")
    app.add_exception_handler(LoginRequired, login_redirect)
    return app


class SupervisionView:
    """Follows the ledger's changelog and serves the pages until ``stop`` is set.

    Args:
        follower: The ledger's entries in memory.
        view: What the pages read (over ``follower``).
        token: The department's token.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        metrics: Process metrics.
        stop: Set to stop.
        also: The other topics the pages read, followed alongside (the complaint ledger, the joint surveys).
    """

    stage = STAGE

    def __init__(
        self,
        follower: LedgerFollower,
        view: LedgerView,
        *,
        token: str,
        host: str,
        port: int,
        metrics: Metrics,
        stop: threading.Event,
        also: Sequence[TopicFollower[Any]] = (),
    ) -> None:
        self.state = StageState()
        self._also = list(also)
        self._follower = follower
        self._metrics = metrics
        self._stop = stop
        self._server = WebServer(supervision_app(view, token), host=host, port=port, name=STAGE)

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    def run(self) -> None:
        """Read the ledger to its end, serve, and stop serving once ``stop`` is set."""
        reader_stop = threading.Event()
        reader = threading.Thread(target=self._follower.run, args=(reader_stop,), name=f"{STAGE}-ledger", daemon=True)
        reader.start()
        readers = [
            threading.Thread(target=f.run, args=(reader_stop,), name=f"{STAGE}-follower", daemon=True)
            for f in self._also
        ]
        for thread in readers:
            thread.start()
        try:
            while not self._follower.wait_caught_up(_CATCH_UP_STEP_S):
                if self._stop.is_set():
                    return
                log.info("supervision_ledger_catching_up")
            self._server.start()
            self.state.started = self.state.ready = True
            self._metrics.stage_up.labels(STAGE).set(1)
            log.info("supervision_serving", port=self.port)
            self._stop.wait()
        finally:
            self.state.ready = False
            self._server.stop()
            reader_stop.set()
            reader.join()
            for thread in readers:
                thread.join()
            self._metrics.stage_up.labels(STAGE).set(0)


def build_supervision(settings: Settings, *, metrics: Metrics, stop: threading.Event) -> SupervisionView:
    """The view of this configuration (``supervision`` must be set)."""
    config = settings.supervision
    assert config is not None  # noqa: S101 - stage_specs only lists a configured view
    calendar_path, policies_path = rules_of(settings)
    follower = LedgerFollower(settings.kafka, settings.topic("ledger_changelog"))
    view = LedgerView(
        follower.entries,
        follower.entry,
        load_policies(policies_path),
        load_calendar(calendar_path),
        refresh_s=config.refresh_s,
    )
    if settings.ledger is not None and settings.ledger.clock == "event":
        view = replace(view, now=latest_report(follower.entries))
    complaints = None
    if settings.complaints is not None:
        complaints = ComplaintFollower(settings.kafka, settings.topic("complaints_ledger"))
        view = replace(
            view, complaints=follower_figures(complaints, load_satisfaction_policy(settings.complaints.satisfaction))
        )
    surveys = None
    if settings.surveys is not None and settings.surveys.enabled:
        surveys = TopicFollower[Mapping[str, Any]](
            settings.kafka, settings.topic("surveys"), record="SurveyProposal", key_of=by_field("survey_id")
        )
        view = replace(view, survey=survey_of_task(surveys.entries))
    token = config.token.get_secret_value()
    return SupervisionView(
        follower,
        view,
        token=token,
        host=config.host,
        port=config.port,
        metrics=metrics,
        stop=stop,
        also=[f for f in (complaints, surveys) if f is not None],
    )


def survey_of_task(surveys: Callable[[], list[Mapping[str, Any]]]) -> Callable[[str], Mapping[str, Any] | None]:
    """The joint survey (as it stands) a task takes part in, for the task's page."""

    def survey(task_id: str) -> Mapping[str, Any] | None:
        mine = [s for s in surveys() if any(p["task_id"] == task_id for p in s["participants"])]
        return mine[-1] if mine else None

    return survey
