"""The supervision view's pages: server-rendered HTML (Jinja2), read-only, behind the department's token.

Routes (none in the OpenAPI document: they are pages, not an API):

* ``GET /login``, ``POST /login`` (form field ``token``; sets an HttpOnly cookie), ``POST /logout``;
* ``GET /``: totals, charts, and tables per city, district and utility;
* ``GET /utilities/{utility_id}``: the utility's tasks; ``GET /tasks/{task_id}``: one task's timeline, the same
  facts as ``ubridge tasks show`` (stages, rules with citations, clocks, excluded intervals);
* ``GET /report/monthly?month=YYYY-MM``: the monthly dispatch workbook (:mod:`connectors.supervision.workbook`).

Every page needs the cookie or ``Authorization: Bearer <token>``; a page asked without is redirected to the
login form (303), the workbook answered 401. Tokens are compared with :func:`hmac.compare_digest`; the cookie
holds an HMAC of the token, never the token itself.

Example:
    >>> app = build_app([supervision_router(view, token)], description="supervision view")
"""

import hashlib
import hmac
import io
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from connectors.complaints.follower import ComplaintSource
from connectors.runtime.web_app import read_body
from connectors.supervision import charts
from connectors.supervision.labels import OUTCOME_LABELS, STAGE_LABELS, STATE_LABELS, SURVEY_LABELS, local
from connectors.supervision.workbook import write_workbook
from routing.calendar import WorkingCalendar
from routing.ledger import timeline
from routing.monthly import facts_at, monthly
from routing.records import TaskLedgerEntry
from routing.services import shipped_services
from routing.sla_policy import PolicyBook
from routing.supervision import Figures, TaskFacts, figures_of, with_complaints

COOKIE: Final = "ubridge_supervision"
_FORM_MAX_BYTES: Final = 4096
_XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class LedgerView:
    """What the pages read: the entries now, one entry, the rules and calendar, and the clock."""

    entries: Callable[[], list[TaskLedgerEntry]]
    entry: Callable[[str], TaskLedgerEntry | None]
    book: PolicyBook
    calendar: WorkingCalendar
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    refresh_s: float = 0.0  # the figures are computed again once older than this (0: on every page)
    complaints: ComplaintSource | None = None  # the 12345 loop's figures, from its ledger topic, when it runs
    survey: Callable[[str], Mapping[str, Any] | None] | None = None  # a task's joint survey, when surveys run


class _Snapshot:
    """Every task's facts at one instant, shared by the pages for ``refresh_s``.

    Reading every task's timeline costs about 150 µs a task: computed on every page, 100 000 tasks would
    take 15 s a page.
    """

    def __init__(self, view: LedgerView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._taken = -math.inf
        self._facts: tuple[datetime, list[TaskFacts]] | None = None

    def facts(self) -> tuple[datetime, list[TaskFacts]]:
        with self._lock:
            if self._facts is None or time.monotonic() - self._taken >= self._view.refresh_s:
                view, now = self._view, self._view.now()
                self._facts = now, facts_at(view.entries(), view.book, view.calendar, now)
                self._taken = time.monotonic()
            return self._facts


class LoginRequired(Exception):
    """No valid token: pages redirect to the login form."""


def templates() -> Environment:
    """The Jinja2 environment of the shipped templates, with the view's filters."""
    env = Environment(loader=PackageLoader("connectors.supervision", "templates"), autoescape=select_autoescape())
    env.filters.update(
        local=local,
        hours=lambda value: "" if value is None else f"{value:.2f}",
        percent=lambda value: "—" if value is None else f"{value * 100:.1f}%",
        score=lambda value: "—" if value is None else f"{value:.1f}",
        service=lambda value: shipped_services().name(value),
        stage=lambda value: STAGE_LABELS.get(value or "", value or ""),
        outcome=lambda value: OUTCOME_LABELS.get(value, value),
        state=lambda value: STATE_LABELS.get(value, value),
        survey_state=lambda value: SURVEY_LABELS.get(value, value),
    )
    return env


def session_value(token: str) -> str:
    """The cookie's value for ``token``: an HMAC, so the cookie never carries the token itself."""
    return hmac.new(token.encode(), b"ubridge-supervision-session", hashlib.sha256).hexdigest()


class _Gate:
    """Who may see the pages: the bearer of the token, or a browser holding the session cookie."""

    def __init__(self, token: str, session: str) -> None:
        self._token = token.encode()
        self._session = session.encode()

    def signed_in(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._session)

    def page(self, request: Request) -> None:
        if not self.signed_in(request):
            raise LoginRequired

    def download(self, request: Request) -> None:
        if not self.signed_in(request):
            detail = {"field": "Authorization", "reason": "the supervision token is required"}
            raise HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def supervision_router(view: LedgerView, token: str) -> APIRouter:
    """The view's pages over ``view``, open to holders of ``token``."""
    env = templates()
    session = session_value(token)
    snapshot = _Snapshot(view)

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    gate = _Gate(token, session)
    Page = Annotated[None, Depends(gate.page)]
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def login_form() -> HTMLResponse:
        return render("login.html")

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = await read_body(request, _FORM_MAX_BYTES)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), token.encode()):
            return render("login.html", 401, error="口令不正确")
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        return answer

    @router.post("/logout")
    def logout() -> Response:
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    @router.get("/", response_class=HTMLResponse)
    def overview(_: Page) -> HTMLResponse:
        now, facts = snapshot.facts()
        figures = _with_complaints(view, figures_of(facts, now=now), now)
        return render("overview.html", figures=figures, charts=charts, month=local(now)[:7])

    @router.get("/utilities/{utility_id}", response_class=HTMLResponse)
    def utility(utility_id: str, _: Page) -> HTMLResponse:
        now, facts = snapshot.facts()
        tasks = [task for task in facts if task.utility_id == utility_id]
        if not tasks:
            raise HTTPException(404, detail={"field": "utility_id", "reason": f"no tasks of {utility_id}"})
        figures = _with_complaints(view, figures_of(tasks, now=now), now)
        ordered = sorted(tasks, key=lambda task: (task.created_at, task.task_id), reverse=True)
        return render("utility.html", utility=figures.by_utility[0], tasks=ordered, now=now, charts=charts)

    @router.get("/tasks/{task_id}", response_class=HTMLResponse)
    def task(task_id: str, _: Page) -> HTMLResponse:
        entry = view.entry(task_id)
        if entry is None:
            raise HTTPException(404, detail={"field": "task_id", "reason": f"task {task_id} is not in the ledger"})
        now = view.now()
        shown = timeline(entry, view.book, view.calendar, now)
        survey = None if view.survey is None else view.survey(task_id)
        return render("task.html", entry=entry, timeline=shown, uncovered=view.book.uncovered, now=now, survey=survey)

    @router.get("/report/monthly")
    def report(_: Annotated[None, Depends(gate.download)], month: Annotated[str, Query(max_length=7)]) -> Response:
        try:
            content = monthly(view.entries(), view.book, view.calendar, month=month, now=view.now())
            if view.complaints is not None:
                figures = view.complaints(content.read_at, (content.start, content.end))
                content = replace(content, figures=with_complaints(content.figures, figures))
        except ValueError as exc:
            raise HTTPException(422, detail={"field": "month", "reason": str(exc)}) from exc
        stream = io.BytesIO()
        write_workbook(content, stream)
        disposition = f'attachment; filename="ubridge-monthly-{month}.xlsx"'
        return Response(stream.getvalue(), media_type=_XLSX, headers={"Content-Disposition": disposition})

    return router


def _with_complaints(view: LedgerView, figures: Figures, now: datetime) -> Figures:
    """The figures with the complaint loop's attached, when it runs."""
    return figures if view.complaints is None else with_complaints(figures, view.complaints(now, None))


async def login_redirect(request: Request, exc: Exception) -> Response:
    """A page asked without a valid token goes to the login form."""
    return RedirectResponse("/login", status_code=303)
