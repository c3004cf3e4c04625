from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.router.stage import ProjectRouter
from connectors.runtime.interface import Delivered, Output
from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import UtilityTask
from routing.service_areas import load_service_areas
from routing.withdrawals import NO_STANDING_GRANT, decode_standing
from schemas import Codec

ROOT = Path(__file__).parents[3]
AREAS = load_service_areas(ROOT / "deploy" / "config" / "service-areas.yaml")
CODEC = Codec.default()
EVENTS, GRANTS = "events", "grants"
TASKS = "tasks.yantai-water"  # the utility of the events below
PROJECT = "2026-370602-47-01-000123"
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


class FakeGrants:
    """Collects the router's grants-topic outputs and reads them back per partition, latest per key."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, ConsumerRecord]]:
        result: dict[int, dict[bytes, ConsumerRecord]] = {p: {} for p in partitions}
        for offset, out in enumerate(self.outputs):
            if out.partition not in result or out.key is None:
                continue
            if out.value is None:
                result[out.partition].pop(out.key, None)
            else:
                result[out.partition][out.key] = record(out.value, offset, partition=out.partition, topic=GRANTS)
        return result


def record(value: bytes, offset: int, *, partition: int = 1, topic: str = EVENTS) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, -1, offset, 0, 0, PROJECT.encode(), value, [], None, 0, 0, 0)


def event(seq: int, stage: int, instance: str, *, withdrawn: bool = False, **raw: Any) -> bytes:
    """A granted approval-system event of PROJECT (water only, 芝罘区), encoded."""
    fields = {
        "seq": seq,
        "xmdm": PROJECT,
        "xmmc": "幸福里三期",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": stage,
        "spsxslbm": instance,
        "blzt": 11,
        "blsj": f"2026-11-2{stage} 10:00:00",
        "sjyxbs": 0 if withdrawn else 1,
        "xqxx": [{"fwlx": "供水"}],
        **raw,
    }
    return CODEC.encode("ProjectEvent", dict(normalise(fields, source="gonggai-interface", ingested_at=INGESTED)))


class Run:
    """A router over the fake grants topic, fed records one at a time at increasing offsets."""

    def __init__(self, grants: FakeGrants) -> None:
        self.grants = grants
        self.router = ProjectRouter(
            input_topic=EVENTS,
            task_topic="tasks.{}".format,
            grants_topic=GRANTS,
            areas=AREAS,
            codec=CODEC,
            reader=grants,
        )
        self.router.on_assigned([TopicPartition(EVENTS, 1)])
        self.offset = 0

    def feed(self, value: bytes) -> Delivered | DataError:
        self.offset += 1
        (outcome,) = self.router.process([record(value, self.offset)])
        if isinstance(outcome, Delivered):
            self.grants.outputs += [o for o in outcome.outputs if o.topic == GRANTS]
        return outcome


def tasks(outcome: Delivered | DataError) -> list[UtilityTask]:
    """The tasks an outcome sends."""
    assert isinstance(outcome, Delivered)
    return [
        cast(UtilityTask, CODEC.decode_as("UtilityTask", o.value or b"")) for o in outcome.outputs if o.topic == TASKS
    ]


def actions(outcome: Delivered | DataError) -> list[tuple[str, int | None]]:
    """(action, trigger stage) of each task sent."""
    return [(t["action"], t["trigger_stage"]) for t in tasks(outcome)]


def test_withdrawing_stage_1_while_stage_2_stands_sends_an_update_as_stage_2() -> None:
    """The reported case through the stage: grant 1, grant 2, withdraw 1 → UPDATE reflecting stage 2."""
    run = Run(FakeGrants())
    assert actions(run.feed(event(1, 1, "SL-1"))) == [("CREATE", 1)]
    assert actions(run.feed(event(2, 2, "SL-2"))) == [("CREATE", 2)]
    (update,) = tasks(run.feed(event(3, 1, "SL-1", withdrawn=True)))
    assert (update["action"], update["trigger_stage"], update["flags"][-1]) == (
        "UPDATE",
        2,
        "grant_withdrawn:instance:SL-1",
    )


def test_the_last_withdrawal_cancels_and_tombstones_the_entry() -> None:
    """With one grant standing, its withdrawal sends CANCEL and a tombstone for the task's entry."""
    run = Run(FakeGrants())
    (created,) = tasks(run.feed(event(1, 1, "SL-1")))
    outcome = run.feed(event(2, 1, "SL-1", withdrawn=True))
    assert actions(outcome) == [("CANCEL", 1)]
    assert isinstance(outcome, Delivered)
    assert [(o.topic, o.key, o.value, o.partition) for o in outcome.outputs[1:]] == [
        (GRANTS, created["task_id"].encode(), None, 1)
    ]
    assert run.router.standing == {1: {}}


def test_the_task_goes_out_before_the_entry_that_records_it() -> None:
    """A grant's outputs: the task first, then the grants entry, in the input record's partition."""
    outcome = Run(FakeGrants()).feed(event(1, 1, "SL-1"))
    assert isinstance(outcome, Delivered)
    assert [(o.topic, o.partition) for o in outcome.outputs] == [(TASKS, None), (GRANTS, 1)]


def test_a_withdrawal_of_a_grant_never_seen_is_filtered_not_a_cancel() -> None:
    """A withdrawal with nothing standing behind its task sends nothing and says why."""
    outcome = Run(FakeGrants()).feed(event(1, 1, "SL-1", withdrawn=True))
    assert outcome == Delivered(filtered_reason=NO_STANDING_GRANT)


def test_withdrawing_an_unrelated_grant_of_the_project_changes_nothing() -> None:
    """Another item's withdrawal does not touch the task its project's other grant stands behind."""
    run = Run(FakeGrants())
    run.feed(event(1, 2, "SL-2"))
    assert run.feed(event(2, 1, "SL-9", withdrawn=True)) == Delivered(filtered_reason=NO_STANDING_GRANT)
    assert actions(run.feed(event(3, 2, "SL-2", withdrawn=True))) == [("CANCEL", 2)]


def test_a_duplicate_grant_resends_the_same_task_and_writes_no_entry() -> None:
    """The same grant again re-sends the same task (same id) and leaves the grants topic alone."""
    run = Run(FakeGrants())
    first, again = run.feed(event(1, 1, "SL-1")), run.feed(event(1, 1, "SL-1"))
    assert isinstance(again, Delivered)
    assert [o.topic for o in again.outputs] == [TASKS]
    assert [t["task_id"] for t in tasks(again)] == [t["task_id"] for t in tasks(first)]


def test_a_re_grant_after_the_cancel_creates_again() -> None:
    """Granted, withdrawn (CANCEL), granted again: CREATE."""
    run = Run(FakeGrants())
    run.feed(event(1, 1, "SL-1"))
    run.feed(event(2, 1, "SL-1", withdrawn=True))
    assert actions(run.feed(event(3, 1, "SL-1"))) == [("CREATE", 1)]


def test_a_new_instance_rebuilds_the_standing_grants_from_the_topic() -> None:
    """After a restart the standing grants come back from the grants topic: the withdrawal still updates."""
    grants = FakeGrants()
    first = Run(grants)
    first.feed(event(1, 1, "SL-1"))
    first.feed(event(2, 2, "SL-2"))
    restarted = Run(grants)
    assert decode_standing(grants.outputs[-1].value or b"").keys() == {"instance:SL-1", "instance:SL-2"}
    assert actions(restarted.feed(event(3, 1, "SL-1", withdrawn=True))) == [("UPDATE", 2)]
    assert actions(restarted.feed(event(4, 2, "SL-2", withdrawn=True))) == [("CANCEL", 2)]


def test_revoked_partitions_are_forgotten_and_rebuilt_on_assignment() -> None:
    """A revoked partition's grants are dropped; assigned again, they are read back."""
    run = Run(FakeGrants())
    run.feed(event(1, 1, "SL-1"))
    run.router.on_revoked([TopicPartition(EVENTS, 1)])
    assert run.router.standing == {}
    run.router.on_assigned([TopicPartition(EVENTS, 1)])
    assert [set(entry) for entry in run.router.standing[1].values()] == [{"instance:SL-1"}]


def test_an_unreadable_entry_is_left_out_and_the_rest_restored() -> None:
    """A grants-topic value that is not a set of grants is skipped (and logged); the others load."""
    grants = FakeGrants()
    (created,) = tasks(Run(grants).feed(event(1, 1, "SL-1")))
    grants.outputs.append(Output(GRANTS, b"broken", b"not json", partition=1))
    assert list(Run(grants).router.standing[1]) == [created["task_id"]]


def test_events_that_trigger_nothing_are_filtered_as_before() -> None:
    """A refused item and a stage-5 grant trigger nothing, with the triggers' reasons."""
    run = Run(FakeGrants())
    assert run.feed(event(1, 1, "SL-1", blzt=13)) == Delivered(filtered_reason="not_granted:REFUSED")
    assert run.feed(event(2, 5, "SL-5")) == Delivered(filtered_reason="stage_without_task:5")
