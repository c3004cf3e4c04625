"""The 12345 complaint loop per work order, and the 诉求"清零"台账 (seed 002), on plain data.

002 sets the loop "主动收集/接收诉求-情况核实-分类办理-限期反馈-结果回访-跟踪督办" and the ledger: "对于合理诉求未解决、
用户不满意的工单，明确'清零'时限，纳入诉求'清零'台账，进行销号管理". One :class:`ComplaintLedgerEntry` per order:

* :func:`open_order` — the COMPLAINT task reached its utility (the sink's RECEIVED, carrying the task): the
  verification deadline and the answer deadline (the platform's own, else the policy's default) are set;
* :func:`apply_stage` — the utility reports 核实 (VERIFIED), 办理 (HANDLED), 反馈 (ANSWERED); each keeps its earliest
  time, and the three must follow each other in time (:func:`routing.ledger.check_loop_order`);
* :func:`apply_visit` — the platform's return visit (回访): an UNSATISFIED answer puts the order on the 清零 ledger
  with its clearing deadline; a satisfied one (which answers count: the satisfaction policy) closes the order,
  which for an order on the ledger is its striking off (销号); UNREACHABLE changes nothing;
* :func:`close_by_department` — the competent department strikes an order off with a reason;
* :func:`check_deadlines` — at an instant, the deadlines passed with their step undone: each raises one
  :class:`Escalation` (督办), whose id is deterministic so that it is raised once per breach; an answer overdue
  also puts the order on the 清零 ledger.

Limits are working time of the ledger's calendar (:mod:`routing.calendar`), from ``deploy/config/complaints.yaml``.

Example:
    >>> entry = open_order(task, received_at=t0, policy=policy, calendar=calendar)
    >>> entry = apply_stage(entry, "ANSWERED", t1)
    >>> entry = apply_visit(entry, visit_id="v1", result="UNSATISFIED", visited_at=t2, satisfied=sat.satisfied,
    ...                     policy=policy, calendar=calendar)
    >>> entry["on_clearing_ledger"], entry["clearing_due"]
    (True, datetime(...))
"""

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.ledger import LOOP_ORDER, check_loop_order
from routing.privacy import mask_text
from routing.records import (
    ClearingReason,
    ComplaintLedgerEntry,
    ComplaintVisit,
    ComplaintVisitResult,
    Escalation,
    EscalationReason,
    TaskStage,
    UtilityTask,
)
from routing.satisfaction import SatisfactionPolicy, Visit, satisfaction
from routing.supervision import ComplaintFigures, Level, city_code
from routing.yaml_files import read_model

OrderState = Literal["open", "clearing", "cleared", "closed"]
LOOP_STAGES: Final[tuple[TaskStage, ...]] = LOOP_ORDER[1:]
_STAGE_FIELD: Final = {"VERIFIED": "verified_at", "HANDLED": "handled_at", "ANSWERED": "answered_at"}
_ID_LENGTH: Final = 32
Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """The step of the document a limit clocks: the document and its words."""

    document: Text
    quote: Text


class Limit(_Strict):
    """A limit in working days, where it comes from and why this number."""

    working_days: Annotated[float, Field(gt=0, le=365)]
    basis: Literal["seed", "default"]
    step: Step
    why: Text


class EscalationRule(_Strict):
    """How long after a deadline passed with its step undone the 督办 is raised."""

    after_working_hours: Annotated[float, Field(ge=0, le=1000)]
    basis: Literal["seed", "default"]
    step: Step
    why: Text


class ComplaintPolicy(_Strict):
    """The loop's limits (``deploy/config/complaints.yaml``)."""

    verify: Limit
    answer: Limit
    clearing: Limit
    escalation: EscalationRule

    def source(self, reason: EscalationReason) -> str:
        """The limit an escalation of ``reason`` enforces, for the record: its number, basis and document."""
        if reason == "ANSWER_OVERDUE":
            return f"answer: platform deadline, else {_limit_text(self.answer)}"
        limit = self.verify if reason == "VERIFY_OVERDUE" else self.clearing
        name = "verify" if reason == "VERIFY_OVERDUE" else "clearing"
        return f"{name}: {_limit_text(limit)}"


def _limit_text(limit: Limit) -> str:
    return f"{limit.working_days:g} working days ({limit.basis}; {limit.step.document}: {limit.step.quote})"


def load_complaint_policy(path: Path) -> ComplaintPolicy:
    """The policy file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, ComplaintPolicy)


def after_working_days(calendar: WorkingCalendar, start: datetime, days: float) -> datetime:
    """The instant ``days`` working days (of the calendar's office hours) after ``start``."""
    return calendar.add_working_hours(start, days * calendar.hours_per_day)


def open_order(
    task: UtilityTask, *, received_at: datetime, policy: ComplaintPolicy, calendar: WorkingCalendar
) -> ComplaintLedgerEntry:
    """The entry of a COMPLAINT task its utility has just received.

    The dispatch instant is the task's ``occurred_at`` (the platform's 派单时间 the task was made from).

    Raises:
        DataError: The task is not a complaint or carries no work-order number.
        CalendarError: The calendar does not cover the deadlines.
    """
    if task["kind"] != "COMPLAINT":
        raise DataError("kind", f"a {task['kind']} task is not a complaint; only COMPLAINT tasks enter the loop")
    order_id = task["work_order_id"]
    if not order_id:
        raise DataError("work_order_id", "a COMPLAINT task without the platform's work-order number")
    dispatched = task["occurred_at"]
    answer_due = task["answer_due"]
    return {
        "order_id": order_id,
        "task_id": task["task_id"],
        "utility_id": task["utility_id"],
        "region_code": task["region_code"],
        "service": task["service"],
        "dispatched_at": dispatched,
        "received_at": received_at,
        "verify_due": after_working_days(calendar, dispatched, policy.verify.working_days),
        "answer_due": answer_due or after_working_days(calendar, dispatched, policy.answer.working_days),
        "answer_due_from": "platform" if answer_due is not None else "policy",
        "verified_at": None,
        "handled_at": None,
        "answered_at": None,
        "answer_sent_for": None,
        "visits": [],
        "on_clearing_ledger": False,
        "clearing_reason": None,
        "clearing_since": None,
        "clearing_due": None,
        "closed_at": None,
        "closed_how": None,
        "close_reason": None,
        "closed_by": None,
        "escalations": [],
        "updated_at": received_at,
    }


def apply_stage(entry: ComplaintLedgerEntry, stage: TaskStage, at: datetime) -> ComplaintLedgerEntry:
    """The entry with a utility's report of 核实, 办理 or 反馈 at ``at``; the earliest report of a stage counts.

    RECEIVED again changes nothing; CLOSED (the utility closing its task) leaves the loop to the visits.

    Raises:
        DataError: Field ``stage``: a connection's stage, or the loop's stages out of order in time, or a
            report dated before the order was dispatched.
    """
    if stage in ("RECEIVED", "CLOSED"):
        return entry
    if stage not in _STAGE_FIELD:
        raise DataError("stage", f"{stage} is not a stage of a complaint's loop ({', '.join(LOOP_STAGES)})")
    if at < entry["dispatched_at"]:
        message = (
            f"{stage} at {at.isoformat()} is before the order was dispatched at {entry['dispatched_at'].isoformat()}"
        )
        raise DataError("stage", message)
    field = _STAGE_FIELD[stage]
    current = entry[field]  # type: ignore[literal-required]
    if current is not None and current <= at:
        return entry
    times = stage_times(entry)
    times[stage] = at
    check_loop_order(times)
    return {**entry, field: at, "updated_at": max(entry["updated_at"], at)}  # type: ignore[misc]


def stage_times(entry: ComplaintLedgerEntry) -> dict[TaskStage, datetime]:
    """The loop's stages reached so far, RECEIVED included, with their earliest times."""
    times: dict[TaskStage, datetime] = {"RECEIVED": entry["received_at"]}
    for stage, field in _STAGE_FIELD.items():
        at = entry[field]  # type: ignore[literal-required]
        if at is not None:
            times[stage] = at  # type: ignore[index]
    return times


def needs_sending(entry: ComplaintLedgerEntry, answered_at: datetime) -> bool:
    """Whether an answer reported at ``answered_at`` has yet to go to the platform (a re-answer after a visit does)."""
    sent = entry["answer_sent_for"]
    return sent is None or answered_at > sent


def answer_sent(entry: ComplaintLedgerEntry, answered_at: datetime) -> ComplaintLedgerEntry:
    """The entry once the platform acknowledged the answer reported at ``answered_at``."""
    if not needs_sending(entry, answered_at):
        return entry
    return {**entry, "answer_sent_for": answered_at}


def apply_visit(
    entry: ComplaintLedgerEntry,
    *,
    visit_id: str,
    result: ComplaintVisitResult,
    visited_at: datetime,
    satisfied: Iterable[str],
    policy: ComplaintPolicy,
    calendar: WorkingCalendar,
) -> ComplaintLedgerEntry:
    """The entry with a return visit recorded (once per visit id) and its consequence for the 清零 ledger.

    A satisfied answer closes an open order (销号 if it is on the ledger); UNSATISFIED puts an open order on the
    ledger, whose clearing deadline runs from the first time it went on; a closed order only records the visit.

    Raises:
        DataError: Field ``visited_at``: a visit dated before the order was dispatched.
    """
    if any(visit["visit_id"] == visit_id for visit in entry["visits"]):
        return entry
    if visited_at < entry["dispatched_at"]:
        message = f"visit at {visited_at.isoformat()} is before the order was dispatched"
        raise DataError("visited_at", f"{message} at {entry['dispatched_at'].isoformat()}")
    visit: ComplaintVisit = {"visit_id": visit_id, "result": result, "visited_at": visited_at}
    visits = sorted([*entry["visits"], visit], key=lambda v: (v["visited_at"], v["visit_id"]))
    changed: ComplaintLedgerEntry = {**entry, "visits": visits, "updated_at": max(entry["updated_at"], visited_at)}
    if entry["closed_at"] is not None:
        return changed
    if result in set(satisfied):
        return {**changed, "closed_at": visited_at, "closed_how": "SATISFIED_VISIT"}
    if result == "UNSATISFIED":
        return put_on_ledger(changed, "UNSATISFIED", visited_at, policy, calendar)
    return changed


def put_on_ledger(
    entry: ComplaintLedgerEntry,
    reason: ClearingReason,
    since: datetime,
    policy: ComplaintPolicy,
    calendar: WorkingCalendar,
) -> ComplaintLedgerEntry:
    """The entry on the 清零 ledger from ``since``, due after the clearing limit; already on it: unchanged."""
    if entry["on_clearing_ledger"]:
        return entry
    due = after_working_days(calendar, since, policy.clearing.working_days)
    return {
        **entry,
        "on_clearing_ledger": True,
        "clearing_reason": reason,
        "clearing_since": since,
        "clearing_due": due,
    }


def close_by_department(
    entry: ComplaintLedgerEntry, *, reason: str, closed_by: str, closed_at: datetime
) -> ComplaintLedgerEntry:
    """The entry struck off by the competent department; an order already closed stays as it was closed.

    Raises:
        DataError: Field ``reason``: blank (a department's close must say why); field ``closed_at``: dated
            before the order was dispatched.
    """
    if not reason.strip():
        raise DataError("reason", "a department's close must give its reason")
    if entry["closed_at"] is not None:
        return entry
    if closed_at < entry["dispatched_at"]:
        raise DataError("closed_at", f"closed at {closed_at.isoformat()}, before the order was dispatched")
    return {
        **entry,
        "closed_at": closed_at,
        "closed_how": "DEPARTMENT_CLOSE",
        "close_reason": mask_text(reason.strip()),  # kept on a compacted topic for as long as the order
        "closed_by": closed_by,
        "updated_at": max(entry["updated_at"], closed_at),
    }


def deadlines(entry: ComplaintLedgerEntry) -> list[tuple[EscalationReason, datetime, datetime | None]]:
    """Each deadline of the order: its reason if missed, its instant, and when its step was done (None: not yet)."""
    loop_done = [entry["verified_at"], entry["handled_at"], entry["answered_at"]]
    verified = min((at for at in loop_done if at is not None), default=None)
    found: list[tuple[EscalationReason, datetime, datetime | None]] = [
        ("VERIFY_OVERDUE", entry["verify_due"], verified),
        ("ANSWER_OVERDUE", entry["answer_due"], entry["answered_at"]),
    ]
    if entry["clearing_due"] is not None:
        struck_off = entry["closed_at"] if entry["on_clearing_ledger"] else None
        found.append(("CLEARING_OVERDUE", entry["clearing_due"], struck_off))
    return found


def escalation_id(order_id: str, reason: EscalationReason, due: datetime) -> str:
    """Deterministic per order, reason and deadline: a replay or a second instance raises the same id."""
    # In UTC: the entry read back from Avro carries UTC instants, and the id must not change with that.
    digest = hashlib.sha256(f"{order_id}|{reason}|{due.astimezone(UTC).isoformat()}".encode()).hexdigest()
    return digest[:_ID_LENGTH]


def check_deadlines(
    entry: ComplaintLedgerEntry, policy: ComplaintPolicy, calendar: WorkingCalendar, now: datetime
) -> tuple[ComplaintLedgerEntry, list[Escalation]]:
    """The entry and the escalations (督办) newly raised at ``now``; each breach raises one, ever.

    A deadline is breached when its step was not done by the deadline plus the escalation delay and that instant
    has passed; a step done late is still a breach (the 督办 records it). An order closed before a deadline
    passed raises nothing for it. A missed answer deadline also puts the order on the 清零 ledger from then.

    Raises:
        CalendarError: The calendar does not cover the escalation delay.
    """
    raised: list[Escalation] = []
    escalated = list(entry["escalations"])
    for reason, due, done in deadlines(entry):
        late_at = calendar.add_working_hours(due, policy.escalation.after_working_hours)
        ended = entry["closed_at"]
        if now <= late_at or (done is not None and done <= late_at) or (ended is not None and ended <= late_at):
            continue
        if reason == "ANSWER_OVERDUE" and entry["closed_at"] is None:
            entry = put_on_ledger(entry, "ANSWER_OVERDUE", due, policy, calendar)
        ident = escalation_id(entry["order_id"], reason, due)
        if ident in escalated:
            continue
        escalated.append(ident)
        raised.append(
            {
                "escalation_id": ident,
                "order_id": entry["order_id"],
                "task_id": entry["task_id"],
                "utility_id": entry["utility_id"],
                "region_code": entry["region_code"],
                "service": entry["service"],
                "reason": reason,
                "due": due,
                "raised_at": now,
                "policy_source": policy.source(reason),
            }
        )
    if raised or escalated != entry["escalations"]:
        entry = {**entry, "escalations": escalated}
    return entry, raised


def next_check(entry: ComplaintLedgerEntry, policy: ComplaintPolicy, calendar: WorkingCalendar) -> datetime | None:
    """The first instant a deadline of the order can be breached, for scheduling; None when none is pending.

    Raises:
        CalendarError: The calendar does not cover the escalation delay.
    """
    if entry["closed_at"] is not None:
        return None
    pending = [
        calendar.add_working_hours(due, policy.escalation.after_working_hours)
        for reason, due, done in deadlines(entry)
        if done is None and escalation_id(entry["order_id"], reason, due) not in entry["escalations"]
    ]
    return min(pending, default=None)


def state_of(entry: ComplaintLedgerEntry) -> OrderState:
    """The order's state: open, clearing (on the 清零 ledger), cleared (struck off it) or closed (done)."""
    if entry["closed_at"] is None:
        return "clearing" if entry["on_clearing_ledger"] else "open"
    return "cleared" if entry["on_clearing_ledger"] else "closed"


def is_overdue(entry: ComplaintLedgerEntry, now: datetime) -> bool:
    """An open order past its answer deadline unanswered, or on the 清零 ledger past its clearing deadline."""
    if entry["closed_at"] is not None:
        return False
    if entry["answered_at"] is None and now > entry["answer_due"]:
        return True
    return entry["clearing_due"] is not None and now > entry["clearing_due"]


def visits_of(entries: Iterable[ComplaintLedgerEntry]) -> list[Visit]:
    """Every return visit of the entries, for :func:`routing.satisfaction.monthly_figures`."""
    return [
        Visit(entry["utility_id"], entry["region_code"], visit["visited_at"], visit["result"])
        for entry in entries
        for visit in entry["visits"]
    ]


def orders_by_state(entries: Sequence[ComplaintLedgerEntry]) -> dict[OrderState, int]:
    """How many orders are in each state."""
    counts: dict[OrderState, int] = {"open": 0, "clearing": 0, "cleared": 0, "closed": 0}
    for entry in entries:
        counts[state_of(entry)] += 1
    return counts


def complaint_figures(
    entries: Iterable[ComplaintLedgerEntry],
    policy: SatisfactionPolicy,
    *,
    now: datetime,
    within: tuple[datetime, datetime] | None = None,
) -> dict[tuple[Level, str], ComplaintFigures]:
    """Per group (total, city, district, utility): orders open and overdue at ``now``, cleared, and satisfaction.

    ``within`` (a month's bounds) limits the orders to those dispatched in it, and the visits counted to those
    made in it; without it every order and visit counts. ``cleared`` counts the orders struck off the 清零 ledger.
    """
    start, end = within if within is not None else (None, None)
    groups: dict[tuple[Level, str], list[ComplaintLedgerEntry]] = {}
    for entry in entries:
        if start is not None and end is not None and not start <= entry["dispatched_at"] < end:
            continue
        region = entry["region_code"]
        for key in (("total", ""), ("city", city_code(region)), ("district", region), ("utility", entry["utility_id"])):
            groups.setdefault(key, []).append(entry)
    figures: dict[tuple[Level, str], ComplaintFigures] = {}
    for key, members in groups.items():
        results = [
            visit["result"]
            for entry in members
            for visit in entry["visits"]
            if start is None or end is None or start <= visit["visited_at"] < end
        ]
        rates = satisfaction(results, policy)
        states = orders_by_state(members)
        figures[key] = ComplaintFigures(
            open=states["open"] + states["clearing"],
            overdue=sum(1 for entry in members if is_overdue(entry, now)),
            cleared=states["cleared"],
            satisfaction=rates.rate,
            target=policy.target.rate,
            weighted_score=rates.score,
        )
    return figures
