from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.ledger.changelog import RELEASED, is_held_key
from connectors.ledger.metrics import LedgerMetrics
from connectors.ledger.stage import DEFAULT_CLOSED_RETENTION, Clock, TaskLedger
from connectors.runtime.dlq import error_context
from connectors.runtime.interface import Delivered, Output
from routing.calendar import SHANGHAI, WorkingCalendar, load_calendar, parse_calendar
from routing.errors import DataError
from routing.records import SlaEvent, TaskLedgerEntry, TaskStage, TaskStatus
from routing.sla_policy import load_policies
from schemas import Codec
from tests.support import NOW, ROOT, make_task

STATUS, CHANGELOG, SLA, DLQ = "status", "changelog", "sla", "dlq"
CALENDAR = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
POLICIES = load_policies(ROOT / "deploy" / "config" / "sla-policies.yaml")
CODEC = Codec.default()
NO_RULES = parse_calendar({"office_hours": ["08:30-12:00", "13:30-17:30"], "provisional_rules": False})
NEW_YEARS_EVE = datetime(2026, 12, 31, 16, tzinfo=SHANGHAI)
TASK_ID = "yantai-water-00001"  # filed and created NOW: Wednesday 2026-11-25 10:00 in Shanghai; 3 h first contact
HOUR = timedelta(hours=1)


class Wall:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class FakeChangelog:
    """Collects changelog outputs and reads them back per partition, latest per key, as Kafka would."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, ConsumerRecord]]:
        result: dict[int, dict[bytes, ConsumerRecord]] = {p: {} for p in partitions}
        for offset, out in enumerate(self.outputs):
            if out.partition not in result or out.key is None:
                continue
            if out.value == RELEASED:
                result[out.partition].pop(out.key, None)
            else:
                result[out.partition][out.key] = record(out.value, offset, partition=out.partition, key=out.key)
                result[out.partition][out.key].headers.extend(out.headers)
        return result


def record(value: bytes, offset: int, *, partition: int = 0, key: bytes = TASK_ID.encode()) -> ConsumerRecord:
    return ConsumerRecord(STATUS, partition, -1, offset, 0, 0, key, value, [], None, 0, 0, 0)


def status(
    stage: TaskStage,
    at: datetime,
    *,
    n: int = 1,
    region: str = "370602",
    created: datetime = NOW,
    **fields: Any,
) -> bytes:
    task = {
        **make_task("yantai-water", n),
        "region_code": region,
        "created_at": created,
        "kind": "APPLICATION",
        "application_kind": "CONNECTION",
        "application_filed_at": created,
    }
    value: TaskStatus = {
        "task_id": task["task_id"],
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "sink" if stage == "RECEIVED" else "callback",
        "task": task if stage == "RECEIVED" else None,
    }
    return CODEC.encode("TaskStatus", {**value, **fields})


class Harness:
    def __init__(
        self,
        *,
        clock: Clock = "wall",
        max_held: int = 1000,
        changelog: FakeChangelog | None = None,
        calendar: WorkingCalendar = CALENDAR,
        retention: timedelta = DEFAULT_CLOSED_RETENTION,
    ) -> None:
        self.registry = CollectorRegistry()
        self.wall = Wall()
        self.changelog = changelog or FakeChangelog()
        self.ledger = TaskLedger(
            input_topic=STATUS,
            changelog_topic=CHANGELOG,
            sla_topic=SLA,
            dlq_topic=DLQ,
            calendar=calendar,
            policies=POLICIES,
            codec=CODEC,
            metrics=LedgerMetrics(self.registry),
            reader=self.changelog,
            clock=clock,
            max_held_per_partition=max_held,
            closed_retention=retention,
            wall_clock=self.wall,
        )
        self.offset = 0

    def feed(self, *values: bytes, partition: int = 0) -> list[Delivered | DataError]:
        records = []
        for value in values:
            records.append(record(value, self.offset, partition=partition))
            self.offset += 1
        outcomes = list(self.ledger.process(records))
        for outcome in outcomes:
            if isinstance(outcome, Delivered):
                self.changelog.outputs += [o for o in outcome.outputs if o.topic == CHANGELOG]
        return outcomes

    def tick(self, now: datetime) -> Sequence[Output]:
        outputs = self.ledger.tick(now)
        self.changelog.outputs += [o for o in outputs if o.topic == CHANGELOG]
        return outputs

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def delivered(outcome: Delivered | DataError) -> Delivered:
    assert isinstance(outcome, Delivered), outcome
    return outcome


def entries(outputs: Sequence[Output]) -> list[TaskLedgerEntry]:
    return [
        cast(TaskLedgerEntry, CODEC.decode_as("TaskLedgerEntry", o.value))
        for o in outputs
        if o.topic == CHANGELOG and not is_held_key(o.key or b"") and o.value is not None
    ]


def sla_events(outputs: Sequence[Output]) -> list[tuple[str, str]]:
    return [(e["rule"], e["kind"]) for e in map(decode_event, [o for o in outputs if o.topic == SLA])]


def decode_event(output: Output) -> SlaEvent:
    return cast(SlaEvent, CODEC.decode_as("SlaEvent", output.value))


def test_received_with_task_opens_an_entry_on_the_input_partition() -> None:
    """The sink's RECEIVED opens the entry, written to the changelog partition of the status."""
    harness = Harness()
    (outcome,) = harness.feed(status("RECEIVED", NOW), partition=2)
    outputs = delivered(outcome).outputs
    assert [(o.topic, o.key, o.partition) for o in outputs] == [(CHANGELOG, TASK_ID.encode(), 2)]
    (entry,) = entries(outputs)
    assert (entry["stage"], entry["scenario"], entry["closed"]) == ("RECEIVED", "no_external_works", False)
    assert harness.sample("ubridge_ledger_open_tasks", utility="yantai-water", stage="RECEIVED") == 1


def test_progress_moves_the_entry_and_meets_first_contact() -> None:
    """CONTACTED one working hour in: the entry moves, first contact is MET and measured."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW))
    harness.wall.now = NOW + HOUR
    (outcome,) = harness.feed(status("CONTACTED", NOW + HOUR))
    outputs = delivered(outcome).outputs
    assert [e["stage"] for e in entries(outputs)] == ["CONTACTED"]
    assert sla_events(outputs) == [("first_contact", "MET")]
    assert harness.sample("ubridge_time_to_first_contact_working_hours_sum", utility="yantai-water") == 1.0
    assert harness.sample("ubridge_ledger_open_tasks", utility="yantai-water", stage="RECEIVED") == 0
    assert harness.sample("ubridge_ledger_open_tasks", utility="yantai-water", stage="CONTACTED") == 1
    assert (
        harness.sample("ubridge_sla_events_total", utility="yantai-water", rule_kind="first_contact", kind="MET") == 1
    )


def test_a_duplicate_status_changes_nothing() -> None:
    """The same report twice: the second produces no changelog write and no SLA event."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW), status("CONTACTED", NOW + HOUR))
    again = harness.feed(status("CONTACTED", NOW + HOUR), status("RECEIVED", NOW))
    assert [delivered(o).outputs for o in again] == [(), ()]


def test_an_impossible_transition_is_a_data_error() -> None:
    """A stage reported after the task was CLOSED is dead-lettered, the entry is unchanged."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW), status("CONNECTED", NOW + HOUR), status("CLOSED", NOW + 2 * HOUR))
    (outcome,) = harness.feed(status("SURVEYED", NOW + 3 * HOUR))
    assert isinstance(outcome, DataError)
    assert outcome.field == "stage"
    assert harness.ledger.entries[0][TASK_ID]["stage"] == "CLOSED"


def test_a_status_before_its_received_is_held_then_applied() -> None:
    """CONTACTED before RECEIVED is held (persisted), then applied and released when the task opens."""
    harness = Harness()
    (held,) = harness.feed(status("CONTACTED", NOW + HOUR))
    held_outputs = delivered(held).outputs
    assert [(o.topic, o.key, o.partition) for o in held_outputs] == [(CHANGELOG, f"held/{STATUS}/0".encode(), 0)]
    assert harness.sample("ubridge_ledger_held_statuses") == 1
    (opened,) = harness.feed(status("RECEIVED", NOW))
    outputs = delivered(opened).outputs
    assert (CHANGELOG, f"held/{STATUS}/0".encode(), RELEASED) in [(o.topic, o.key, o.value) for o in outputs]
    assert [[s["stage"] for s in e["stages"]] for e in entries(outputs)] == [["RECEIVED", "CONTACTED"]]
    assert harness.sample("ubridge_ledger_held_statuses") == 0


def test_a_held_status_is_kept_without_personal_data() -> None:
    """The changelog keeps a held status with its free text masked and without its task's contact."""
    harness = Harness()
    task = {**make_task("yantai-water", 1), "created_at": NOW}
    value = status("CONTACTED", NOW + HOUR, detail="已联系张伟 13912345678", task=task)
    (held,) = harness.feed(value)
    (output,) = delivered(held).outputs
    kept = CODEC.decode_as("TaskStatus", output.value or b"")
    assert (kept["detail"], kept["task"]["contact_mobile"], kept["task"]["contact_name"]) == (
        "已联系张伟 139****5678",
        None,
        None,
    )
    (plain,) = harness.feed(status("SURVEYED", NOW + 2 * HOUR))
    assert delivered(plain).outputs[0].value == status("SURVEYED", NOW + 2 * HOUR)  # nothing personal: as it came


def test_beyond_the_bound_the_oldest_held_status_is_dead_lettered() -> None:
    """With room for two, a third unknown task's status dead-letters the oldest, original bytes and reason."""
    harness = Harness(max_held=2)
    values = [status("CONTACTED", NOW + HOUR, n=n) for n in (7, 8, 9)]
    outcomes = harness.feed(*values)
    letters = [o for o in delivered(outcomes[2]).outputs if o.topic == DLQ]
    assert [letter.value for letter in letters] == [values[0]]
    context = error_context(letters[0].headers)
    assert (context["stage"], context["field"], context["offset"]) == ("ledger", "task_id", "0")
    assert "no RECEIVED" in context["message"]
    assert harness.sample("ubridge_ledger_held_statuses") == 2


def test_tick_emits_a_breach_once() -> None:
    """No contact by 16:00 (4.5 working hours): first_contact WARNING and BREACHED, once."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW))
    assert sla_events(harness.tick(NOW + HOUR)) == []
    first = harness.tick(NOW + 6 * HOUR)
    assert sla_events(first) == [("first_contact", "WARNING"), ("first_contact", "BREACHED")]
    assert entries(first)[0]["emitted"] != []
    assert sla_events(harness.tick(NOW + 6 * HOUR + timedelta(minutes=30))) == []
    assert harness.sample("ubridge_sla_breaches_total", utility="yantai-water") == 1


def test_event_clock_judges_each_task_by_its_own_reports() -> None:
    """With the event clock, wall time does nothing and another task's later report breaches nobody else."""
    harness = Harness(clock="event")
    harness.feed(status("RECEIVED", NOW))
    assert sla_events(harness.tick(NOW + 30 * 24 * HOUR)) == []
    (outcome,) = harness.feed(status("RECEIVED", NOW + 6 * HOUR, n=2))  # task 2 was created at NOW too
    assert sla_events(delivered(outcome).outputs) == []  # evaluated at the next tick, after the batch
    late = [("first_contact", "WARNING"), ("first_contact", "BREACHED")]
    assert sla_events(harness.tick(NOW)) == late  # task 2 only, at its own 16:00
    harness.feed(status("CONTACTED", NOW + 5 * HOUR))
    assert sla_events(harness.tick(NOW)) == [("first_contact", "BREACHED")]  # task 1 contacted late


def test_event_clock_evaluates_after_the_whole_batch() -> None:
    """A batch whose clock jumps before a task's own CONTACTED report does not breach that task."""
    harness = Harness(clock="event")
    harness.feed(status("RECEIVED", NOW + 6 * HOUR, n=3), status("RECEIVED", NOW), status("CONTACTED", NOW + HOUR))
    sla = [decode_event(o) for o in harness.tick(NOW) if o.topic == SLA]
    events = [(e["task_id"], e["rule"], e["kind"]) for e in sla]
    assert (TASK_ID, "first_contact", "MET") in events
    assert (TASK_ID, "first_contact", "BREACHED") not in events


def test_a_new_instance_rebuilds_entries_and_held_statuses_from_the_changelog() -> None:
    """After on_assigned a fresh ledger knows the entry and its emitted events, and still holds statuses."""
    first = Harness()
    first.feed(status("RECEIVED", NOW), status("CONTACTED", NOW + HOUR, n=5))
    first.tick(NOW + 6 * HOUR)
    second = Harness(changelog=first.changelog)
    second.ledger.on_assigned([TopicPartition(STATUS, 0)])
    assert second.ledger.entries[0][TASK_ID] == first.ledger.entries[0][TASK_ID]
    assert second.sample("ubridge_ledger_held_statuses") == 1
    assert sla_events(second.tick(NOW + 7 * HOUR)) == []
    (outcome,) = second.feed(status("RECEIVED", NOW, n=5))
    stages = [[s["stage"] for s in e["stages"]] for e in entries(delivered(outcome).outputs)]
    assert stages == [["RECEIVED", "CONTACTED"]]


def test_a_closed_entry_expires_after_its_retention_with_a_tombstone() -> None:
    """Kept while within retention; then dropped from memory, tombstoned on the changelog and counted."""
    harness = Harness(retention=timedelta(days=2))
    harness.feed(status("RECEIVED", NOW), status("REJECTED", NOW + HOUR, reason="no capacity"))
    assert harness.ledger.entries[0][TASK_ID]["closed"]
    assert harness.tick(NOW + HOUR + timedelta(days=1)) == []
    assert TASK_ID in harness.ledger.entries[0]
    outputs = harness.tick(NOW + HOUR + timedelta(days=2))
    assert [(o.topic, o.key, o.value) for o in outputs] == [(CHANGELOG, TASK_ID.encode(), None)]
    assert harness.ledger.entries[0] == {}
    assert harness.sample("ubridge_ledger_expired_total") == 1
    restored = Harness(changelog=harness.changelog)
    restored.ledger.on_assigned([TopicPartition(STATUS, 0)])
    assert restored.ledger.entries[0] == {}


def test_retention_counts_from_each_closed_task_s_last_event_and_open_tasks_stay() -> None:
    """A task closed later expires later; an open task is never expired, however old."""
    harness = Harness(retention=timedelta(days=1))
    harness.feed(status("RECEIVED", NOW), status("RECEIVED", NOW, n=2), status("RECEIVED", NOW, n=3))
    harness.feed(status("REJECTED", NOW + HOUR, n=2, reason="duplicate"))
    harness.wall.now = NOW + 20 * HOUR
    harness.feed(status("REJECTED", NOW + 20 * HOUR, reason="withdrawn by builder"))
    harness.tick(NOW + HOUR + timedelta(days=1))
    assert set(harness.ledger.entries[0]) == {TASK_ID, "yantai-water-00003"}
    harness.tick(NOW + timedelta(days=300))
    assert set(harness.ledger.entries[0]) == {"yantai-water-00003"}


def test_a_restored_entry_past_its_retention_expires_at_the_first_tick() -> None:
    """A closed entry read back from the changelog after its retention is tombstoned at once."""
    first = Harness()
    first.feed(status("RECEIVED", NOW), status("REJECTED", NOW + HOUR, reason="no capacity"))
    second = Harness(changelog=first.changelog, retention=timedelta(days=3))
    second.ledger.on_assigned([TopicPartition(STATUS, 0)])
    outputs = second.tick(NOW + timedelta(days=10))
    assert (CHANGELOG, TASK_ID.encode(), None) in [(o.topic, o.key, o.value) for o in outputs]
    assert second.ledger.entries[0] == {}


def test_revoked_partitions_are_forgotten() -> None:
    """on_revoked drops the partition's entries and their open-task gauge."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW), partition=1)
    harness.ledger.on_revoked([TopicPartition(STATUS, 1)])
    assert harness.ledger.entries == {}
    assert harness.sample("ubridge_ledger_open_tasks", utility="yantai-water", stage="RECEIVED") == 0
    assert harness.tick(NOW + 6 * HOUR) == []


@pytest.mark.parametrize("value", [b"not avro", b"\xc3\x01" + bytes(8) + b"body"])
def test_an_undecodable_status_is_a_data_error(value: bytes) -> None:
    """Bytes that are not a TaskStatus are dead-lettered."""
    (outcome,) = Harness().feed(value)
    assert isinstance(outcome, DataError)


def test_a_task_no_policy_covers_is_kept_without_clocks() -> None:
    """A task in a region without an SLA policy (Beijing) is in the ledger but never gets SLA events."""
    harness = Harness()
    (outcome,) = harness.feed(status("RECEIVED", NOW, region="110101"))
    assert [e["region_code"] for e in entries(delivered(outcome).outputs)] == ["110101"]
    assert harness.tick(NOW + 30 * HOUR) == []


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (NEW_YEARS_EVE, datetime(2027, 1, 4, 10, tzinfo=SHANGHAI)),  # over the provisional 元旦 and a weekend
        (datetime(2028, 1, 24, 16, tzinfo=SHANGHAI), datetime(2028, 2, 2, 10, tzinfo=SHANGHAI)),  # over 春节 2028
    ],
)
def test_clocks_in_years_without_a_notice_are_provisional(opened: datetime, due: datetime) -> None:
    """A task opened at 16:00 before a provisional holiday breaches 3 working hours later, flagged provisional."""
    harness = Harness()
    harness.wall.now = opened
    harness.feed(status("RECEIVED", opened, created=opened))
    events = [decode_event(o) for o in harness.tick(due + timedelta(hours=1)) if o.topic == SLA]
    assert [("WARNING", True), ("BREACHED", True)] == [(e["kind"], e["provisional_calendar"]) for e in events]
    assert due == events[1]["due_at"]


def test_a_clock_inside_2026_is_not_provisional() -> None:
    """An event whose clock lies wholly in an officially covered year is not flagged."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW))
    events = [decode_event(o) for o in harness.tick(NOW + 6 * HOUR) if o.topic == SLA]
    assert [False, False] == [e["provisional_calendar"] for e in events]


def test_an_unclockable_task_stays_in_the_ledger_marked_and_counted() -> None:
    """Without provisional rules, a clock into 2027 cannot be computed: no crash, no events, the entry says why."""
    harness = Harness(calendar=NO_RULES)
    harness.wall.now = NEW_YEARS_EVE
    (opened,) = harness.feed(status("RECEIVED", NEW_YEARS_EVE, created=NEW_YEARS_EVE))
    (contacted,) = harness.feed(status("CONTACTED", datetime(2027, 1, 4, 9, tzinfo=SHANGHAI), created=NEW_YEARS_EVE))
    entry = harness.ledger.entries[0][TASK_ID]
    assert (True, [], "CONTACTED", 1.0) == (
        "no holiday schedule for 2027" in (entry["unclocked_reason"] or ""),
        sla_events([*delivered(opened).outputs, *delivered(contacted).outputs]),
        entry["stage"],
        harness.sample("ubridge_ledger_unclocked_tasks", utility="yantai-water"),
    )


def test_an_unclocked_task_is_clocked_once_the_calendar_covers_it() -> None:
    """Restarted with a calendar that covers 2027, the ledger clocks the task, emits its events, clears the mark."""
    first = Harness(calendar=NO_RULES)
    first.wall.now = NEW_YEARS_EVE
    first.feed(status("RECEIVED", NEW_YEARS_EVE, created=NEW_YEARS_EVE))
    first.tick(datetime(2027, 1, 4, 11, tzinfo=SHANGHAI))
    second = Harness(changelog=first.changelog)
    second.ledger.on_assigned([TopicPartition(STATUS, 0)])
    assert second.sample("ubridge_ledger_unclocked_tasks", utility="yantai-water") == 1
    outputs = second.tick(datetime(2027, 1, 4, 11, tzinfo=SHANGHAI))
    assert ([("first_contact", "WARNING"), ("first_contact", "BREACHED")], None, 0) == (
        sla_events(outputs),
        entries(outputs)[-1]["unclocked_reason"],
        second.sample("ubridge_ledger_unclocked_tasks", utility="yantai-water"),
    )


def sent_task(**fields: Any) -> dict[str, Any]:
    """The task the sink's RECEIVED of task 1 carries, with ``fields`` changed."""
    task: dict[str, Any] = CODEC.decode_as("TaskStatus", status("RECEIVED", NOW))["task"]
    return {**task, **fields}


def test_a_late_arriving_application_breaches_first_contact_at_once() -> None:
    """Filed four working days before it reached the utility: RECEIVED alone emits the contact breach."""
    harness = Harness()
    (outcome,) = harness.feed(status("RECEIVED", NOW, task=sent_task(application_filed_at=NOW - timedelta(days=6))))
    assert ("first_contact", "BREACHED") in sla_events(delivered(outcome).outputs)


def test_a_cancel_reaching_the_utility_closes_the_clocks_as_cancelled() -> None:
    """The sink's RECEIVED of a CANCEL ends the task: its clocks close CANCELLED and it is no longer open."""
    harness = Harness()
    harness.feed(status("RECEIVED", NOW))
    harness.wall.now = NOW + HOUR
    (outcome,) = harness.feed(status("RECEIVED", NOW + HOUR, task=sent_task(action="CANCEL")))
    outputs = delivered(outcome).outputs
    assert (sorted(sla_events(outputs)), [e["closed"] for e in entries(outputs)]) == (
        [("first_contact", "CANCELLED"), ("total", "CANCELLED")],
        [True],
    )
    assert harness.sample("ubridge_ledger_open_tasks", utility="yantai-water", stage="RECEIVED") == 0
