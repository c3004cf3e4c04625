import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.calendar import SHANGHAI, load_calendar, parse_calendar
from routing.errors import DataError
from routing.ledger import STAGE_ORDER, Timeline, apply_status, mark_emitted, open_entry, reclock, timeline
from routing.records import SlaEvent, TaskLedgerEntry, TaskStage, TaskStatus, UtilityTask
from routing.sla import evaluate
from routing.sla_policy import load_policies
from schemas import Codec
from tests.support import make_task

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CAL = load_calendar(CONFIG / "calendar.yaml")
POLICIES = load_policies(CONFIG / "sla-policies.yaml")
CREATED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def task() -> UtilityTask:
    """A Yantai water connection application filed (and created) at CREATED: 3 h contact, 2 working days total."""
    built = make_task("yantai-water", 1)
    built["created_at"] = CREATED
    built["kind"] = "APPLICATION"
    built["application_kind"] = "CONNECTION"
    built["application_filed_at"] = CREATED
    return built


TASK_ID = task()["task_id"]


def status(stage: TaskStage, at: datetime, **extra: Any) -> TaskStatus:
    report: TaskStatus = {
        "task_id": TASK_ID,
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at + timedelta(minutes=1),
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
    report.update(extra)  # type: ignore[typeddict-item]
    return report


def fresh() -> TaskLedgerEntry:
    return open_entry(task(), received_at=CREATED)


def apply_all(entry: TaskLedgerEntry, *statuses: TaskStatus) -> TaskLedgerEntry:
    for report in statuses:
        entry = apply_status(entry, report, CAL)
    return entry


def spans(entry: TaskLedgerEntry) -> list[tuple[str, datetime, datetime | None, float | None]]:
    return [(s["stage"], s["started_at"], s["ended_at"], s["elapsed_working_hours"]) for s in entry["stages"]]


def test_stage_order_is_the_documented_one() -> None:
    """STAGE_ORDER lists the seven ordered stages; REJECTED is not among them."""
    expected = ("RECEIVED", "CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED")
    assert expected == STAGE_ORDER


def test_open_entry_starts_the_ledger_from_the_task() -> None:
    """The RECEIVED report opens an entry with the task's start instants (its filing), no external works yet."""
    received = sh(3, 9, 9, 5)
    expected: TaskLedgerEntry = {
        "task_id": TASK_ID,
        "utility_id": "yantai-water",
        "application_id": None,
        "kind": "APPLICATION",
        "service": "WATER",
        "region_code": "370602",
        "created_at": CREATED,
        "scenario": "no_external_works",
        "pipe_length_m": None,
        "stage": "RECEIVED",
        "closed": False,
        "rejected_reason": None,
        "stages": [{"stage": "RECEIVED", "started_at": received, "ended_at": None, "elapsed_working_hours": None}],
        "emitted": [],
        "updated_at": received,
        "unclocked_reason": None,
        "application_filed_at": CREATED,
        "application_kind": "CONNECTION",
        "permit_granted_at": None,
        "cancelled_at": None,
        "user_category": "ENTERPRISE",
    }
    assert expected == open_entry(task(), received_at=received)


def test_open_entry_refuses_receipt_before_creation() -> None:
    """A RECEIVED report dated before the task was created is a data error."""
    with pytest.raises(DataError, match=r"RECEIVED at .* is before the task was created") as info:
        open_entry(task(), received_at=CREATED - timedelta(minutes=1))
    assert "stage" == info.value.field


def test_open_entry_refuses_naive_time() -> None:
    """A naive receipt time is a ValueError."""
    with pytest.raises(ValueError, match="received_at must be timezone-aware"):
        open_entry(task(), received_at=datetime(2026, 3, 9, 9))  # noqa: DTZ001


def test_statuses_in_order_build_the_timeline() -> None:
    """Each span ends where the next starts, with its working hours; CLOSED ends the task."""
    entry = apply_all(
        fresh(),
        status("CONTACTED", sh(3, 9, 11)),
        status("SURVEYED", sh(3, 10, 9)),
        status("CONNECTED", sh(3, 10, 15)),
        status("CLOSED", sh(3, 11, 9)),
    )
    expected_spans = [
        ("RECEIVED", CREATED, sh(3, 9, 11), 2.0),
        ("CONTACTED", sh(3, 9, 11), sh(3, 10, 9), 5.5),
        ("SURVEYED", sh(3, 10, 9), sh(3, 10, 15), 4.5),
        ("CONNECTED", sh(3, 10, 15), sh(3, 11, 9), 3.0),
        ("CLOSED", sh(3, 11, 9), None, None),
    ]
    state = (entry["stage"], entry["closed"], entry["updated_at"])
    assert (expected_spans, ("CLOSED", True, sh(3, 11, 9, 1))) == (spans(entry), state)


def test_apply_status_never_mutates_its_argument() -> None:
    """The entry passed in is left exactly as it was."""
    entry = apply_all(fresh(), status("CONTACTED", sh(3, 9, 11)))
    before = copy.deepcopy(entry)
    apply_status(entry, status("SURVEYED", sh(3, 9, 15)), CAL)
    assert before == entry


def test_same_status_twice_leaves_the_entry_unchanged() -> None:
    """A duplicate report (same stage and occurred_at, even reported again later) changes nothing."""
    once = apply_all(fresh(), status("CONTACTED", sh(3, 9, 11)))
    again = apply_status(once, status("CONTACTED", sh(3, 9, 11), reported_at=sh(3, 12)), CAL)
    assert once == again


def test_stage_reported_again_later_keeps_the_first_time() -> None:
    """A second CONTACTED dated later keeps the first contact; one dated earlier replaces it."""
    once = apply_all(fresh(), status("CONTACTED", sh(3, 9, 11)))
    later = apply_status(once, status("CONTACTED", sh(3, 9, 14)), CAL)
    earlier = apply_status(once, status("CONTACTED", sh(3, 9, 10)), CAL)
    assert (once, sh(3, 9, 10)) == (later, earlier["stages"][1]["started_at"])


def test_out_of_order_report_is_slotted_in_by_time() -> None:
    """SURVEYED arriving before an earlier-dated CONTACTED yields RECEIVED → CONTACTED → SURVEYED."""
    entry = apply_all(fresh(), status("SURVEYED", sh(3, 9, 15)), status("CONTACTED", sh(3, 9, 11)))
    expected = [
        ("RECEIVED", CREATED, sh(3, 9, 11), 2.0),
        ("CONTACTED", sh(3, 9, 11), sh(3, 9, 15), 2.5),
        ("SURVEYED", sh(3, 9, 15), None, None),
    ]
    assert (expected, "SURVEYED") == (spans(entry), entry["stage"])


def test_closed_may_arrive_before_the_connected_it_follows() -> None:
    """CLOSED reported first, then an earlier CONNECTED, gives the same entry as the other order."""
    connected, closed = status("CONNECTED", sh(3, 10, 9)), status("CLOSED", sh(3, 10, 16))
    first = apply_all(fresh(), closed, connected)
    second = apply_all(fresh(), connected, closed)
    assert spans(second) == spans(first)


def test_external_works_sets_pipe_length_and_scenario() -> None:
    """EXTERNAL_WORKS with 35 m of pipe moves the task to the pipe_le_50m scenario."""
    entry = apply_all(fresh(), status("EXTERNAL_WORKS", sh(3, 10, 9), pipe_length_m=35.0))
    assert (35.0, "pipe_le_50m", "EXTERNAL_WORKS") == (entry["pipe_length_m"], entry["scenario"], entry["stage"])


def test_rejected_closes_the_task_with_its_reason() -> None:
    """REJECTED ends the task and records why."""
    entry = apply_all(fresh(), status("REJECTED", sh(3, 9, 10), reason="用户撤回申请"))
    assert ("REJECTED", True, "用户撤回申请") == (entry["stage"], entry["closed"], entry["rejected_reason"])


def test_a_rejection_reason_is_kept_masked() -> None:
    """A phone or ID number in the utility's reason is masked in the entry (it sits on a compacted changelog)."""
    entry = apply_all(fresh(), status("REJECTED", sh(3, 9, 10), reason="用户张伟 13912345678 撤回"))
    assert entry["rejected_reason"] == "用户张伟 139****5678 撤回"


CLOSED_TASK = (status("CONNECTED", sh(3, 10, 9)), status("CLOSED", sh(3, 10, 10)))
REJECTED_TASK = (status("REJECTED", sh(3, 10, 10), reason="不具备接入条件"),)


@pytest.mark.parametrize(
    ("history", "report", "reason"),
    [
        (
            CLOSED_TASK,
            status("SURVEYED", sh(3, 10, 11)),
            "SURVEYED at 2026-03-10T11:00:00+08:00 is after the task was CLOSED",
        ),
        (
            REJECTED_TASK,
            status("CONTACTED", sh(3, 11)),
            "CONTACTED at 2026-03-11T00:00:00+08:00 is after the task was REJECTED",
        ),
        (
            (status("SURVEYED", sh(3, 10, 11)),),
            status("CLOSED", sh(3, 10, 10)),
            "SURVEYED at 2026-03-10T11:00:00+08:00 is after",
        ),
        (
            (status("CONNECTED", sh(3, 10, 12)),),
            status("CLOSED", sh(3, 10, 10)),
            "CLOSED at 2026-03-10T10:00:00+08:00 precedes CONNECTED at 2026-03-10T12:00:00+08:00",
        ),
        (CLOSED_TASK, status("REJECTED", sh(3, 10, 9), reason="x"), "either CLOSED or REJECTED"),
        ((), status("REJECTED", sh(3, 10)), "REJECTED without a reason"),
        ((), status("REJECTED", sh(3, 10), reason="  "), "REJECTED without a reason"),
        (
            (),
            status("EXTERNAL_WORKS", sh(3, 10)),
            "EXTERNAL_WORKS needs the external pipe length in metres (> 0), got None",
        ),
        ((), status("EXTERNAL_WORKS", sh(3, 10), pipe_length_m=0.0), "got 0.0"),
        ((), status("EXTERNAL_WORKS", sh(3, 10), pipe_length_m=-3.0), "got -3.0"),
        ((), status("CONTACTED", sh(3, 10), task_id="other"), "for task_id 'other' cannot apply to the entry of"),
        ((), status("CONTACTED", sh(3, 10), utility_id="yantai-gas"), "for utility_id 'yantai-gas' cannot apply"),
        ((), status("CONTACTED", sh(3, 9, 8)), "CONTACTED at 2026-03-09T08:00:00+08:00 is before the task was created"),
    ],
)
def test_impossible_reports_are_data_errors(history: tuple[TaskStatus, ...], report: TaskStatus, reason: str) -> None:
    """Every impossible report raises DataError on field 'stage' with a precise reason."""
    entry = apply_all(fresh(), *history)
    with pytest.raises(DataError) as info:
        apply_status(entry, report, CAL)
    assert ("stage", True) == (info.value.field, reason in info.value.reason)


def test_naive_status_time_is_refused() -> None:
    """A status with a naive occurred_at is a ValueError."""
    with pytest.raises(ValueError, match="occurred_at must be timezone-aware"):
        apply_status(fresh(), status("CONTACTED", datetime(2026, 3, 9, 10)), CAL)  # noqa: DTZ001


def test_ledger_entry_encodes_as_avro() -> None:
    """A fully worked entry round-trips through the TaskLedgerEntry schema."""
    entry = apply_all(fresh(), status("EXTERNAL_WORKS", sh(3, 10, 9), pipe_length_m=12.5), *CLOSED_TASK)
    codec = Codec.default()
    assert ("TaskLedgerEntry", entry) == codec.decode(codec.encode("TaskLedgerEntry", entry))


def test_mark_emitted_records_each_id_once() -> None:
    """Emitted ids are appended once each, updated_at becomes now, the argument is untouched."""
    entry = fresh()
    events = evaluate(entry, POLICIES, CAL, sh(3, 9, 14))
    now = sh(3, 9, 14, 1)
    marked = mark_emitted(mark_emitted(entry, events, now), events, now)
    ids = [e["event_id"] for e in events]
    assert (ids, now, [], []) == (
        marked["emitted"],
        marked["updated_at"],
        entry["emitted"],
        evaluate(marked, POLICIES, CAL, sh(3, 9, 15)),
    )


def test_mark_emitted_refuses_another_tasks_event() -> None:
    """An event of another task is a ValueError."""
    event: SlaEvent = {**evaluate(fresh(), POLICIES, CAL, sh(3, 9, 14))[0], "task_id": "other"}
    with pytest.raises(ValueError, match="is for task other"):
        mark_emitted(fresh(), [event], sh(3, 9, 15))


def clocks(view: Timeline) -> list[tuple[str, str, float | None, float | None, str]]:
    """(rule id, clock, used hours, limit hours, state) of every clock of a timeline."""
    return [
        (
            rule.rule_id,
            row.name,
            None if row.used_hours is None else round(row.used_hours, 6),
            row.limit_hours,
            row.state,
        )
        for rule in view.rules
        for row in rule.rows
    ]


def test_timeline_rows_for_stages_and_rules() -> None:
    """Stage rows carry working hours; first contact met; Yantai's total open at 8.5 of 15 h, its steps unlimited."""
    entry = apply_all(fresh(), status("CONTACTED", sh(3, 9, 11)), status("SURVEYED", sh(3, 10, 9)))
    view = timeline(entry, POLICIES, CAL, sh(3, 10, 10))
    assert [
        ("RECEIVED", CREATED, sh(3, 9, 11), 2.0),
        ("CONTACTED", sh(3, 9, 11), sh(3, 10, 9), 5.5),
        ("SURVEYED", sh(3, 10, 9), None, 1.0),
    ] == [(r.name, r.started, r.ended, r.elapsed_working_hours) for r in view.stages]
    assert [
        ("shandong-000-first-contact", "first_contact", 2.0, 3.0, "met"),
        ("yantai-004-connection", "total", 8.5, 15.0, "open"),
        ("yantai-004-connection", "step:申请受理", 2.0, None, "done"),
        ("yantai-004-connection", "step:开阀供能", 6.5, None, "open"),
    ] == clocks(view)
    total = view.rules[1].rows[0]
    assert (sh(3, 11, 9), 6.5) == (total.due, total.remaining_hours)


def test_timeline_warning_and_breach() -> None:
    """With no contact by Tuesday 09:00 first_contact is breached; on Wednesday the total (15 h of 15) warns."""
    early = clocks(timeline(fresh(), POLICIES, CAL, sh(3, 10, 9)))
    late = clocks(timeline(fresh(), POLICIES, CAL, sh(3, 11, 9)))
    assert (early[:2], late[1]) == (
        [
            ("shandong-000-first-contact", "first_contact", 7.5, 3.0, "breached"),
            ("yantai-004-connection", "total", 7.5, 15.0, "open"),
        ],
        ("yantai-004-connection", "total", 15.0, 15.0, "warning"),
    )


def test_timeline_says_which_figures_rest_on_a_provisional_year() -> None:
    """A task opened on 2026-12-30 and read on 2027-01-05: 2027 rows are provisional, hours still computed."""
    opened = datetime(2026, 12, 30, 9, tzinfo=SHANGHAI)
    base = {**fresh(), "created_at": opened, "application_filed_at": opened}
    base["stages"] = [{**fresh()["stages"][0], "started_at": opened}]
    entry = apply_status(base, status("CONTACTED", datetime(2026, 12, 30, 11, tzinfo=SHANGHAI)), CAL)
    view = timeline(entry, POLICIES, CAL, datetime(2027, 1, 5, 9, tzinfo=SHANGHAI))
    assert [("RECEIVED", 2.0, "official"), ("CONTACTED", 20.5, "provisional")] == [
        (r.name, r.elapsed_working_hours, r.calendar) for r in view.stages
    ]
    assert [
        ("first_contact", 2.0, "official"),
        ("total", 22.5, "provisional"),
        ("step:申请受理", 2.0, "official"),
        ("step:开阀供能", 20.5, "provisional"),
    ] == [(r.name, r.used_hours, r.calendar) for rule in view.rules for r in rule.rows]


def test_a_report_no_calendar_covers_is_applied_unclocked() -> None:
    """A CONNECTED dated 2101 is applied; its span has no working hours and the entry says why."""
    entry = apply_all(
        fresh(), status("CONTACTED", sh(3, 9, 11)), status("CONNECTED", datetime(2101, 1, 3, 9, tzinfo=SHANGHAI))
    )
    view = timeline(entry, POLICIES, CAL, datetime(2101, 1, 4, tzinfo=SHANGHAI))
    assert (
        [2.0, None, None],
        True,
        [("RECEIVED", "official"), ("CONTACTED", "unclocked"), ("CONNECTED", "unclocked")],
        [
            ("first_contact", "official"),
            ("total", "unclocked"),
            ("step:申请受理", "official"),
            ("step:开阀供能", "unclocked"),
        ],
    ) == (
        [span["elapsed_working_hours"] for span in entry["stages"]],
        "no holiday schedule for 2100" in (entry["unclocked_reason"] or ""),
        [(r.name, r.calendar) for r in view.stages],
        [(r.name, r.calendar) for rule in view.rules for r in rule.rows],
    )


def test_reclock_computes_the_spans_once_the_calendar_covers_them() -> None:
    """Spans left unclocked by a calendar without 2027 get their hours from one that has it; the mark clears."""
    strict = parse_calendar({"office_hours": ["08:30-12:00", "13:30-17:30"], "provisional_rules": False})
    opened = datetime(2026, 12, 31, 9, tzinfo=SHANGHAI)
    base = {**fresh(), "created_at": opened, "stages": [{**fresh()["stages"][0], "started_at": opened}]}
    entry = apply_status(base, status("CONTACTED", datetime(2027, 1, 4, 9, tzinfo=SHANGHAI)), strict)
    clocked = reclock(entry, CAL)
    assert ([None, None], True, [7.5, None], None) == (
        [span["elapsed_working_hours"] for span in entry["stages"]],
        entry["unclocked_reason"] is not None,
        [span["elapsed_working_hours"] for span in clocked["stages"]],
        clocked["unclocked_reason"],
    )


def test_timeline_with_step_limits() -> None:
    """Zhengzhou (001) judges its two steps at 0.5 working day each and the total at 1; no 3-hour contact rule."""
    entry = apply_all({**fresh(), "region_code": "410102"}, status("CONTACTED", sh(3, 9, 14)))
    assert [
        ("zhengzhou-001-two-steps", "total", 7.5, 7.5, "warning"),
        ("zhengzhou-001-two-steps", "step:受理申请", 3.5, 3.75, "met"),
        ("zhengzhou-001-two-steps", "step:验收接通", 4.0, 3.75, "breached"),
    ] == clocks(timeline(entry, POLICIES, CAL, sh(3, 10, 9)))


def test_timeline_of_a_rejected_task() -> None:
    """REJECTED ends the task: a clock breached by then reads breached, the others rejected; later steps never start."""
    entry = apply_all(fresh(), status("REJECTED", sh(3, 9, 15), reason="重复申请"))
    view = timeline(entry, POLICIES, CAL, sh(4, 1))
    assert (view.ended or "").startswith("REJECTED at")
    assert [
        ("shandong-000-first-contact", "first_contact", 4.5, 3.0, "breached"),
        ("yantai-004-connection", "total", 4.5, 15.0, "rejected"),
        ("yantai-004-connection", "step:申请受理", 4.5, None, "rejected"),
        ("yantai-004-connection", "step:开阀供能", None, None, "not_started"),
    ] == clocks(view)


def test_a_cancel_received_by_the_utility_ends_the_task() -> None:
    """The sink's RECEIVED of a CANCEL closes the entry; running clocks read cancelled, later reports still recorded."""
    cancel = {**task(), "action": "CANCEL"}
    entry = apply_all(fresh(), status("RECEIVED", sh(3, 9, 10), task=cancel), status("CONTACTED", sh(3, 9, 11)))
    assert (sh(3, 9, 10), True) == (entry["cancelled_at"], entry["closed"])
    assert [
        ("shandong-000-first-contact", "first_contact", 1.0, 3.0, "cancelled"),
        ("yantai-004-connection", "total", 1.0, 15.0, "cancelled"),
        ("yantai-004-connection", "step:申请受理", 1.0, None, "cancelled"),
        ("yantai-004-connection", "step:开阀供能", 0.0, None, "cancelled"),
    ] == clocks(timeline(entry, POLICIES, CAL, sh(4, 1)))


def test_a_cancel_received_first_opens_a_cancelled_entry() -> None:
    """A task whose first delivery is its CANCEL is in the ledger, already ended."""
    entry = open_entry({**task(), "action": "CANCEL"}, received_at=sh(3, 9, 10))
    assert (sh(3, 9, 10), True) == (entry["cancelled_at"], entry["closed"])


# --- properties: the final state depends on the set of reports, not their order ------------------------------

ORDERED: tuple[TaskStage, ...] = ("CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED")


@st.composite
def valid_histories(draw: st.DrawFn) -> list[TaskStatus]:
    """A valid sequence of reports after RECEIVED: some of the ordered stages, maybe ended by a rejection."""
    stages = [stage for stage in ORDERED if stage in ("CONTACTED", "CONNECTED", "CLOSED") or draw(st.booleans())]
    if draw(st.booleans()):
        stages = [*stages[: draw(st.integers(0, len(stages) - 1))], "REJECTED"]
    at = CREATED
    reports = []
    for stage in stages:
        at += timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
        extra: dict[str, Any] = {"reported_at": at + timedelta(minutes=draw(st.integers(0, 600)))}
        if stage == "EXTERNAL_WORKS":
            extra["pipe_length_m"] = draw(st.floats(0.5, 300))
        if stage == "REJECTED":
            extra["reason"] = "不具备接入条件"
        reports.append(status(stage, at, **extra))
    return reports


@given(data=st.data(), history=valid_histories())
def test_any_arrival_order_gives_the_same_timeline(data: st.DataObject, history: list[TaskStatus]) -> None:
    """Any permutation of a valid history, with duplicates, yields the same entry and timeline."""
    shuffled = data.draw(st.permutations(history))
    repeated = shuffled + data.draw(st.lists(st.sampled_from(history), max_size=3))
    in_order, reordered = apply_all(fresh(), *history), apply_all(fresh(), *repeated)
    now = datetime(2026, 4, 30, tzinfo=UTC)
    strip = ("updated_at",)
    assert ({k: v for k, v in in_order.items() if k not in strip}, timeline(in_order, POLICIES, CAL, now)) == (
        {k: v for k, v in reordered.items() if k not in strip},
        timeline(reordered, POLICIES, CAL, now),
    )


@given(history=valid_histories())
def test_spans_are_contiguous_and_in_time_order(history: list[TaskStatus]) -> None:
    """Spans are sorted by start, each ending where the next starts, the last one open."""
    entry = apply_all(fresh(), *history)
    starts = [s["started_at"] for s in entry["stages"]]
    ends = [s["ended_at"] for s in entry["stages"]]
    assert (sorted(starts), [*starts[1:], None]) == (starts, ends)
