"""The task ledger (台账): every stage of a task, clocked in working time (DESIGN §2, §7).

An entry starts from the sink's RECEIVED report, which carries the task; each later :class:`TaskStatus`
from the utility yields a new entry. The ledger keeps, per stage, the earliest time it was reached, so the
final entry depends only on the set of reports, never on their arrival order:

- the same report twice, or a stage reported again later, leaves the entry unchanged;
- a report arriving late (SURVEYED before CONTACTED, CONTACTED dated earlier) is slotted in by
  ``occurred_at``; each span ends where the next stage starts;
- a report that can never fit raises :class:`~routing.errors.DataError` (field ``stage``): a stage dated
  after the task was CLOSED or REJECTED, CLOSED dated before CONNECTED, CLOSED and REJECTED both, REJECTED
  without a reason, EXTERNAL_WORKS without a pipe length, another task's or utility's report, a report dated
  before the task was created.

The task ends at CLOSED, REJECTED, or when the utility receives a CANCEL of it (the sink's RECEIVED carrying
a task with ``action="CANCEL"``, recorded as ``cancelled_at``); every clock still running then closes with
that outcome. Reports after a cancellation are still recorded (the utility may not have seen it yet).

The calendar never makes a report fail: a span whose working time cannot be computed (no holiday schedule for
a year it runs through) keeps ``elapsed_working_hours`` null and the entry says why in ``unclocked_reason``;
:func:`reclock` computes them again once the calendar covers them.

A ledger stage drives it like this (``evaluate`` is :func:`routing.sla.evaluate`)::

    entry = open_entry(received["task"], received_at=received["occurred_at"])
    entry = apply_status(entry, contacted, calendar)
    events = evaluate(entry, book, calendar, now)  # book: the rules of deploy/config/sla-policies.yaml
    entry = mark_emitted(entry, events, now)  # after the events are acknowledged
"""

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, NamedTuple

from routing.calendar import CalendarError, WorkingCalendar
from routing.errors import DataError
from routing.privacy import mask_text
from routing.records import SlaEvent, StageSpan, TaskLedgerEntry, TaskStage, TaskStatus, UtilityTask
from routing.sla import (
    STAGE_ORDER,
    ExcludedSpan,
    RuleClock,
    RuleState,
    RuleView,
    Terminal,
    read,
    rule_views,
    scenario_for,
    task_end,
)
from routing.sla_policy import PolicyBook

__all__ = [
    "LOOP_ORDER",
    "STAGE_ORDER",
    "ClockRow",
    "RuleTimeline",
    "StageRow",
    "Timeline",
    "apply_status",
    "check_loop_order",
    "mark_emitted",
    "open_entry",
    "reclock",
    "stage_times_after",
    "timeline",
]

_FIELD: Final = "stage"
# A complaint's 核实-办理-反馈 (seed 002) follows RECEIVED; the connection stages never mix with it.
LOOP_ORDER: Final[tuple[TaskStage, ...]] = ("RECEIVED", "VERIFIED", "HANDLED", "ANSWERED")
_RANK: Final = {stage: rank for rank, stage in enumerate((*LOOP_ORDER, *STAGE_ORDER[1:], "REJECTED"))}
_CONNECTION_ONLY: Final = frozenset(STAGE_ORDER[1:-1])


class StageRow(NamedTuple):
    """One stage of the 台账: when it started and ended, its working hours (None: unclocked), ``calendar`` basis.

    ``calendar`` is ``official``, ``provisional`` (some day counted has no State Council notice yet) or
    ``unclocked`` (the working time cannot be computed).
    """

    name: str
    started: datetime
    ended: datetime | None
    elapsed_working_hours: float | None
    calendar: str = "official"


class ClockRow(NamedTuple):
    """One clock of a rule (the rule's own, or a step): limit, due instant, used and remaining, state, exclusions.

    Hours are office hours for working units and natural hours for natural ones; ``None`` where there is no
    limit, the clock has not started, or it cannot be computed (``calendar`` = ``unclocked``).
    """

    name: str
    started: datetime | None
    ended: datetime | None
    limit_hours: float | None
    due: datetime | None
    used_hours: float | None
    remaining_hours: float | None
    state: RuleState
    excluded: tuple[ExcludedSpan, ...] = ()
    calendar: str = "official"


class RuleTimeline(NamedTuple):
    """A rule governing the task: its citation, start and stop, unit and counting, variant, and its clocks."""

    rule_id: str
    citation: str
    starts: str
    start_note: str | None
    stops: str
    unit: str
    counting: str
    variant: str | None
    rows: list[ClockRow]


class Timeline(NamedTuple):
    """What ``ubridge tasks show`` prints: the stages, each governing rule, and how the task ended."""

    stages: list[StageRow]
    rules: list[RuleTimeline]
    ended: str | None


def open_entry(task: UtilityTask, *, received_at: datetime) -> TaskLedgerEntry:
    """Start the ledger entry of a task the utility just received.

    The entry keeps the instants the rules start from (the application's filing, the permit's grant). The
    task's demand carries no pipe length, so the scenario starts as ``no_external_works`` until an
    EXTERNAL_WORKS report gives one. A CANCEL received first opens the entry already cancelled.

    Raises:
        ValueError: If ``received_at`` is naive.
        DataError: If ``received_at`` is before the task was created.
    """
    _aware(received_at, "received_at")
    _not_before_creation(task["created_at"], "RECEIVED", received_at)
    return {
        "task_id": task["task_id"],
        "utility_id": task["utility_id"],
        "application_id": task["application_id"],
        "kind": task["kind"],
        "service": task["service"],
        "region_code": task["region_code"],
        "created_at": task["created_at"],
        "scenario": scenario_for(None),
        "pipe_length_m": None,
        "stage": "RECEIVED",
        "closed": task["action"] == "CANCEL",
        "rejected_reason": None,
        "stages": [{"stage": "RECEIVED", "started_at": received_at, "ended_at": None, "elapsed_working_hours": None}],
        "emitted": [],
        "updated_at": received_at,
        "unclocked_reason": None,
        "application_filed_at": task.get("application_filed_at"),
        "application_kind": task.get("application_kind"),
        "permit_granted_at": task.get("permit_granted_at"),
        "cancelled_at": received_at if task["action"] == "CANCEL" else None,
        "user_category": task.get("user_category"),
    }


def apply_status(entry: TaskLedgerEntry, status: TaskStatus, calendar: WorkingCalendar) -> TaskLedgerEntry:
    """Return the entry with ``status`` applied; the argument is never changed.

    Raises:
        DataError: For an impossible report (see the module docstring), field ``stage``.
        ValueError: If ``status["occurred_at"]`` is naive.
    """
    stage, at = status["stage"], status["occurred_at"]
    _aware(at, "occurred_at")
    _check_identity(entry, status)
    if stage == "RECEIVED" and status["task"] is not None and status["task"]["action"] == "CANCEL":
        return _cancelled(entry, at, status["reported_at"])
    before = {span["stage"]: span["started_at"] for span in entry["stages"]}
    times = stage_times_after(entry["created_at"], before, status)
    if times == before:
        return entry
    spans, unclocked = _spans(times, calendar)
    changed: TaskLedgerEntry = {**entry, "stages": spans, "updated_at": status["reported_at"]}
    changed["unclocked_reason"] = unclocked
    changed["emitted"] = list(entry["emitted"])
    changed["stage"] = changed["stages"][-1]["stage"]
    changed["closed"] = "CLOSED" in times or "REJECTED" in times or entry["cancelled_at"] is not None
    if stage == "REJECTED":  # masked: the entry sits on a compacted changelog for as long as the task is kept
        reason = status["reason"]
        changed["rejected_reason"] = None if reason is None else mask_text(reason)
    if stage == "EXTERNAL_WORKS":
        changed["pipe_length_m"] = status["pipe_length_m"]
        changed["scenario"] = scenario_for(status["pipe_length_m"])
    return changed


def stage_times_after(
    created_at: datetime, times: Mapping[TaskStage, datetime], status: TaskStatus
) -> dict[TaskStage, datetime]:
    """Each stage's earliest time once ``status`` (a stage report, not a CANCEL) is applied to ``times``.

    The ledger's own rules, shared with the status callbacks so that a report the ledger would refuse is
    refused to the utility at once: :func:`apply_status` applies exactly what this accepts.

    Raises:
        DataError: For an impossible report (see the module docstring), field ``stage``.
    """
    stage, at = status["stage"], status["occurred_at"]
    _check_payload(status)
    _not_before_creation(created_at, stage, at)
    after = dict(times)
    if stage in after and after[stage] <= at:
        return after
    after[stage] = at
    _check_order(after)
    return after


def _cancelled(entry: TaskLedgerEntry, at: datetime, reported_at: datetime) -> TaskLedgerEntry:
    """The entry ended by a CANCEL the utility received at ``at`` (the earliest one counts)."""
    if entry["cancelled_at"] is not None and entry["cancelled_at"] <= at:
        return entry
    return {**entry, "cancelled_at": at, "closed": True, "updated_at": reported_at, "emitted": list(entry["emitted"])}


def reclock(entry: TaskLedgerEntry, calendar: WorkingCalendar) -> TaskLedgerEntry:
    """Return the entry with every span's working time computed again and ``unclocked_reason`` set accordingly."""
    spans, unclocked = _spans({span["stage"]: span["started_at"] for span in entry["stages"]}, calendar)
    return {**entry, "stages": spans, "emitted": list(entry["emitted"]), "unclocked_reason": unclocked}


def mark_emitted(entry: TaskLedgerEntry, events: Sequence[SlaEvent], now: datetime) -> TaskLedgerEntry:
    """Return the entry with the events' ids recorded as emitted (each once) and ``updated_at = now``.

    Raises:
        ValueError: If an event belongs to another task.
    """
    emitted = list(entry["emitted"])
    for event in events:
        if event["task_id"] != entry["task_id"]:
            msg = f"event {event['event_id']} is for task {event['task_id']}, not {entry['task_id']}"
            raise ValueError(msg)
        if event["event_id"] not in emitted:
            emitted.append(event["event_id"])
    return {**entry, "stages": list(entry["stages"]), "emitted": emitted, "updated_at": now}


def timeline(entry: TaskLedgerEntry, book: PolicyBook, calendar: WorkingCalendar, now: datetime) -> Timeline:
    """Return the task's stages in time order, then per governing rule its own clock and one per step.

    A clock still running when the task was rejected or cancelled is read then: ``breached`` if it was, else
    ``rejected`` or ``cancelled``. CLOSED counts as reaching every stop. A clock without a limit reads ``open``
    or ``done``.

    Raises:
        ValueError: If ``now`` is naive.
    """
    _aware(now, "now")
    end = task_end(entry)
    stages = [_stage_row(span, calendar, now) for span in entry["stages"]]
    views = rule_views(entry, book, calendar)
    rules = [_rule_timeline(view, calendar, now, end, book.warning_fraction) for view in views]
    closed = next((span["started_at"] for span in entry["stages"] if span["stage"] == "CLOSED"), None)
    ended = f"{end[1]} at {end[0].isoformat()}" if end is not None else None
    if ended is None and closed is not None:
        ended = f"CLOSED at {closed.isoformat()}"
    return Timeline(stages, rules, ended)


def _rule_timeline(
    view: RuleView, calendar: WorkingCalendar, now: datetime, end: tuple[datetime, Terminal] | None, fraction: float
) -> RuleTimeline:
    rule = view.rule
    rows = [_clock_row(clock, calendar, now, end, fraction) for clock in view.clocks]
    counting = (
        ("start day counts" if rule.counting.start_day_counts else "from the next day") + ": " + (rule.counting.reading)
    )
    variant = view.variant.name if view.variant is not None else None
    return RuleTimeline(rule.id, view.citation, rule.starts, view.note, rule.stops, rule.unit, counting, variant, rows)


def _clock_row(
    clock: RuleClock, calendar: WorkingCalendar, now: datetime, end: tuple[datetime, Terminal] | None, fraction: float
) -> ClockRow:
    if clock.started_at is None:
        return ClockRow(clock.name, None, None, clock.limit_hours, None, None, None, "not_started", clock.excluded)
    try:
        reading = read(clock, calendar, now, end=end, fraction=fraction)
        due = None if clock.limit_hours is None else clock.instant(calendar, clock.limit_hours, reading.horizon)
    except CalendarError:
        return ClockRow(
            clock.name, clock.started_at, clock.ended_at, clock.limit_hours, None, None, None, "open",
            clock.excluded, "unclocked",
        )  # fmt: skip
    used = reading.elapsed.total_seconds() / 3600
    remaining = None if clock.limit_hours is None else clock.limit_hours - used
    basis = _basis(calendar, clock.started_at, max(reading.horizon, due or reading.horizon))
    # Only the exclusions that fell within this clock's own interval took time out of it.
    excluded = tuple(
        span for span in clock.excluded if span.start < reading.horizon and (span.end or now) > clock.started_at
    )
    return ClockRow(
        clock.name, clock.started_at, clock.ended_at, clock.limit_hours, due, used, remaining, reading.state,
        excluded, basis,
    )  # fmt: skip


def _stage_row(span: StageSpan, calendar: WorkingCalendar, now: datetime) -> StageRow:
    started, ended = span["started_at"], span["ended_at"]
    if span["stage"] in ("CLOSED", "REJECTED"):
        return StageRow(span["stage"], started, started, 0.0)
    horizon = now if ended is None else ended
    try:
        elapsed = calendar.working_hours_between(started, horizon)
    except CalendarError:
        return StageRow(span["stage"], started, ended, None, "unclocked")
    return StageRow(span["stage"], started, ended, elapsed, _basis(calendar, started, horizon))


def _basis(calendar: WorkingCalendar, start: datetime, end: datetime) -> str:
    return "provisional" if calendar.provisional_between(start, max(start, end)) else "official"


def _spans(times: dict[TaskStage, datetime], calendar: WorkingCalendar) -> tuple[list[StageSpan], str | None]:
    # Stages by time; a tie goes by STAGE_ORDER, REJECTED last, so the terminal stage ends the timeline.
    ordered = sorted(times.items(), key=lambda item: (item[1], _RANK[item[0]]))
    spans: list[StageSpan] = []
    unclocked: str | None = None
    for i, (stage, started) in enumerate(ordered):
        ended = ordered[i + 1][1] if i + 1 < len(ordered) else None
        elapsed = None
        if ended is not None:
            try:
                elapsed = calendar.working_hours_between(started, ended)
            except CalendarError as exc:
                unclocked = str(exc)
        spans.append({"stage": stage, "started_at": started, "ended_at": ended, "elapsed_working_hours": elapsed})
    return spans, unclocked


def _check_identity(entry: TaskLedgerEntry, status: TaskStatus) -> None:
    pairs = (
        ("task_id", status["task_id"], entry["task_id"]),
        ("utility_id", status["utility_id"], entry["utility_id"]),
    )
    for key, reported, expected in pairs:
        if reported != expected:
            msg = f"a {status['stage']} report for {key} {reported!r} cannot apply to the entry of {expected!r}"
            raise DataError(_FIELD, msg)


def _check_payload(status: TaskStatus) -> None:
    stage = status["stage"]
    if stage == "REJECTED" and not (status["reason"] or "").strip():
        raise DataError(_FIELD, "REJECTED without a reason; a rejection must say why")
    length = status["pipe_length_m"]
    if stage == "EXTERNAL_WORKS" and (length is None or not length > 0):
        raise DataError(_FIELD, f"EXTERNAL_WORKS needs the external pipe length in metres (> 0), got {length!r}")


def check_loop_order(times: Mapping[TaskStage, datetime]) -> None:
    """Refuse a complaint's stages out of the loop's order, or mixed with a connection's stages.

    Raises:
        DataError: Field ``stage``, naming the two stages at odds.
    """
    loop = [stage for stage in LOOP_ORDER[1:] if stage in times]
    mixed = sorted(_CONNECTION_ONLY & times.keys())
    if loop and mixed:
        message = f"{loop[0]} is a complaint's stage and {mixed[0]} a connection's: one task cannot report both"
        raise DataError(_FIELD, message)
    for earlier, later in itertools.pairwise(loop):
        if times[later] < times[earlier]:
            message = f"{later} at {times[later].isoformat()} precedes {earlier} at {times[earlier].isoformat()}"
            raise DataError(_FIELD, message)


def _check_order(times: dict[TaskStage, datetime]) -> None:
    check_loop_order(times)
    if "CLOSED" in times and "REJECTED" in times:
        raise DataError(_FIELD, "a task is either CLOSED or REJECTED, and this one was reported as both")
    terminal = next((stage for stage in ("CLOSED", "REJECTED") if stage in times), None)
    if terminal is None:
        return
    end = times[terminal]
    connected = times.get("CONNECTED")
    if terminal == "CLOSED" and connected is not None and connected > end:
        raise DataError(_FIELD, f"CLOSED at {end.isoformat()} precedes CONNECTED at {connected.isoformat()}")
    for stage, at in times.items():
        if at > end:
            raise DataError(
                _FIELD, f"{stage} at {at.isoformat()} is after the task was {terminal} at {end.isoformat()}"
            )


def _not_before_creation(created: datetime, stage: str, at: datetime) -> None:
    if at < created:
        raise DataError(_FIELD, f"{stage} at {at.isoformat()} is before the task was created at {created.isoformat()}")


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None:
        msg = f"{name} must be timezone-aware, got naive {moment.isoformat()}"
        raise ValueError(msg)
