"""The callbacks' answer on plain data: which reports a delivered task can take, the ledger's rules exactly."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.status.admission import KnownTask, Refusal, admit, learn
from routing.calendar import load_calendar
from routing.errors import DataError
from routing.ledger import apply_status, open_entry
from routing.records import TaskStage, TaskStatus
from tests.support import ROOT, make_task

CREATED = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CALENDAR = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
STAGES: list[TaskStage] = [
    "RECEIVED", "CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED", "REJECTED",
]  # fmt: skip


def report(stage: TaskStage, at: datetime, *, utility: str = "yantai-water", **extra: Any) -> TaskStatus:
    status: TaskStatus = {
        "task_id": "t-1", "utility_id": utility, "application_id": None, "stage": stage, "occurred_at": at,
        "reported_at": at, "pipe_length_m": 12.0 if stage == "EXTERNAL_WORKS" else None,
        "reason": "no capacity" if stage == "REJECTED" else None, "detail": None, "reporter": "callback",
        "task": None,
    }  # fmt: skip
    status.update(extra)  # type: ignore[typeddict-item]
    return status


def received(*, utility: str = "yantai-water", action: str = "CREATE", at: datetime = CREATED) -> TaskStatus:
    task = {**make_task(utility, 1), "task_id": "t-1", "created_at": CREATED, "action": action}
    return report("RECEIVED", at, utility=utility, reporter="sink", task=task)


KNOWN = learn(None, received())


def test_the_sinks_received_makes_a_task_known_with_its_utility_and_creation() -> None:
    """RECEIVED carrying the task opens it, as it opens the ledger's entry; nothing else does."""
    assert KNOWN == KnownTask("yantai-water", CREATED, {"RECEIVED": CREATED})
    assert learn(None, report("CONTACTED", CREATED + HOUR)) is None
    assert learn(None, received(at=CREATED - HOUR)) is None  # the ledger refuses to open it too


def test_unknown_task_is_404_naming_the_id() -> None:
    """No RECEIVED seen: 404 on task_id."""
    assert admit(None, report("CONTACTED", CREATED + HOUR)) == Refusal(
        404, "no task 't-1' was delivered to a utility; check the id, or retry in a minute", "task_id"
    )


def test_another_utilitys_task_is_403_without_naming_the_owner() -> None:
    """A report by a utility the task was not delivered to is 403, and the owner is not disclosed."""
    refusal = admit(KNOWN, report("CONTACTED", CREATED + HOUR, utility="yantai-gas"))
    assert refusal is not None and (refusal.status, refusal.field) == (403, "task_id")
    assert "yantai-water" not in refusal.reason


@pytest.mark.parametrize(
    ("history", "stage", "offset_h", "reason"),
    [
        ([], "CONTACTED", -1, "before the task was created"),
        ([("CLOSED", 5)], "CONTACTED", 6, "after the task was CLOSED"),
        ([("REJECTED", 5)], "CLOSED", 6, "either CLOSED or REJECTED"),
        ([("CONNECTED", 8)], "CLOSED", 7, "precedes CONNECTED"),
        ([("CLOSED", 5)], "REJECTED", 4, "either CLOSED or REJECTED"),
    ],
)
def test_reports_the_ledger_would_refuse_are_409_with_its_reason(
    history: list[tuple[TaskStage, int]], stage: TaskStage, offset_h: int, reason: str
) -> None:
    """Before creation, after the end, CLOSED and REJECTED both, CLOSED before CONNECTED: 409, the ledger's words."""
    known = KNOWN
    for earlier, hours in history:
        known = learn(known, report(earlier, CREATED + hours * HOUR))
    refusal = admit(known, report(stage, CREATED + offset_h * HOUR))
    assert refusal is not None and (refusal.status, refusal.field) == (409, "stage")
    assert reason in refusal.reason


def test_a_cancel_and_other_utilities_records_do_not_move_the_view() -> None:
    """The sink's CANCEL and another utility's record leave the stage times as they were."""
    assert learn(KNOWN, received(action="CANCEL", at=CREATED + HOUR)) == KNOWN
    assert learn(KNOWN, report("CLOSED", CREATED + HOUR, utility="yantai-gas")) == KNOWN


_REPORTS = st.lists(
    st.tuples(st.sampled_from(STAGES), st.integers(-3, 30), st.sampled_from(["yantai-water", "yantai-gas"])),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(reports=_REPORTS)
def test_admitted_exactly_when_the_ledger_applies_it(reports: list[tuple[TaskStage, int, str]]) -> None:
    """For any sequence of reports, admit accepts a report exactly when the ledger would apply it."""
    opening = received()
    assert opening["task"] is not None
    entry = open_entry(opening["task"], received_at=CREATED)
    known = KNOWN
    for stage, hours, utility in reports:
        status = report(stage, CREATED + hours * HOUR, utility=utility)
        refusal = admit(known, status)
        try:
            applied = apply_status(entry, status, CALENDAR)
        except DataError:
            assert refusal is not None
            continue
        assert refusal is None, (refusal, stage, hours)
        entry, known = applied, learn(known, status)
        assert known is not None
        assert dict(known.times) == {span["stage"]: span["started_at"] for span in entry["stages"]}
