"""A permit filed for a task takes the departments' time out of the utility's limit where the seed does (004)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.permits.submitter import external_works
from routing.calendar import SHANGHAI, load_calendar
from routing.ledger import apply_status, open_entry
from routing.permits import load_policy, parse_application
from routing.records import TaskLedgerEntry, TaskStatus, UtilityTask
from routing.sla import evaluate
from routing.sla_policy import load_policies
from tests.support import make_task

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CAL = load_calendar(CONFIG / "calendar.yaml")
BOOK = load_policies(CONFIG / "sla-policies.yaml")
POLICY = load_policy(CONFIG / "permits.yaml")
FILED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday


def yantai_task() -> UtilityTask:
    """A Yantai water connection application filed Monday 09:00."""
    task = make_task("yantai-water", 1)
    return {
        **task,
        "kind": "APPLICATION",
        "application_filed_at": FILED,
        "application_kind": "CONNECTION",
        "occurred_at": FILED,
        "created_at": FILED,
    }


def contacted(task: UtilityTask) -> TaskLedgerEntry:
    """The task's entry, received at once and contacted at 10:00."""
    entry = open_entry(task, received_at=FILED)
    report: TaskStatus = {
        "task_id": task["task_id"],
        "utility_id": task["utility_id"],
        "application_id": None,
        "stage": "CONTACTED",
        "occurred_at": FILED + timedelta(hours=1),
        "reported_at": FILED + timedelta(hours=1),
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
    return apply_status(entry, report, CAL)


def totals(entry: TaskLedgerEntry, now: datetime) -> list[str]:
    """The kinds of the total-limit events at ``now``."""
    return [event["kind"] for event in evaluate(entry, BOOK, CAL, now) if event["rule"] == "total"]


def test_the_departments_time_is_out_of_yantais_limit_once_permits_are_filed() -> None:
    """Permits filed Monday 11:00 with the departments for three weeks: no breach; without them, BREACHED."""
    task = yantai_task()
    body = {
        "application_no": "YT-1",
        "task_id": task["task_id"],
        "project_code": task["project_code"],
        "region_code": "370602",
        "kinds": ["ROAD_EXCAVATION"],
        "pipe_length_m": 80.0,
        "route": "幸福南路",
        "filed_at": "2026-03-09T11:00:00+08:00",
    }
    application = parse_application(body, utility_id="yantai-water", policy=POLICY, source="t", now=FILED)
    report = external_works(application, datetime(2026, 3, 9, 3, 1, tzinfo=UTC))
    assert (report["stage"], report["occurred_at"], report["pipe_length_m"]) == (
        "EXTERNAL_WORKS",
        datetime(2026, 3, 9, 3, tzinfo=UTC),
        80.0,
    )
    later = datetime(2026, 3, 30, 9, tzinfo=SHANGHAI)
    assert totals(apply_status(contacted(task), report, CAL), later) == []
    assert "BREACHED" in totals(contacted(task), later)
