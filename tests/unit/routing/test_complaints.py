"""The 12345 complaint loop and the 清零 ledger (issue 16 item 2), on plain data: stages, visits, closes, 督办."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.calendar import SHANGHAI, load_calendar
from routing.complaints import (
    answer_sent,
    apply_stage,
    apply_visit,
    check_deadlines,
    close_by_department,
    complaint_figures,
    escalation_id,
    is_overdue,
    load_complaint_policy,
    needs_sending,
    next_check,
    open_order,
    state_of,
    visits_of,
)
from routing.errors import DataError
from routing.ledger import apply_status, open_entry
from routing.records import ComplaintLedgerEntry, ComplaintVisitResult, TaskStage, TaskStatus, UtilityTask
from routing.satisfaction import load_satisfaction_policy
from schemas import Codec
from tests.support import make_task

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CAL = load_calendar(CONFIG / "calendar.yaml")
POLICY = load_complaint_policy(CONFIG / "complaints.yaml")
SATISFACTION = load_satisfaction_policy(CONFIG / "satisfaction.yaml")
SATISFIED = SATISFACTION.satisfied
DISPATCHED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday
ANSWER_DUE = datetime(2026, 3, 13, 17, tzinfo=SHANGHAI)  # the platform's deadline: Friday 17:00
ANSWERED_AT = datetime(2026, 3, 11, 10, tzinfo=SHANGHAI)


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def complaint(*, answer_due: datetime | None = None, utility: str = "liaocheng-water", n: int = 1) -> UtilityTask:
    """A COMPLAINT task for work order GD-<n>, dispatched at DISPATCHED."""
    task: UtilityTask = {
        **make_task(utility, n),
        "kind": "COMPLAINT",
        "occurred_at": DISPATCHED,
        "created_at": DISPATCHED,
        "work_order_id": f"GD-{n}",
        "answer_due": answer_due,
        "complaint": "水压低",
        "region_code": "371502",
    }
    return task


def opened(*, answer_due: datetime | None = ANSWER_DUE, **kwargs: object) -> ComplaintLedgerEntry:
    return open_order(
        complaint(answer_due=answer_due, **kwargs),  # type: ignore[arg-type]
        received_at=DISPATCHED + timedelta(minutes=5),
        policy=POLICY,
        calendar=CAL,
    )


def visit(
    entry: ComplaintLedgerEntry, result: ComplaintVisitResult, at: datetime, visit_id: str = "v1"
) -> ComplaintLedgerEntry:
    return apply_visit(
        entry, visit_id=visit_id, result=result, visited_at=at, satisfied=SATISFIED, policy=POLICY, calendar=CAL
    )


def answered(at: datetime = ANSWERED_AT) -> ComplaintLedgerEntry:
    entry = apply_stage(opened(), "VERIFIED", sh(3, 9, 14))
    entry = apply_stage(entry, "HANDLED", sh(3, 10, 10))
    return apply_stage(entry, "ANSWERED", at)


# --- policy -------------------------------------------------------------------------------------------


def test_the_shipped_policy_cites_002s_loop_for_every_limit() -> None:
    """Every limit is labelled default (002 gives no number) and quotes the step of 002 it clocks."""
    limits = [POLICY.verify, POLICY.answer, POLICY.clearing]
    assert {limit.basis for limit in limits} | {POLICY.escalation.basis} == {"default"}
    assert all("002" in limit.step.document and limit.why for limit in limits)
    assert "督办" in POLICY.escalation.step.quote
    assert "清零" in POLICY.clearing.step.quote
    assert (POLICY.verify.working_days, POLICY.answer.working_days, POLICY.clearing.working_days) == (1, 5, 10)


def test_a_bad_limit_is_refused_naming_its_key(tmp_path: Path) -> None:
    """A zero clearing limit fails validation, and the message names the file and clearing.working_days."""
    text = (CONFIG / "complaints.yaml").read_text(encoding="utf-8").replace("working_days: 10", "working_days: 0")
    bad = tmp_path / "complaints.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"complaints\.yaml.*clearing\.working_days"):
        load_complaint_policy(bad)


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """A misspelt section is an error, not a silently ignored limit."""
    bad = tmp_path / "complaints.yaml"
    bad.write_text((CONFIG / "complaints.yaml").read_text(encoding="utf-8") + "escalate: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="escalate"):
        load_complaint_policy(bad)


# --- opening ------------------------------------------------------------------------------------------


def test_an_order_takes_the_platforms_answer_deadline() -> None:
    """The platform's 限期反馈 is the answer deadline; verification is due one working day after dispatch."""
    entry = opened(answer_due=sh(3, 12, 17))
    assert (entry["order_id"], entry["answer_due"], entry["answer_due_from"], entry["verify_due"]) == (
        "GD-1",
        sh(3, 12, 17),
        "platform",
        sh(3, 10, 9),
    )
    assert state_of(entry) == "open"


def test_an_order_without_a_deadline_gets_the_policys_five_working_days() -> None:
    """Dispatched Monday 09:00 with no deadline: the answer is due the next Monday 09:00."""
    entry = opened(answer_due=None)
    assert (entry["answer_due"], entry["answer_due_from"]) == (sh(3, 16, 9), "policy")


def test_the_deadlines_skip_the_weekend_and_holidays() -> None:
    """Dispatched Friday 2026-04-03 16:00 (Qingming 04-04..06 off): verification is due Tuesday 16:00."""
    task = complaint()
    task["occurred_at"] = sh(4, 3, 16)
    entry = open_order(task, received_at=sh(4, 3, 16), policy=POLICY, calendar=CAL)
    assert entry["verify_due"] == sh(4, 7, 16)


def test_only_complaint_tasks_with_an_order_number_enter_the_loop() -> None:
    """A connection task, and a complaint without its work-order number, are refused with the field named."""
    with pytest.raises(DataError, match="not a complaint") as kind:
        open_order(make_task("liaocheng-water", 1), received_at=DISPATCHED, policy=POLICY, calendar=CAL)
    task = complaint()
    task["work_order_id"] = None
    with pytest.raises(DataError, match="work-order number") as order:
        open_order(task, received_at=DISPATCHED, policy=POLICY, calendar=CAL)
    assert (kind.value.field, order.value.field) == ("kind", "work_order_id")


# --- stages ---------------------------------------------------------------------------------------------


def test_the_three_stages_are_recorded_and_the_earliest_report_counts() -> None:
    """核实, 办理, 反馈 each keep their earliest time; a repeat later changes nothing."""
    entry = answered()
    again = apply_stage(entry, "VERIFIED", sh(3, 10, 16))
    assert again is entry
    assert (entry["verified_at"], entry["handled_at"], entry["answered_at"]) == (
        sh(3, 9, 14),
        sh(3, 10, 10),
        sh(3, 11, 10),
    )


def test_stages_reported_out_of_order_in_time_are_refused() -> None:
    """ANSWERED dated before HANDLED is nonsense: refused, naming both stages."""
    entry = apply_stage(opened(), "HANDLED", sh(3, 10, 10))
    with pytest.raises(DataError, match=r"ANSWERED at .* precedes HANDLED") as error:
        apply_stage(entry, "ANSWERED", sh(3, 10, 9))
    assert error.value.field == "stage"


def test_a_late_report_of_an_earlier_stage_is_slotted_in() -> None:
    """VERIFIED reported after HANDLED, but dated before it, is accepted."""
    entry = apply_stage(apply_stage(opened(), "HANDLED", sh(3, 10, 10)), "VERIFIED", sh(3, 9, 15))
    assert (entry["verified_at"], entry["handled_at"]) == (sh(3, 9, 15), sh(3, 10, 10))


@pytest.mark.parametrize("stage", ["CONTACTED", "SURVEYED", "CONNECTED", "REJECTED"])
def test_a_connections_stage_is_not_a_complaints(stage: TaskStage) -> None:
    """Connection stages (and REJECTED) have no place in the loop."""
    with pytest.raises(DataError, match="not a stage of a complaint"):
        apply_stage(opened(), stage, sh(3, 10, 10))


def test_a_stage_before_the_dispatch_is_refused() -> None:
    """A report dated before the platform dispatched the order cannot be."""
    with pytest.raises(DataError, match="before the order was dispatched"):
        apply_stage(opened(), "VERIFIED", DISPATCHED - timedelta(hours=1))


def test_received_and_closed_leave_the_loop_unchanged() -> None:
    """The sink's RECEIVED again, or the utility closing its task, do not move the order."""
    entry = opened()
    assert apply_stage(entry, "RECEIVED", sh(3, 10)) is entry
    assert apply_stage(entry, "CLOSED", sh(3, 10)) is entry


def _status(stage: TaskStage, at: datetime, task: UtilityTask | None = None) -> TaskStatus:
    return {
        "task_id": complaint()["task_id"],
        "utility_id": "liaocheng-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": task,
    }


def test_the_task_ledger_takes_a_complaints_stages_in_order() -> None:
    """The SLA ledger records VERIFIED, HANDLED, ANSWERED of a COMPLAINT task as its stages."""
    entry = open_entry(complaint(), received_at=DISPATCHED)
    for stage, at in (("VERIFIED", sh(3, 9, 14)), ("HANDLED", sh(3, 10, 10)), ("ANSWERED", sh(3, 11, 10))):
        entry = apply_status(entry, _status(stage, at), CAL)  # type: ignore[arg-type]
    assert [span["stage"] for span in entry["stages"]] == ["RECEIVED", "VERIFIED", "HANDLED", "ANSWERED"]


def test_the_task_ledger_refuses_a_complaint_mixed_with_a_connection() -> None:
    """CONTACTED on a task that reported VERIFIED is refused (the callbacks answer 409 with this reason)."""
    entry = apply_status(open_entry(complaint(), received_at=DISPATCHED), _status("VERIFIED", sh(3, 9, 14)), CAL)
    with pytest.raises(DataError, match="complaint's stage and CONTACTED a connection's"):
        apply_status(entry, _status("CONTACTED", sh(3, 9, 15)), CAL)


def test_the_task_ledger_refuses_an_answer_before_the_verification() -> None:
    """ANSWERED dated before VERIFIED is refused by the ledger too."""
    entry = apply_status(open_entry(complaint(), received_at=DISPATCHED), _status("VERIFIED", sh(3, 10, 14)), CAL)
    with pytest.raises(DataError, match=r"ANSWERED at .* precedes VERIFIED"):
        apply_status(entry, _status("ANSWERED", sh(3, 10, 9)), CAL)


# --- the answer to the platform --------------------------------------------------------------------------


def test_an_answer_is_sent_once_and_a_later_re_answer_again() -> None:
    """After sending the answer of 03-11 10:00, that answer is not due again; a later one is."""
    entry = answered()
    assert needs_sending(entry, sh(3, 11, 10))
    sent = answer_sent(entry, sh(3, 11, 10))
    assert (needs_sending(sent, sh(3, 11, 10)), needs_sending(sent, sh(3, 20, 10))) == (False, True)
    assert answer_sent(sent, sh(3, 11, 9)) is sent


# --- return visits and the 清零 ledger --------------------------------------------------------------------


@pytest.mark.parametrize("result", ["SATISFIED", "BASICALLY_SATISFIED"])
def test_a_satisfied_visit_closes_the_order(result: ComplaintVisitResult) -> None:
    """满意 and 基本满意 close the order; it never went on the 清零 ledger."""
    entry = visit(answered(), result, sh(3, 12, 10))
    assert (state_of(entry), entry["closed_how"], entry["closed_at"], entry["on_clearing_ledger"]) == (
        "closed",
        "SATISFIED_VISIT",
        sh(3, 12, 10),
        False,
    )


def test_an_unsatisfied_visit_puts_the_order_on_the_clearing_ledger_with_its_deadline() -> None:
    """不满意 on Thursday 03-12 10:00: on the ledger, to be cleared within 10 working days (03-26 10:00)."""
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    assert (state_of(entry), entry["clearing_reason"], entry["clearing_since"], entry["clearing_due"]) == (
        "clearing",
        "UNSATISFIED",
        sh(3, 12, 10),
        sh(3, 26, 10),
    )


def test_a_satisfied_revisit_strikes_the_order_off() -> None:
    """Unsatisfied, then a second visit basically satisfied: 销号, the ledger keeps that it was on it."""
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    entry = visit(apply_stage(entry, "ANSWERED", sh(3, 18, 10)), "BASICALLY_SATISFIED", sh(3, 19, 10), "v2")
    assert (state_of(entry), entry["closed_how"], entry["closed_at"]) == ("cleared", "SATISFIED_VISIT", sh(3, 19, 10))
    assert [v["result"] for v in entry["visits"]] == ["UNSATISFIED", "BASICALLY_SATISFIED"]


def test_a_second_unsatisfied_visit_keeps_the_first_clearing_deadline() -> None:
    """The clearing deadline runs from the first time the order went on the ledger."""
    first = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    second = visit(first, "UNSATISFIED", sh(3, 20, 10), "v2")
    assert (second["clearing_due"], len(second["visits"])) == (first["clearing_due"], 2)


def test_an_unreachable_user_changes_nothing_but_is_recorded() -> None:
    """未接通 is no answer: the order stays open, the visit is kept for the figures."""
    entry = visit(answered(), "UNREACHABLE", sh(3, 12, 10))
    assert (state_of(entry), [v["result"] for v in entry["visits"]]) == ("open", ["UNREACHABLE"])


def test_the_same_visit_twice_is_recorded_once() -> None:
    """A replayed visit (same id) leaves the entry as it was."""
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    assert visit(entry, "SATISFIED", sh(3, 13, 10)) is entry


def test_a_visit_after_the_close_is_recorded_without_reopening() -> None:
    """An unsatisfied visit after a satisfied one is kept but the order stays closed."""
    entry = visit(visit(answered(), "SATISFIED", sh(3, 12, 10)), "UNSATISFIED", sh(3, 13, 10), "v2")
    assert (state_of(entry), len(entry["visits"])) == ("closed", 2)


def test_a_visit_before_the_dispatch_is_refused() -> None:
    """A visit dated before the order existed is a data error on visited_at."""
    with pytest.raises(DataError, match="before the order was dispatched") as error:
        visit(opened(), "SATISFIED", DISPATCHED - timedelta(days=1))
    assert error.value.field == "visited_at"


# --- the department's close ------------------------------------------------------------------------------


def test_the_department_strikes_an_order_off_with_its_reason() -> None:
    """销号 by the department: closed with how, reason and who."""
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    closed = close_by_department(
        entry, reason=" 用户诉求超出供水范围，已解释 ", closed_by="聊城市城管局", closed_at=sh(3, 13)
    )
    assert (state_of(closed), closed["closed_how"], closed["close_reason"], closed["closed_by"]) == (
        "cleared",
        "DEPARTMENT_CLOSE",
        "用户诉求超出供水范围，已解释",
        "聊城市城管局",
    )


def test_a_close_without_a_reason_is_refused() -> None:
    """A blank reason is an error on the reason field."""
    with pytest.raises(DataError, match="reason") as error:
        close_by_department(opened(), reason="  ", closed_by="dept", closed_at=sh(3, 13))
    assert error.value.field == "reason"


def test_closing_a_closed_order_changes_nothing() -> None:
    """An order already closed by a satisfied visit stays closed as it was."""
    entry = visit(answered(), "SATISFIED", sh(3, 12, 10))
    assert close_by_department(entry, reason="重复", closed_by="dept", closed_at=sh(3, 13)) is entry


# --- deadlines and escalations (督办) ----------------------------------------------------------------------


def test_nothing_is_raised_before_a_deadline() -> None:
    """An order within every limit raises nothing and is not overdue."""
    entry, raised = check_deadlines(opened(), POLICY, CAL, sh(3, 10, 8))
    assert (raised, is_overdue(entry, sh(3, 10, 8))) == ([], False)


def test_a_missed_verification_raises_one_escalation_however_often_checked() -> None:
    """Not verified by Tuesday 09:00: one VERIFY_OVERDUE at the first check after, none at the next."""
    entry, first = check_deadlines(opened(), POLICY, CAL, sh(3, 10, 9, 1))
    entry, second = check_deadlines(entry, POLICY, CAL, sh(3, 10, 11))
    assert ([e["reason"] for e in first], second) == (["VERIFY_OVERDUE"], [])
    assert (first[0]["due"], first[0]["escalation_id"], entry["escalations"]) == (
        sh(3, 10, 9),
        escalation_id("GD-1", "VERIFY_OVERDUE", sh(3, 10, 9)),
        [first[0]["escalation_id"]],
    )
    assert "verify: 1 working days (default" in first[0]["policy_source"]


def test_a_stage_done_in_time_raises_nothing() -> None:
    """Verified, handled and answered before their deadlines: no escalation at any later check."""
    entry, raised = check_deadlines(answered(), POLICY, CAL, sh(4, 30))
    assert (raised, is_overdue(entry, sh(4, 30))) == ([], False)


def test_a_stage_done_late_is_still_a_breach() -> None:
    """Verified only on Wednesday, after Tuesday's deadline: the check after raises VERIFY_OVERDUE."""
    entry = apply_stage(opened(), "VERIFIED", sh(3, 11, 10))
    _, raised = check_deadlines(entry, POLICY, CAL, sh(3, 11, 11))
    assert [e["reason"] for e in raised] == ["VERIFY_OVERDUE"]


def test_a_missed_answer_escalates_and_goes_on_the_clearing_ledger() -> None:
    """Verified but not answered by Friday 17:00: ANSWER_OVERDUE, and on the 清零 ledger from the deadline."""
    entry = apply_stage(opened(), "VERIFIED", sh(3, 9, 14))
    assert is_overdue(entry, sh(3, 13, 17, 1))
    entry, raised = check_deadlines(entry, POLICY, CAL, sh(3, 14, 10))
    assert [e["reason"] for e in raised] == ["ANSWER_OVERDUE"]
    assert (state_of(entry), entry["clearing_reason"], entry["clearing_since"], entry["clearing_due"]) == (
        "clearing",
        "ANSWER_OVERDUE",
        sh(3, 13, 17),
        sh(3, 27, 17),
    )


def test_a_missed_clearing_deadline_escalates_once() -> None:
    """Unsatisfied on 03-12, not struck off by 03-26 10:00: one CLEARING_OVERDUE, overdue in the figures."""
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    entry, before = check_deadlines(entry, POLICY, CAL, sh(3, 26, 9))
    entry, raised = check_deadlines(entry, POLICY, CAL, sh(3, 26, 11))
    entry, again = check_deadlines(entry, POLICY, CAL, sh(3, 27, 11))
    assert (before, [e["reason"] for e in raised], again) == ([], ["CLEARING_OVERDUE"], [])
    assert is_overdue(entry, sh(3, 26, 11))


def test_an_order_closed_before_its_deadline_raises_nothing() -> None:
    """The department closed it before verification was due: no 督办 for the missing stages."""
    entry = close_by_department(opened(), reason="重复工单", closed_by="dept", closed_at=sh(3, 9, 15))
    entry, raised = check_deadlines(entry, POLICY, CAL, sh(4, 30))
    assert (raised, next_check(entry, POLICY, CAL), is_overdue(entry, sh(4, 30))) == ([], None, False)


def test_the_escalation_delay_is_working_time() -> None:
    """With a 2 working-hour delay, a verification due Tuesday 09:00 escalates after 11:00, not before."""
    slow = POLICY.model_copy(update={"escalation": POLICY.escalation.model_copy(update={"after_working_hours": 2})})
    _, early = check_deadlines(opened(), slow, CAL, sh(3, 10, 10, 59))
    _, late = check_deadlines(opened(), slow, CAL, sh(3, 10, 11, 1))
    assert (early, [e["reason"] for e in late]) == ([], ["VERIFY_OVERDUE"])


def test_next_check_is_the_first_pending_deadline() -> None:
    """Open: verification first; once verified and that escalation raised, the answer; then nothing pending."""
    entry = opened()
    assert next_check(entry, POLICY, CAL) == sh(3, 10, 9)
    verified = apply_stage(entry, "VERIFIED", sh(3, 9, 14))
    assert next_check(verified, POLICY, CAL) == sh(3, 13, 17)
    assert next_check(answered(), POLICY, CAL) is None


def test_escalation_ids_differ_per_reason_and_deadline() -> None:
    """The id is a function of order, reason and deadline only."""
    ids = {
        escalation_id("GD-1", "VERIFY_OVERDUE", sh(3, 10)),
        escalation_id("GD-1", "ANSWER_OVERDUE", sh(3, 10)),
        escalation_id("GD-1", "VERIFY_OVERDUE", sh(3, 11)),
        escalation_id("GD-2", "VERIFY_OVERDUE", sh(3, 10)),
    }
    assert (len(ids), escalation_id("GD-1", "VERIFY_OVERDUE", sh(3, 10)) in ids) == (4, True)


# --- figures -----------------------------------------------------------------------------------------------


def _figures_entries() -> list[ComplaintLedgerEntry]:
    cleared = visit(visit(answered(), "UNSATISFIED", sh(3, 12, 10)), "SATISFIED", sh(3, 20, 10), "v2")
    satisfied = visit(opened(n=2), "SATISFIED", sh(3, 12, 10))
    late = opened(n=3, utility="liaocheng-gas")
    return [cleared, satisfied, late]


def test_complaint_figures_per_group() -> None:
    """Per utility and in total: open, overdue at the instant, cleared, satisfaction and the weighted score."""
    figures = complaint_figures(_figures_entries(), SATISFACTION, now=sh(3, 31))
    water, gas, total = (
        figures[("utility", "liaocheng-water")],
        figures[("utility", "liaocheng-gas")],
        figures[("total", "")],
    )
    assert (water.open, water.overdue, water.cleared, water.satisfaction, water.target) == (0, 0, 1, 2 / 3, 0.995)
    assert water.weighted_score == pytest.approx(200 / 3)
    assert (gas.open, gas.overdue, gas.cleared, gas.satisfaction) == (1, 1, 0, None)
    assert (total.open, total.overdue, total.cleared) == (1, 1, 1)
    assert figures[("district", "371502")] == total
    assert figures[("city", "371500")] == total


def test_complaint_figures_within_a_month() -> None:
    """Orders dispatched in April and visits made in it only: March's orders drop out."""
    figures = complaint_figures(_figures_entries(), SATISFACTION, now=sh(4, 30), within=(sh(4, 1), sh(5, 1)))
    assert figures == {}


def test_visits_of_feed_the_satisfaction_figures() -> None:
    """Every visit, with its order's utility and district."""
    visits = visits_of(_figures_entries())
    assert [(v.utility_id, v.region_code, v.result) for v in visits] == [
        ("liaocheng-water", "371502", "UNSATISFIED"),
        ("liaocheng-water", "371502", "SATISFIED"),
        ("liaocheng-water", "371502", "SATISFIED"),
    ]


def test_an_entry_and_an_escalation_travel_as_avro() -> None:
    """The ledger entry and the escalation round-trip through the codec unchanged."""
    codec = Codec.default()
    entry = visit(answered(), "UNSATISFIED", sh(3, 12, 10))
    entry, raised = check_deadlines(entry, POLICY, CAL, sh(3, 27, 10))
    back = codec.decode_as("ComplaintLedgerEntry", codec.encode("ComplaintLedgerEntry", dict(entry)))
    assert back == entry
    assert codec.decode_as("Escalation", codec.encode("Escalation", dict(raised[0])))["reason"] == "CLEARING_OVERDUE"


def test_a_phone_number_in_the_close_reason_is_masked_on_the_ledger() -> None:
    """The department's reason stays on a compacted topic: a mobile number in it is masked."""
    closed = close_by_department(opened(), reason="已电话联系13912345678说明", closed_by="dept", closed_at=sh(3, 13))
    assert "13912345678" not in (closed["close_reason"] or "")


@given(st.permutations([("VERIFIED", 1), ("HANDLED", 2), ("ANSWERED", 3)]), st.integers(0, 3))
def test_the_loop_depends_on_the_reports_not_on_their_arrival_order(
    reports: list[tuple[TaskStage, int]], repeats: int
) -> None:
    """Any arrival order of in-time-ordered reports, any repeats: the same entry."""
    entry = opened()
    for stage, hours in [*reports, *reports[:repeats]]:
        entry = apply_stage(entry, stage, DISPATCHED + timedelta(hours=hours))
    expected = answered_in_order()
    assert {k: entry[k] for k in ("verified_at", "handled_at", "answered_at")} == expected


def answered_in_order() -> dict[str, datetime]:
    return {
        "verified_at": DISPATCHED + timedelta(hours=1),
        "handled_at": DISPATCHED + timedelta(hours=2),
        "answered_at": DISPATCHED + timedelta(hours=3),
    }
