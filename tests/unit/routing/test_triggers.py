from datetime import UTC, datetime
from typing import Any

import pytest

from routing.gonggai import normalise
from routing.records import ItemStatus, ProjectEvent, TaskKind
from routing.triggers import Trigger, task_kind_for, trigger_for

BASE = normalise(
    {
        "seq": 1,
        "xmdm": "2026-370602-47-01-000123",
        "xmmc": "幸福里三期",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": 1,
        "blzt": 11,
        "blsj": "2026-11-25 10:31:00",
    },
    source="gonggai-interface",
    ingested_at=datetime(2026, 11, 25, tzinfo=UTC),
)


def event(stage: int, status: ItemStatus, **changes: Any) -> ProjectEvent:
    """A canonical event at ``stage`` with ``status``."""
    return {**BASE, "stage": stage, "item_status": status, **changes}


GRANTED_TABLE: list[tuple[int, Trigger]] = [
    (1, Trigger("PRE_INTERVENTION", None)),
    (2, Trigger("PRE_INTERVENTION", None)),
    (3, Trigger("CONSTRUCTION_READY", None)),
    (4, Trigger("CONNECT", None)),
    (5, Trigger(None, "stage_without_task:5")),
    (0, Trigger(None, "unknown_stage:0")),
    (6, Trigger(None, "unknown_stage:6")),
]


@pytest.mark.parametrize(("stage", "trigger"), GRANTED_TABLE)
def test_granted_items_trigger_by_stage(stage: int, trigger: Trigger) -> None:
    """A granted item triggers the kind its stage calls for, or says why not."""
    assert trigger == trigger_for(event(stage, "GRANTED"))


@pytest.mark.parametrize("stage", [0, 1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("status", ["RECEIVED", "IN_PROGRESS", "REFUSED"])
def test_items_not_granted_never_trigger(stage: int, status: ItemStatus) -> None:
    """Received, in-progress and refused items trigger nothing at any stage."""
    assert Trigger(None, f"not_granted:{status}") == trigger_for(event(stage, status))


@pytest.mark.parametrize(("stage", "trigger"), GRANTED_TABLE)
def test_retractions_are_judged_like_the_record_they_withdraw(stage: int, trigger: Trigger) -> None:
    """The retraction flag does not change the trigger decision."""
    assert trigger == trigger_for(event(stage, "GRANTED", retraction=True))


@pytest.mark.parametrize(
    ("stage", "status", "kind"),
    [
        (2, "GRANTED", "PRE_INTERVENTION"),
        (4, "GRANTED", "CONNECT"),
        (5, "GRANTED", None),
        (3, "REFUSED", None),
    ],
)
def test_task_kind_for_is_the_kind_alone(stage: int, status: ItemStatus, kind: TaskKind | None) -> None:
    """task_kind_for returns just the kind of trigger_for."""
    assert kind == task_kind_for(event(stage, status))
