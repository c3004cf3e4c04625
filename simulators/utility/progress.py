"""Task progression in a simulated utility: each stored task walks through its stages at realistic speeds.

Stages: RECEIVED → CONTACTED → SURVEYED → PLAN_CONFIRMED → (EXTERNAL_WORKS) → CONNECTED → CLOSED, or REJECTED
(with a reason) after contact or survey. Durations are in *working* hours, drawn per task:

=====================================  ==========================================================
RECEIVED                               at the task's ``created_at`` (the system registers it at once)
→ CONTACTED                            1–2.5 h; 4–6 h for ``slow_rate`` of tasks (the 3 h rule breached)
→ SURVEYED                             2–6 h
→ PLAN_CONFIRMED                       4–8 h
→ EXTERNAL_WORKS (``pipe_length_m``)   0.5–2 h to mobilise, for ``external_works_rate`` of tasks; pipe 5–180 m
→ CONNECTED                            external works 8–40 h (when any), then connection 2–8 h
→ CLOSED                               0.5–1 h
→ REJECTED (instead)                   1–4 h after CONTACTED or SURVEYED, for ``reject_rate`` of tasks
=====================================  ==========================================================

A status's ``occurred_at`` is ``created_at`` plus its working hours counted only within office hours,
08:30–12:00 and 13:30–17:30 Monday to Friday at UTC+08:00. Simplification: no statutory holidays and no
make-up working days (调休); ubridge's SLA calendar knows those, the simulator does not. In real time a
status is due ``working hours / hours_per_second`` seconds after the task was stored.

Each status is appended to the change feed (served by the simulator at ``GET /v1/task-status``) and, when a
callback URL is set, POSTed to ``{callback_url}/v1/tasks/{task_id}/status`` by one sender thread, in order,
retried a few times; a status that still fails is counted in ``callback_failures``.

Example:
    >>> progress = Progression("yantai-water", seed=11)
    >>> progress.configure(hours_per_second=3600, callback_url="http://127.0.0.1:8090", callback_token="T")
    >>> progress.task_stored("t-1", {"created_at": "2026-11-02T01:07:00Z"}, received_at)
    >>> progress.stop()
"""

from __future__ import annotations

import heapq
import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from typing import Any
from urllib.parse import quote

OFFICE_TZ = timezone(timedelta(hours=8), "CST")
OFFICE_WINDOWS = ((clock_time(8, 30), clock_time(12, 0)), (clock_time(13, 30), clock_time(17, 30)))
_FRIDAY = 4
CALLBACK_ATTEMPTS = 4
_CALLBACK_TIMEOUT_S = 5.0
_CALLBACK_BACKOFF_S = 0.1
_COUNTERS = ("statuses_reported", "callbacks_delivered", "callback_failures")
_RETRIED_STATUSES = frozenset({408, 425, 429})
_REJECT_REASONS = (
    "市政管网未覆盖，暂不具备接入条件",
    "建设单位撤回报装申请",
    "用地红线内管线条件不满足，需建设单位整改",
    "资料不全且逾期未补正",
)
_DETAILS = {
    "RECEIVED": "业务系统已受理",
    "CONTACTED": "客户经理已电话联系建设单位",
    "SURVEYED": "现场踏勘完成",
    "PLAN_CONFIRMED": "接入方案已与建设单位确认",
    "EXTERNAL_WORKS": "外线工程开工",
    "CONNECTED": "已完成接入，具备使用条件",
    "CLOSED": "工单已办结归档",
    "VERIFIED": "已联系来电人核实情况",
    "HANDLED": "已派员现场处置",
    "ANSWERED": "已派员检修处置完毕，并电话告知来电人处理结果",
}


def add_office_hours(start: datetime, hours: float) -> datetime:
    """Return ``start`` plus ``hours`` counted only within office hours, at UTC+08:00.

    Zero hours return ``start`` itself (converted), even outside office hours.

    Raises:
        ValueError: ``start`` is naive or ``hours`` is negative.
    """
    if start.tzinfo is None or hours < 0:
        message = "start must be timezone-aware and hours must not be negative"
        raise ValueError(message)
    moment = start.astimezone(OFFICE_TZ)
    remaining = timedelta(hours=hours)
    while remaining > timedelta(0):
        begin, end = _office_window(moment)
        moment = max(moment, begin)
        if remaining <= end - moment:
            return moment + remaining
        remaining -= end - moment
        moment = end
    return moment


def _office_window(moment: datetime) -> tuple[datetime, datetime]:
    """The office window that contains ``moment`` or comes next (one ends after ``moment``)."""
    day = moment.date()
    while True:
        if day.weekday() <= _FRIDAY:
            for opens, closes in OFFICE_WINDOWS:
                end = _at(day, closes)
                if end > moment:
                    return _at(day, opens), end
        day += timedelta(days=1)


def _at(day: date, when: clock_time) -> datetime:
    return datetime.combine(day, when, OFFICE_TZ)


@dataclass(frozen=True)
class Step:
    """One status of a task's plan, ``hours`` working hours after the previous one."""

    stage: str
    hours: float
    pipe_length_m: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ProgressConfig:
    """How tasks progress (see :meth:`Progression.configure`)."""

    callback_url: str | None = None
    callback_token: str | None = None
    hours_per_second: float = 3600.0
    slow_rate: float = 0.1
    external_works_rate: float = 0.3
    reject_rate: float = 0.05

    def __post_init__(self) -> None:
        rates = (self.slow_rate, self.external_works_rate, self.reject_rate)
        if not all(0.0 <= float(rate) <= 1.0 for rate in rates):
            message = "slow_rate, external_works_rate and reject_rate must lie in [0, 1]"
            raise ValueError(message)
        if not float(self.hours_per_second) > 0:
            message = "hours_per_second must be positive"
            raise ValueError(message)
        if self.callback_url is not None and not self.callback_url.startswith(("http://", "https://")):
            message = f"callback_url must be an http(s) URL, not {self.callback_url!r}"
            raise ValueError(message)


def plan_steps(rng: random.Random, config: ProgressConfig, *, kind: str = "PRE_INTERVENTION") -> list[Step]:
    """Draw one task's statuses and the working hours before each.

    A COMPLAINT task (a 12345 work order) goes through the complaint loop's stages instead of a connection's:
    核实, 办理 and 反馈, the answer in the ANSWERED report's detail; one in ``slow_rate`` takes days to answer.
    """
    if kind == "COMPLAINT":
        slow = rng.random() < config.slow_rate
        return [
            Step("RECEIVED", 0.0),
            Step("VERIFIED", rng.uniform(0.5, 2.0)),
            Step("HANDLED", rng.uniform(2.0, 8.0)),
            Step("ANSWERED", rng.uniform(40.0, 60.0) if slow else rng.uniform(0.5, 2.0)),
        ]
    slow = rng.random() < config.slow_rate
    external = rng.random() < config.external_works_rate
    rejected = rng.random() < config.reject_rate
    steps = [
        Step("RECEIVED", 0.0),
        Step("CONTACTED", rng.uniform(4.0, 6.0) if slow else rng.uniform(1.0, 2.5)),
        Step("SURVEYED", rng.uniform(2.0, 6.0)),
    ]
    if rejected:
        keep = rng.choice((2, 3))  # rejected after contact or after survey
        return [*steps[:keep], Step("REJECTED", rng.uniform(1.0, 4.0), reason=rng.choice(_REJECT_REASONS))]
    steps.append(Step("PLAN_CONFIRMED", rng.uniform(4.0, 8.0)))
    works = 0.0
    if external:
        steps.append(Step("EXTERNAL_WORKS", rng.uniform(0.5, 2.0), pipe_length_m=round(rng.uniform(5.0, 180.0), 1)))
        works = rng.uniform(8.0, 40.0)
    steps.append(Step("CONNECTED", works + rng.uniform(2.0, 8.0)))
    steps.append(Step("CLOSED", rng.uniform(0.5, 1.0)))
    return steps


@dataclass(frozen=True)
class StatusReport:
    """A status the utility reported, with its place in the change feed."""

    seq: int
    task_id: str
    stage: str
    occurred_at: datetime
    pipe_length_m: float | None = None
    reason: str | None = None
    detail: str | None = None
    application_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The change-feed entry; optional fields only when set."""
        entry: dict[str, Any] = {
            "seq": self.seq,
            "task_id": self.task_id,
            "stage": self.stage,
            "occurred_at": self.occurred_at.isoformat(),
        }
        optional = {
            "pipe_length_m": self.pipe_length_m,
            "reason": self.reason,
            "detail": self.detail,
            "application_id": self.application_id,
        }
        return entry | {name: value for name, value in optional.items() if value is not None}


@dataclass(frozen=True)
class _Pending:
    task_id: str
    start: datetime
    elapsed_hours: float
    step: Step
    application_id: str | None
    traceparent: str | None = None  # of the request that brought the task: the callbacks continue its trace


@dataclass(frozen=True)
class _Outgoing:
    report: StatusReport
    url: str
    token: str | None
    traceparent: str | None = None


class _Workers:
    """One run of the scheduler and the sender threads, with the stop flag and the queue between them."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.outbox: queue.Queue[_Outgoing | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self, schedule: Callable[[_Workers], None], send: Callable[[_Workers], None], *, name: str) -> None:
        self._threads = [
            threading.Thread(target=schedule, args=(self,), name=f"{name}-progress", daemon=True),
            threading.Thread(target=send, args=(self,), name=f"{name}-callbacks", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, *, timeout_s: float) -> None:
        self.stopped.set()
        self.outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout_s)


class Progression:
    """Schedules the stages of stored tasks and reports them; thread-safe.

    Nothing happens until :meth:`configure` is first called, which starts a scheduler thread and a callback
    sender thread; :meth:`stop` ends both promptly and forgets the statuses not yet due, :meth:`start`
    resumes a configured progression (the simulator restarting).

    Args:
        utility_id: The utility reporting (named in callback bodies).
        seed: Default seed of the draws.
    """

    def __init__(self, utility_id: str, *, seed: int) -> None:
        self.utility_id = utility_id
        self._default_seed = seed
        self._wakeup = threading.Condition()
        self._config: ProgressConfig | None = None
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, int, _Pending]] = []
        self._order = 0
        self._feed: list[StatusReport] = []
        self._counts: Counter[str] = Counter()
        self._running: _Workers | None = None

    def configure(
        self,
        *,
        callback_url: str | None = None,
        callback_token: str | None = None,
        hours_per_second: float = 3600.0,
        slow_rate: float = 0.1,
        external_works_rate: float = 0.3,
        reject_rate: float = 0.05,
        seed: int | None = None,
    ) -> None:
        """Replace the progression plan; tasks stored from now on follow it (see the module docstring).

        Args:
            callback_url: ubridge's status-callback base URL; None reports through the change feed only.
            callback_token: Bearer token sent with callbacks.
            hours_per_second: Simulated working hours that pass per real second.
            slow_rate: Share of tasks whose first contact takes 4–6 working hours.
            external_works_rate: Share of tasks that need external pipe works.
            reject_rate: Share of tasks rejected.
            seed: Seed of the draws (the simulator's seed when None).

        Raises:
            ValueError: a rate outside [0, 1], a non-positive speed or a non-HTTP callback URL.
        """
        config = ProgressConfig(
            callback_url=callback_url.rstrip("/") if callback_url else None,
            callback_token=callback_token,
            hours_per_second=float(hours_per_second),
            slow_rate=float(slow_rate),
            external_works_rate=float(external_works_rate),
            reject_rate=float(reject_rate),
        )
        with self._wakeup:
            self._config = config
            self._rng = random.Random(self._default_seed if seed is None else int(seed))
        self.start()

    def start(self) -> None:
        """Run the scheduler and the callback sender, if configured and not running yet."""
        with self._wakeup:
            if self._config is None or self._running is not None:
                return
            self._running = workers = _Workers()
        workers.start(self._schedule, self._send, name=self.utility_id)

    def settings(self) -> dict[str, Any] | None:
        """The current plan (the token left out), or None before :meth:`configure`."""
        with self._wakeup:
            config = self._config
        if config is None:
            return None
        return {
            "callback_url": config.callback_url,
            "hours_per_second": config.hours_per_second,
            "slow_rate": config.slow_rate,
            "external_works_rate": config.external_works_rate,
            "reject_rate": config.reject_rate,
        }

    def task_stored(
        self, task_id: str, body: dict[str, Any], received_at: datetime, traceparent: str | None = None
    ) -> None:
        """Plan the stages of a newly stored task; CANCEL tasks and tasks stored before configure are left be."""
        if body.get("action") == "CANCEL":
            return
        start = _created_at(body, received_at)
        application = body.get("application_id")
        application_id = application if isinstance(application, str) else None
        now = time.monotonic()
        with self._wakeup:
            config = self._config
            if config is None or self._running is None:
                return
            elapsed = 0.0
            for step in plan_steps(self._rng, config, kind=str(body.get("kind", ""))):
                elapsed += step.hours
                self._order += 1
                due = now + elapsed / config.hours_per_second
                heapq.heappush(
                    self._heap, (due, self._order, _Pending(task_id, start, elapsed, step, application_id, traceparent))
                )
            self._wakeup.notify()

    def task_cancelled(self, task_id: str) -> None:
        """Drop the statuses of a task not reported yet: a cancelled task is not worked on."""
        with self._wakeup:
            self._heap = [item for item in self._heap if item[2].task_id != task_id]
            heapq.heapify(self._heap)

    def page(self, cursor: int, limit: int) -> dict[str, Any]:
        """The change feed after ``cursor``: ``{"statuses", "next_cursor", "has_more"}``."""
        with self._wakeup:
            reports = self._feed[cursor : cursor + limit] if cursor >= 0 else []
            has_more = cursor + len(reports) < len(self._feed)
        next_cursor = reports[-1].seq if reports else cursor
        return {"statuses": [r.to_json() for r in reports], "next_cursor": next_cursor, "has_more": has_more}

    def reports(self) -> list[StatusReport]:
        """Every status reported so far, in feed order."""
        with self._wakeup:
            return list(self._feed)

    def counts(self) -> dict[str, int]:
        """``statuses_reported``, ``callbacks_delivered`` and ``callback_failures``."""
        with self._wakeup:
            return {name: self._counts[name] for name in _COUNTERS}

    def stop(self) -> None:
        """Stop scheduling and sending; statuses not yet due are never reported. Safe to call twice."""
        with self._wakeup:
            workers, self._running = self._running, None
            self._heap.clear()
            if workers is not None:
                workers.stopped.set()
            self._wakeup.notify_all()
        if workers is not None:
            workers.stop(timeout_s=_CALLBACK_TIMEOUT_S + 1)

    def _schedule(self, workers: _Workers) -> None:
        while True:
            with self._wakeup:
                pending = self._next_due(workers.stopped)
                if pending is None:
                    return
                report = self._report(pending)
                config = self._config
            if config is not None and config.callback_url is not None:
                outgoing = _Outgoing(report, config.callback_url, config.callback_token, pending.traceparent)
                workers.outbox.put(outgoing)

    def _next_due(self, stopped: threading.Event) -> _Pending | None:
        """Wait (holding the condition) for the earliest due status; None once stopped."""
        while not stopped.is_set():
            wait = self._heap[0][0] - time.monotonic() if self._heap else None
            if wait is not None and wait <= 0:
                return heapq.heappop(self._heap)[2]
            self._wakeup.wait(wait)
        return None

    def _report(self, pending: _Pending) -> StatusReport:
        step = pending.step
        report = StatusReport(
            seq=len(self._feed) + 1,
            task_id=pending.task_id,
            stage=step.stage,
            occurred_at=_to_millis(add_office_hours(pending.start, pending.elapsed_hours)),
            pipe_length_m=step.pipe_length_m,
            reason=step.reason,
            detail=_DETAILS.get(step.stage),
            application_id=pending.application_id,
        )
        self._feed.append(report)
        self._counts["statuses_reported"] += 1
        return report

    def _send(self, workers: _Workers) -> None:
        while True:
            outgoing = workers.outbox.get()
            if outgoing is None or workers.stopped.is_set():
                return
            delivered = self._deliver(outgoing, workers.stopped)
            with self._wakeup:
                self._counts["callbacks_delivered" if delivered else "callback_failures"] += 1

    def _deliver(self, outgoing: _Outgoing, stopped: threading.Event) -> bool:
        """POST one status, retrying transport errors, 408, 425, 429 and 5xx; True when answered 2xx."""
        report = outgoing.report
        body = {"utility_id": self.utility_id} | report.to_json()
        del body["seq"], body["task_id"]
        url = f"{outgoing.url}/v1/tasks/{quote(report.task_id, safe='')}/status"
        for attempt in range(CALLBACK_ATTEMPTS):
            if attempt and stopped.wait(_CALLBACK_BACKOFF_S * 2 ** (attempt - 1)):
                return False
            status = _post(url, json.dumps(body, ensure_ascii=False).encode(), outgoing.token, outgoing.traceparent)
            if status is not None and 200 <= status < 300:  # noqa: PLR2004 - HTTP classes
                return True
            if status is not None and status < 500 and status not in _RETRIED_STATUSES:  # noqa: PLR2004
                return False
        return False


def _post(url: str, body: bytes, token: str | None, traceparent: str | None = None) -> int | None:
    """POST JSON; the status code, or None on a transport failure."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if traceparent is not None:
        headers["traceparent"] = traceparent
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=_CALLBACK_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _created_at(body: dict[str, Any], received_at: datetime) -> datetime:
    """The task's ``created_at`` (ISO-8601 with an offset), else when the utility received it."""
    value = body.get("created_at")
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    return created if created is not None and created.tzinfo is not None else received_at


def _to_millis(moment: datetime) -> datetime:
    """Millisecond precision, as ubridge stores times: never earlier than the task's own created_at."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
