"""The complaint stage's processor on plain records: held visits, restore, escalations on the tick, metrics."""

from datetime import datetime, timedelta
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.complaints.metrics import ComplaintMetrics
from connectors.complaints.stage import ComplaintLoop
from connectors.ledger.changelog import is_held_key
from connectors.runtime.interface import Delivered, Output
from routing.calendar import SHANGHAI, load_calendar
from routing.complaints import load_complaint_policy
from routing.errors import DataError
from routing.records import TaskStage, TaskStatus, UtilityTask
from routing.satisfaction import load_satisfaction_policy
from schemas import Codec
from tests.support import ROOT, make_task

CONFIG = ROOT / "deploy" / "config"
CODEC = Codec.default()
STATUS, VISITS, CLOSES, LEDGER, ESCALATIONS = "status", "visits", "closes", "ledger", "escalations"
DISPATCHED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday


class Clock:
    """A wall clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def loop(
    registry: CollectorRegistry, clock: Clock, restore: dict[int, dict[bytes, ConsumerRecord]] | None = None
) -> ComplaintLoop:
    return ComplaintLoop(
        status_topic=STATUS,
        visits_topic=VISITS,
        closes_topic=CLOSES,
        ledger_topic=LEDGER,
        escalations_topic=ESCALATIONS,
        dlq_topic="dlq",
        policy=load_complaint_policy(CONFIG / "complaints.yaml"),
        satisfaction=load_satisfaction_policy(CONFIG / "satisfaction.yaml"),
        calendar=load_calendar(CONFIG / "calendar.yaml"),
        codec=CODEC,
        metrics=ComplaintMetrics(registry),
        restore=lambda: restore or {},
        clock="wall",
        wall_clock=clock,
    )


def task() -> UtilityTask:
    built: UtilityTask = {
        **make_task("liaocheng-water", 1),
        "kind": "COMPLAINT",
        "occurred_at": DISPATCHED,
        "created_at": DISPATCHED,
        "work_order_id": "GD-1",
        "answer_due": DISPATCHED + timedelta(days=4),
        "region_code": "371502",
    }
    return built


def record(topic: str, key: str, value: bytes, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, -1, offset, 0, 0, key.encode(), value, [], None, 0, 0, 0)


def status(stage: TaskStage, at: datetime, offset: int) -> ConsumerRecord:
    value: TaskStatus = {
        "task_id": task()["task_id"],
        "utility_id": "liaocheng-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": "已处理" if stage == "ANSWERED" else None,
        "reporter": "callback",
        "task": task() if stage == "RECEIVED" else None,
    }
    return record(STATUS, value["task_id"], CODEC.encode("TaskStatus", dict(value)), offset)


def visit(result: str, at: datetime, visit_id: str = "v1", offset: int = 0) -> ConsumerRecord:
    value: dict[str, Any] = {
        "order_id": "GD-1",
        "visit_id": visit_id,
        "result": result,
        "visited_at": at,
        "comment": "张三 13912345678",
        "source": "test",
        "source_event_id": visit_id,
        "ingested_at": at,
    }
    return record(VISITS, "GD-1", CODEC.encode("ReturnVisit", value), offset)


def outputs(stage: ComplaintLoop, *records: ConsumerRecord) -> list[Output]:
    found: list[Output] = []
    for outcome in stage.process(list(records)):
        assert isinstance(outcome, Delivered), outcome
        found += outcome.outputs
    return found


def test_a_visit_before_its_order_is_held_without_the_comment_and_applied_when_it_opens() -> None:
    """The visit waits on the ledger topic under a held key (comment dropped); RECEIVED releases and applies it."""
    stage = loop(CollectorRegistry(), Clock(DISPATCHED + timedelta(days=1)))
    stage.on_assigned([])
    held = outputs(stage, visit("UNSATISFIED", DISPATCHED + timedelta(hours=5)))
    assert [(o.topic, is_held_key(o.key or b"")) for o in held] == [(LEDGER, True)]
    assert CODEC.decode_as("ReturnVisit", held[0].value or b"")["comment"] is None
    opened = outputs(stage, status("RECEIVED", DISPATCHED, 0))
    assert (LEDGER, held[0].key, None) in [(o.topic, o.key, o.value) for o in opened]
    assert stage.orders["GD-1"]["on_clearing_ledger"] is True


def test_a_restarted_stage_restores_orders_and_held_visits() -> None:
    """The ledger topic's entries and held visits come back; a RECEIVED then applies the held visit."""
    first = loop(CollectorRegistry(), Clock(DISPATCHED))
    first.on_assigned([])
    held = outputs(first, visit("SATISFIED", DISPATCHED + timedelta(hours=5), offset=7))[0]
    restored = {
        0: {
            held.key or b"": ConsumerRecord(
                LEDGER, 0, -1, 3, 0, 0, held.key, held.value, list(held.headers), None, 0, 0, 0
            )
        }
    }
    second = loop(CollectorRegistry(), Clock(DISPATCHED), restored)
    second.on_assigned([])
    outputs(second, status("RECEIVED", DISPATCHED, 0))
    assert second.orders["GD-1"]["closed_how"] == "SATISFIED_VISIT"


def test_deadlines_are_checked_on_the_tick_after_the_batch_and_escalate_once() -> None:
    """Checked a few seconds after the backlog: the timely VERIFIED counts; the missed answer raises one 督办, once."""
    clock = Clock(DISPATCHED + timedelta(days=30))
    registry = CollectorRegistry()
    stage = loop(registry, clock)
    stage.on_assigned([])
    outputs(stage, status("RECEIVED", DISPATCHED, 0), status("VERIFIED", DISPATCHED + timedelta(hours=1), 1))
    assert stage.tick(clock.at) == []  # the backlog's later reports may still come: not judged yet
    clock.at += timedelta(seconds=6)
    raised = [o for o in stage.tick(clock.at) if o.topic == ESCALATIONS]
    again = [o for o in stage.tick(clock.at + timedelta(hours=1)) if o.topic == ESCALATIONS]
    reasons = sorted(CODEC.decode_as("Escalation", o.value or b"")["reason"] for o in raised)
    assert (reasons, again) == (["ANSWER_OVERDUE", "CLEARING_OVERDUE"], [])
    labels = {"utility": "liaocheng-water", "reason": "ANSWER_OVERDUE"}
    assert registry.get_sample_value("ubridge_complaint_escalations_total", labels) == 1.0
    assert (
        registry.get_sample_value("ubridge_complaint_orders", {"utility": "liaocheng-water", "state": "clearing"})
        == 1.0
    )


def test_the_months_satisfaction_gauges_follow_the_visits() -> None:
    """Two orders' visits this month, one satisfied one not: 50% per utility and per district, target 99.5%."""
    clock = Clock(DISPATCHED + timedelta(days=2))
    registry = CollectorRegistry()
    stage = loop(registry, clock)
    stage.on_assigned([])
    outputs(
        stage,
        status("RECEIVED", DISPATCHED, 0),
        visit("UNSATISFIED", DISPATCHED + timedelta(days=1)),
        visit("SATISFIED", DISPATCHED + timedelta(days=1, hours=1), "v2"),
    )
    stage.tick(clock.at)
    for level, group in (("utility", "liaocheng-water"), ("district", "371502")):
        labels = {"level": level, "group": group}
        assert registry.get_sample_value("ubridge_complaint_satisfaction_ratio", labels) == 0.5
        assert registry.get_sample_value("ubridge_complaint_satisfaction_score", labels) == 50.0
    assert registry.get_sample_value("ubridge_complaint_satisfaction_target_ratio") == 0.995


def test_a_loop_stage_of_an_unknown_task_is_a_data_error_and_other_tasks_are_filtered() -> None:
    """VERIFIED of a task never received as a complaint: dead-lettered with the reason; CONTACTED: filtered."""
    stage = loop(CollectorRegistry(), Clock(DISPATCHED))
    stage.on_assigned([])
    verified, contacted = stage.process([status("VERIFIED", DISPATCHED, 0), status("CONTACTED", DISPATCHED, 1)])
    assert isinstance(verified, DataError) and "never saw received" in verified.reason
    assert isinstance(contacted, Delivered) and contacted.filtered_reason == "not_a_complaint"
