from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from connectors.ledger.show import render, survey_line
from routing.calendar import SHANGHAI, load_calendar
from routing.ledger import apply_status, open_entry, timeline
from routing.records import TaskLedgerEntry, TaskStage, TaskStatus, UtilityTask
from routing.sla_policy import load_policies
from tests.support import ROOT, make_task

CALENDAR = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
BOOK = load_policies(ROOT / "deploy" / "config" / "sla-policies.yaml")
FILED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday


def application(**fields: object) -> UtilityTask:
    """A Yantai gas connection application filed at FILED that reached ubridge a day later."""
    defaults = {
        "kind": "APPLICATION",
        "service": "GAS",
        "application_kind": "CONNECTION",
        "application_filed_at": FILED,
        "created_at": FILED + timedelta(days=1),
    }
    task = make_task("yantai-gas", 1)
    task.update({**defaults, **fields})  # type: ignore[typeddict-item]
    return task


def report(stage: TaskStage, at: datetime, **fields: object) -> TaskStatus:
    status: TaskStatus = {
        "task_id": "yantai-gas-00001",
        "utility_id": "yantai-gas",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
    status.update(fields)  # type: ignore[typeddict-item]
    return status


def cells(out: str, clock: str) -> list[str]:
    """The cells of the first table row of ``clock``."""
    row = next(line for line in out.splitlines() if line.startswith(f"│ {clock} "))
    return [cell.strip() for cell in row.strip("│").split("│")]


def shown(entry: TaskLedgerEntry, now: datetime) -> str:
    console = Console(record=True, width=240)
    for line in render(entry, timeline(entry, BOOK, CALENDAR, now), uncovered=BOOK.uncovered):
        console.print(line)
    return console.export_text()


def test_show_prints_each_rule_with_citation_limit_due_used_left_state_and_exclusions() -> None:
    """Per rule and step: citation, limit, due, used, remaining, state, excluded intervals with their reason."""
    entry = open_entry(application(), received_at=FILED + timedelta(days=1))
    for status in (
        report("CONTACTED", FILED + timedelta(days=1, hours=1)),
        report("PLAN_CONFIRMED", FILED + timedelta(days=2)),
        report("EXTERNAL_WORKS", FILED + timedelta(days=3), pipe_length_m=80.0),
    ):
        entry = apply_status(entry, status, CALENDAR)
    out = shown(entry, FILED + timedelta(days=10))
    expected = [
        "rule shandong-000-first-contact (variant all)",
        "原则上应于3小时内与用户取得联系",
        "starts: application_filed; stops: CONTACTED; unit: working_hours",
        "rule yantai-004-connection (variant external_works)",
        "不含工程设计、施工和专营企业不可控的时间",
        "step:确定方案",
    ]
    assert [line for line in expected if line not in out] == []
    assert [
        ["first_contact", "2026-03-09 09:00", "2026-03-09 12:00", "2026-03-10 10:00", "3.00", "8.50", "-5.50",
         "breached", "", ""],
        ["total", "2026-03-09 09:00", "2026-03-12 09:00", "", "22.50", "22.50", "0.00", "warning",
         "design, construction 2026-03-12 09:00–now", ""],
        ["step:确定方案", "2026-03-10 10:00", "", "2026-03-11 09:00", "no limit", "6.50", "", "done", "", ""],
    ] == [cells(out, "first_contact"), cells(out, "total"), cells(out, "step:确定方案")]  # fmt: skip


def test_show_says_what_applies_to_a_task_no_rule_governs() -> None:
    """A PRE_INTERVENTION task is listed with its stages and the file's statement of what applies instead."""
    task = application(kind="PRE_INTERVENTION", application_kind=None)
    out = shown(open_entry(task, received_at=FILED + timedelta(days=1)), FILED + timedelta(days=2))
    assert "no rule governs this task: No rule: the task is recorded stage by stage" in " ".join(out.split())


def test_show_prints_how_a_cancelled_task_ended() -> None:
    """A CANCEL received by the utility ends the task; show prints the end and the cancelled clocks."""
    entry = open_entry(application(), received_at=FILED + timedelta(days=1))
    cancel = report("RECEIVED", FILED + timedelta(days=1, hours=1), task=application(action="CANCEL"))
    out = shown(apply_status(entry, cancel, CALENDAR), FILED + timedelta(days=5))
    assert ("ended: CANCELLED at 2026-03-10T10:00:00+08:00" in out, "cancelled" in out) == (True, True)


def test_a_tasks_joint_survey_is_shown_once_as_it_stands_last() -> None:
    """Three records of one survey (two rounds, then agreed): one line, the agreed slot, the other utilities."""
    start = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
    participants = [{"utility_id": u, "task_id": f"t-{u}"} for u in ("yantai-gas", "yantai-water")]

    def record(round_: int, state: str, shift: int) -> dict[str, Any]:
        """The survey at ``round_`` in ``state``, its slot ``shift`` days after the first."""
        slot = start + timedelta(days=shift)
        return {"survey_id": "survey-1", "round": round_, "state": state, "slot_start": slot,
                "slot_end": slot + timedelta(hours=2), "participants": participants, "lead_department": "住建局",
                "occurred_at": start + timedelta(minutes=round_ * 10 + (state == "AGREED"))}  # fmt: skip

    history = [record(1, "PROPOSED", 0), record(2, "PROPOSED", 1), record(2, "AGREED", 1)]
    assert survey_line(history, "t-yantai-water") == (
        "joint survey (联合踏勘) survey-1: AGREED 2026-12-09 09:30–11:30 (round 2), with yantai-gas; led by 住建局"
    )
    assert survey_line(history, "t-other") is None
