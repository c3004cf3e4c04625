"""A task's clocks under the rules that govern it, and the SLA events they raise (DESIGN §7).

The rules are data (:mod:`routing.sla_policy`, ``deploy/config/sla-policies.yaml``). For each rule governing a
task, :func:`rule_views` picks the variant for the task's external pipe and builds its clocks: the rule's own
(``first_contact`` when it stops at CONTACTED, else ``total``) from the instant the rule starts from (the
application's filing, the permit's grant…), and one ``step:<name>`` per step the document names, each from the
previous step's stop. Clocks count office time (:class:`routing.calendar.WorkingCalendar`) or natural time, by
the rule's unit, less the stages the variant clocks out (Yantai's design and construction).

:func:`evaluate` emits, per clock with a limit: WARNING at ``warning_fraction`` while it runs, BREACHED past the
limit (``occurred_at`` = the due instant), MET when it stopped in time, and REJECTED or CANCELLED when the task
ended first within the limit (a CLOSED report counts as reaching every stop). A clock has one outcome. Event
ids are ``sha256(task, rule id, clock, kind)``, so a replay emits nothing new. An event over a year with only a
provisional holiday schedule says so.

Example:
    >>> views = rule_views(entry, book, calendar)
    >>> events = evaluate(entry, book, calendar, now)
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final, Literal

from routing.calendar import SHANGHAI, TIME_ZONE, WorkingCalendar
from routing.records import SlaEvent, SlaEventKind, TaskLedgerEntry, TaskStage
from routing.sla_policy import PolicyBook, Rule, StartEvent, Variant

SCENARIOS: Final = ("no_external_works", "pipe_le_20m", "pipe_le_50m", "pipe_le_200m", "pipe_over_200m")
STAGE_ORDER: Final[tuple[TaskStage, ...]] = (
    "RECEIVED", "CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED",
)  # fmt: skip

RuleState = Literal["met", "breached", "open", "warning", "not_started", "done", "rejected", "cancelled"]
Terminal = Literal["REJECTED", "CANCELLED"]

_PIPE_SCENARIOS: Final = ((20.0, "pipe_le_20m"), (50.0, "pipe_le_50m"), (200.0, "pipe_le_200m"))
_EVENT_ID_LENGTH: Final = 32
_OUTCOMES: Final[tuple[SlaEventKind, ...]] = ("BREACHED", "MET", "REJECTED", "CANCELLED")
_HOURS_PER_NATURAL_DAY: Final = 24.0


def scenario_for(pipe_length_m: float | None) -> str:
    """Return the label of an external pipe length shown on the ledger entry (the rules pick their own variants).

    Raises:
        ValueError: On a negative or non-finite length.
    """
    if pipe_length_m is None or pipe_length_m == 0:
        return "no_external_works"
    if not math.isfinite(pipe_length_m) or pipe_length_m < 0:
        msg = f"pipe_length_m must be a finite length >= 0, got {pipe_length_m!r}"
        raise ValueError(msg)
    return next((name for limit, name in _PIPE_SCENARIOS if pipe_length_m <= limit), "pipe_over_200m")


@dataclass(frozen=True)
class ExcludedSpan:
    """Time clocked out of a rule: a stage's span and the document's reason (e.g. ``design, construction``)."""

    start: datetime
    end: datetime | None
    reason: str


@dataclass(frozen=True)
class RuleClock:
    """One clock of one rule on one task. ``started_at`` None: a step whose previous step has not ended."""

    rule_id: str
    name: str
    started_at: datetime | None
    ended_at: datetime | None
    limit_hours: float | None
    natural: bool
    counts_from: datetime | None = None
    excluded: tuple[ExcludedSpan, ...] = ()

    def _measure(self, calendar: WorkingCalendar, start: datetime, end: datetime) -> timedelta:
        if self.natural:
            return max(end - start, timedelta(0))
        return calendar.working_time_between(start, end)

    def _advance(self, calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
        return (start + amount).astimezone(UTC) if self.natural else calendar.add_working_time(start, amount)

    def elapsed(self, calendar: WorkingCalendar, horizon: datetime) -> timedelta:
        """Return the counted time from the start to ``horizon``, excluded spans left out."""
        origin = self.counts_from or self.started_at
        if origin is None:
            return timedelta(0)
        total = self._measure(calendar, origin, horizon)
        for span in self.excluded:
            stop = horizon if span.end is None else min(span.end, horizon)
            total -= self._measure(calendar, max(span.start, origin), stop)
        return total

    def instant(self, calendar: WorkingCalendar, hours: float, horizon: datetime) -> datetime:
        """Return when ``hours`` of counted time have elapsed (an excluded span still open ends at ``horizon``)."""
        origin = self.counts_from or self.started_at
        if origin is None:
            msg = f"{self.name} has not started"
            raise ValueError(msg)
        cursor, remaining = origin, timedelta(hours=hours)
        for span in self.excluded:
            if span.start > cursor:
                available = self._measure(calendar, cursor, span.start)
                if remaining <= available:
                    return self._advance(calendar, cursor, remaining)
                remaining -= available
            cursor = max(cursor, horizon if span.end is None else span.end)
        return self._advance(calendar, cursor, remaining)


@dataclass(frozen=True)
class RuleView:
    """A rule governing a task: its variant (None when none covers the pipe, ``note`` says why) and clocks."""

    rule: Rule
    citation: str
    variant: Variant | None
    clocks: tuple[RuleClock, ...]
    note: str | None


@dataclass(frozen=True)
class Reading:
    """A clock read at ``horizon``: its counted time, its state, and whether it still runs."""

    elapsed: timedelta
    horizon: datetime
    state: RuleState
    live: bool


def rule_views(entry: TaskLedgerEntry, book: PolicyBook, calendar: WorkingCalendar) -> list[RuleView]:
    """Return every rule governing the task, with its clocks (none when no variant covers the pipe)."""
    governing = book.governing(
        kind=entry["kind"],
        application_kind=entry["application_kind"],
        service=entry["service"],
        region_code=entry["region_code"],
    )
    views: list[RuleView] = []
    for item in governing:
        rule = item.rule
        start, note = start_instant(entry, rule.starts)
        variant = rule.variant_for(entry["pipe_length_m"])
        if variant is None:
            gap = f"no variant covers an external pipe of {entry['pipe_length_m']} m; not judged under this rule"
            views.append(RuleView(rule, item.citation, None, (), gap))
            continue
        views.append(RuleView(rule, item.citation, variant, _clocks(entry, rule, variant, start, calendar), note))
    return views


def start_instant(entry: TaskLedgerEntry, event: StartEvent) -> tuple[datetime, str | None]:
    """Return the instant a rule starts from, and a note when the task lacks it (then: its creation)."""
    at: datetime | None
    if event == "application_filed":
        at = entry["application_filed_at"]
    elif event == "permit_granted":
        at = entry["permit_granted_at"]
    elif event == "received_by_utility":
        at = reached(entry, "RECEIVED")
    else:
        at = entry["created_at"]
    if at is None:
        return entry["created_at"], f"the task carries no {event} instant; clocked from its creation"
    return at, None


def _clocks(
    entry: TaskLedgerEntry, rule: Rule, variant: Variant, start: datetime, calendar: WorkingCalendar
) -> tuple[RuleClock, ...]:
    natural = rule.unit.startswith("natural")
    scale = _hours_per_unit(rule, calendar)
    origin = None if rule.counting.start_day_counts else _next_day(start)
    reasons = variant.excluded_stages()
    excluded = tuple(
        ExcludedSpan(span["started_at"], span["ended_at"], ", ".join(reasons[span["stage"]]))
        for span in entry["stages"]
        if span["stage"] in reasons
    )
    name = "first_contact" if rule.stops == "CONTACTED" else "total"
    limit = None if variant.limit is None else variant.limit * scale
    clocks = [RuleClock(rule.id, name, start, reached(entry, rule.stops), limit, natural, origin, excluded)]
    step_start: datetime | None = start
    for index, step in enumerate(variant.steps):
        stop = reached(entry, step.stops)
        step_limit = None if step.limit is None else step.limit * scale
        counts = origin if index == 0 or step_start is None or rule.counting.start_day_counts else _next_day(step_start)
        clocks.append(RuleClock(rule.id, f"step:{step.name}", step_start, stop, step_limit, natural, counts, excluded))
        step_start = stop
    return tuple(clocks)


def _hours_per_unit(rule: Rule, calendar: WorkingCalendar) -> float:
    if rule.unit == "working_days":
        return calendar.hours_per_day
    return _HOURS_PER_NATURAL_DAY if rule.unit == "natural_days" else 1.0


def _next_day(moment: datetime) -> datetime:
    local = moment.astimezone(SHANGHAI).date() + timedelta(days=1)
    return datetime.combine(local, time(0), tzinfo=SHANGHAI).astimezone(UTC)


def reached(entry: TaskLedgerEntry, stage: TaskStage) -> datetime | None:
    """Return when the task first reached ``stage`` or a later stage of :data:`STAGE_ORDER`, else ``None``.

    A utility that reports SURVEYED without CONTACTED has evidently made contact by then.
    """
    floor = STAGE_ORDER.index(stage)
    starts = [
        span["started_at"]
        for span in entry["stages"]
        if span["stage"] in STAGE_ORDER and STAGE_ORDER.index(span["stage"]) >= floor
    ]
    return min(starts, default=None)


def task_end(entry: TaskLedgerEntry) -> tuple[datetime, Terminal] | None:
    """Return when and how the task ended before its stops (REJECTED or CANCELLED), else ``None``.

    CLOSED is not among them: it counts as reaching every stop (:func:`reached`), a task being closed once done.
    """
    ends: list[tuple[datetime, Terminal]] = [
        (span["started_at"], "REJECTED") for span in entry["stages"] if span["stage"] == "REJECTED"
    ]
    if entry["cancelled_at"] is not None:
        ends.append((entry["cancelled_at"], "CANCELLED"))
    return min(ends, default=None)


def read(
    clock: RuleClock,
    calendar: WorkingCalendar,
    now: datetime,
    *,
    end: tuple[datetime, Terminal] | None,
    fraction: float,
) -> Reading:
    """Read a clock: a stopped one at its stop; a running one at ``now``, or at the task's end if it ended first.

    A running clock of an ended task reads breached if it was breached by the end, else the end's outcome.
    """
    if clock.started_at is None:
        return Reading(timedelta(0), now, "not_started", live=False)
    ended_at = None if end is None else end[0]
    stopped = clock.ended_at is not None and (ended_at is None or clock.ended_at <= ended_at)
    live = not stopped and ended_at is None
    if stopped and clock.ended_at is not None:
        horizon = clock.ended_at
    else:
        horizon = now if ended_at is None else min(now, ended_at)
    elapsed = clock.elapsed(calendar, horizon)
    limit = None if clock.limit_hours is None else timedelta(hours=clock.limit_hours)
    state: RuleState
    if limit is not None and elapsed > limit:
        state = "breached"
    elif stopped:
        state = "met" if limit is not None else "done"
    elif end is not None and end[0] <= now:
        state = _terminal_state(end[1])
    elif live and limit is not None and elapsed >= limit * fraction:
        state = "warning"
    else:
        state = "open"
    return Reading(elapsed, horizon, state, live)


def _terminal_state(terminal: Terminal) -> RuleState:
    return "rejected" if terminal == "REJECTED" else "cancelled"


def event_id(task_id: str, rule_id: str, clock: str, kind: SlaEventKind) -> str:
    """Return the deterministic id of an SLA event: the first 32 hex characters of a SHA-256."""
    return hashlib.sha256("\x1f".join((task_id, rule_id, clock, kind)).encode()).hexdigest()[:_EVENT_ID_LENGTH]


def evaluate(entry: TaskLedgerEntry, book: PolicyBook, calendar: WorkingCalendar, now: datetime) -> list[SlaEvent]:
    """Return the SLA events now due for the task and not yet in ``entry["emitted"]``, oldest first.

    A clock has one outcome: once its BREACHED, MET, REJECTED or CANCELLED is emitted no other is, even
    if a late, out-of-order report changes the picture (``ubridge tasks show`` reads the current state).

    Raises:
        ValueError: If ``now`` is naive.
        CalendarError: If a clock runs through a year without a holiday schedule.
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    emitted = set(entry["emitted"])
    end = task_end(entry)
    events: list[SlaEvent] = []
    for view in rule_views(entry, book, calendar):
        for clock in view.clocks:
            if clock.limit_hours is None or clock.started_at is None:
                continue
            ids = {kind: event_id(entry["task_id"], clock.rule_id, clock.name, kind) for kind in _OUTCOMES}
            if emitted & set(ids.values()):
                continue  # settled: nothing more can be due, and no calendar walk is needed
            reading = read(clock, calendar, now, end=end, fraction=book.warning_fraction)
            kinds = [
                kind
                for kind in _due_kinds(reading)
                if event_id(entry["task_id"], clock.rule_id, clock.name, kind) not in emitted
            ]
            if kinds:
                at = _At(reading=reading, now=now, fraction=book.warning_fraction)
                events += _events(entry, view, clock, kinds, calendar=calendar, at=at)
    return sorted(events, key=lambda event: event["occurred_at"])


@dataclass(frozen=True)
class _At:
    reading: Reading
    now: datetime
    fraction: float


def _events(
    entry: TaskLedgerEntry,
    view: RuleView,
    clock: RuleClock,
    kinds: list[SlaEventKind],
    *,
    calendar: WorkingCalendar,
    at: _At,
) -> list[SlaEvent]:
    reading, now, fraction = at.reading, at.now, at.fraction
    limit = clock.limit_hours or 0.0
    due = clock.instant(calendar, limit, reading.horizon)
    start = clock.counts_from or clock.started_at or entry["created_at"]
    provisional = calendar.provisional_between(start, max(due, reading.horizon))
    events: list[SlaEvent] = []
    for kind in kinds:
        if kind == "WARNING":
            occurred = clock.instant(calendar, limit * fraction, reading.horizon)
        else:
            occurred = due if kind == "BREACHED" else reading.horizon.astimezone(UTC)
        events.append(
            {
                "event_id": event_id(entry["task_id"], clock.rule_id, clock.name, kind),
                "task_id": entry["task_id"],
                "utility_id": entry["utility_id"],
                "application_id": entry["application_id"],
                "kind": kind,
                "rule": clock.name,
                "policy_id": clock.rule_id,
                "policy_source": view.citation,
                "region_code": entry["region_code"],
                "scenario": view.variant.name if view.variant is not None else "",
                "limit_working_hours": limit,
                "elapsed_working_hours": reading.elapsed.total_seconds() / 3600,
                "started_at": (clock.started_at or start).astimezone(UTC),
                "due_at": due,
                "occurred_at": occurred,
                "emitted_at": now.astimezone(UTC),
                "time_zone": TIME_ZONE,
                "provisional_calendar": provisional,
                "rule_id": clock.rule_id,
                "unit": view.rule.unit,
                "start_event": view.rule.starts,
            }
        )
    return events


def _due_kinds(reading: Reading) -> list[SlaEventKind]:
    if reading.state == "met":
        return ["MET"]
    if reading.state == "warning":
        return ["WARNING"]
    if reading.state == "breached":
        return ["WARNING", "BREACHED"] if reading.live else ["BREACHED"]
    terminal: dict[RuleState, SlaEventKind] = {"rejected": "REJECTED", "cancelled": "CANCELLED"}
    return [terminal[reading.state]] if reading.state in terminal else []
