"""Ledger entries for the supervision view's tests, built with the ledger's own functions."""

from datetime import datetime, timedelta

from routing.calendar import SHANGHAI, load_calendar
from routing.ledger import apply_status, open_entry
from routing.records import Service, TaskLedgerEntry, TaskStage, TaskStatus
from routing.sla_policy import load_policies
from tests.support import ROOT, make_task

CALENDAR = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
BOOK = load_policies(ROOT / "deploy" / "config" / "sla-policies.yaml")
FIRST_CONTACT = "shandong-000-first-contact"
YANTAI = "yantai-004-connection"
LIAOCHENG = "liaocheng-002-connection"


def sh(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    """An instant in Asia/Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def entry(
    utility: str,
    n: int,
    filed: datetime,
    reports: list[tuple[TaskStage, datetime]],
    *,
    region: str = "370602",
    service: Service = "WATER",
    kind: str = "APPLICATION",
    pipe_m: float | None = None,
) -> TaskLedgerEntry:
    """A connection application filed (and created) at ``filed``, received at once, then ``reports`` applied."""
    task = make_task(utility, n)
    task.update(
        {  # type: ignore[typeddict-item]
            "kind": kind,
            "service": service,
            "region_code": region,
            "application_kind": "CONNECTION" if kind == "APPLICATION" else None,
            "application_filed_at": filed if kind == "APPLICATION" else None,
            "created_at": filed,
        }
    )
    ledger = open_entry(task, received_at=filed)
    for stage, at in reports:
        ledger = apply_status(ledger, _status(task["task_id"], utility, stage, at, pipe_m), CALENDAR)
    return ledger


def _status(task_id: str, utility: str, stage: TaskStage, at: datetime, pipe_m: float | None) -> TaskStatus:
    return {
        "task_id": task_id,
        "utility_id": utility,
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": pipe_m if stage == "EXTERNAL_WORKS" else None,
        "reason": "不具备条件" if stage == "REJECTED" else None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }


def november() -> list[TaskLedgerEntry]:
    """Six tasks of November 2026 in Yantai (芝罘区, 莱山区) and Liaocheng, and one of October still open.

    Monday 2 November 09:00 is the filing of most; the first-contact limit is 3 working hours (12:00).
    """
    day = sh(11, 2, 9)
    return [
        # met first contact, connected and closed in time
        entry(
            "yantai-water",
            1,
            day,
            [
                ("CONTACTED", day + timedelta(hours=1)),
                ("SURVEYED", sh(11, 2, 15)),
                ("CONNECTED", sh(11, 3, 10)),
                ("CLOSED", sh(11, 3, 11)),
            ],
        ),
        # contacted late (14:00 = 3.5 working hours): first contact breached; closed
        entry(
            "yantai-water",
            2,
            day,
            [
                ("CONTACTED", sh(11, 2, 14)),
                ("SURVEYED", sh(11, 2, 16)),
                ("CONNECTED", sh(11, 3, 16)),
                ("CLOSED", sh(11, 3, 17)),
            ],
        ),
        # never contacted: still open, past due
        entry("yantai-water", 3, day, [], region="370613"),
        # gas, contacted in time, still running
        entry("yantai-gas", 4, day, [("CONTACTED", sh(11, 2, 10))], service="GAS"),
        # Liaocheng water, rejected
        entry("liaocheng-water", 5, day, [("CONTACTED", sh(11, 2, 10)), ("REJECTED", sh(11, 2, 11))], region="371502"),
        # an approval-system task no rule governs
        entry("yantai-water", 6, day, [("CONTACTED", sh(11, 4, 9))], kind="PRE_INTERVENTION"),
        # October, never contacted: overdue backlog
        entry("yantai-gas", 7, sh(10, 12, 9), [], service="GAS"),
    ]
