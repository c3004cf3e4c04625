"""The status callbacks take a COMPLAINT task's 核实/办理/反馈 and refuse nonsense orderings (issue 16 item 2)."""

from datetime import UTC, datetime, timedelta

from connectors.status.admission import KnownTask, Refusal, admit, learn
from routing.records import TaskStage, TaskStatus
from tests.support import make_task

CREATED = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def report(stage: TaskStage, at: datetime, task: object = None) -> TaskStatus:
    return {
        "task_id": "c-1",
        "utility_id": "liaocheng-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": "已处理" if stage == "ANSWERED" else None,
        "reporter": "sink" if stage == "RECEIVED" else "callback",
        "task": task,  # type: ignore[typeddict-item]
    }


def known_complaint(*stages: tuple[TaskStage, datetime]) -> KnownTask | None:
    task = {**make_task("liaocheng-water", 1), "task_id": "c-1", "created_at": CREATED, "kind": "COMPLAINT"}
    known = learn(None, report("RECEIVED", CREATED, task))
    for stage, at in stages:
        known = learn(known, report(stage, at))
    return known


def test_a_complaints_three_stages_are_accepted_in_order() -> None:
    """VERIFIED, HANDLED, ANSWERED, each after the last: every report is accepted."""
    known = known_complaint()
    answers = []
    stages: tuple[TaskStage, ...] = ("VERIFIED", "HANDLED", "ANSWERED")
    for i, stage in enumerate(stages, start=1):
        answers.append(admit(known, report(stage, CREATED + i * HOUR)))
        known = learn(known, report(stage, CREATED + i * HOUR))
    assert answers == [None, None, None]


def test_an_answer_dated_before_the_verification_is_refused_409() -> None:
    """ANSWERED before the VERIFIED already reported: 409 naming both stages."""
    known = known_complaint(("VERIFIED", CREATED + 2 * HOUR))
    refusal = admit(known, report("ANSWERED", CREATED + HOUR))
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.field) == (409, "stage")
    assert "ANSWERED at" in refusal.reason and "precedes VERIFIED" in refusal.reason


def test_a_connection_stage_on_a_complaint_is_refused_409() -> None:
    """CONTACTED on a task that reported VERIFIED: 409, a task is a complaint or a connection."""
    known = known_complaint(("VERIFIED", CREATED + HOUR))
    refusal = admit(known, report("CONTACTED", CREATED + 2 * HOUR))
    assert isinstance(refusal, Refusal)
    assert refusal.status == 409 and "a connection's" in refusal.reason
