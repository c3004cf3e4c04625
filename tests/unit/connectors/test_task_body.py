"""A task's request body: the standard library's compact JSON of the task, times to the millisecond in UTC."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.utility.payload import task_body
from routing.records import UtilityTask
from tests.support import make_task


def _standard(task: dict[str, object]) -> bytes:
    """The body as the standard library writes it (what earlier releases sent)."""

    def instant(value: object) -> str:
        assert isinstance(value, datetime)  # the only non-JSON type a task holds
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return json.dumps(task, ensure_ascii=False, default=instant, separators=(",", ":")).encode()


def test_a_task_body_is_byte_for_byte_the_standard_librarys() -> None:
    """Chinese text unescaped, compact separators, nested records and lists, times with milliseconds and Z."""
    for number in range(50):
        task = dict(make_task("yantai-water", number, project=f"2026-370602-47-01-{number:06d}"))
        task["project_name"] = '烟台市芝罘区供水管网工程 "二期"\n'
        task["created_at"] = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC) + timedelta(seconds=number)
        task["demand"] = {"service": "WATER", "pipe_diameter_mm": 100 + number, "load": 12.5 * number}
        task["documents"] = [{"kind": "PERMIT", "title": f"施工许可证 {number}", "url": None, "digest": None}]
        task["floor_area_m2"] = 0.1 * number + 1234.5678
        assert task_body(task) == _standard(task)  # type: ignore[arg-type]


def test_a_time_in_another_zone_keeps_its_offset() -> None:
    """Only UTC is written as Z; an aware time elsewhere keeps its offset, as before."""
    task = dict(make_task("yantai-water", 1))
    task["created_at"] = datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    assert json.loads(task_body(task))["created_at"] == "2026-11-25T10:00:00.000+08:00"  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [2**70, -(2**64)])
def test_what_orjson_refuses_the_standard_library_writes(value: int) -> None:
    """An integer beyond 64 bits still makes a body, the standard library's."""
    task: UtilityTask = {**make_task("yantai-water", 1), "pipe_diameter_mm": value}  # type: ignore[typeddict-item]
    assert task_body(task) == _standard(dict(task))


def test_a_value_json_cannot_hold_is_a_type_error() -> None:
    """A value of no JSON type is refused with the type named, as the standard library refused it."""
    task = {**make_task("yantai-water", 1), "pipe_diameter_mm": {1, 2}}
    with pytest.raises(TypeError, match="set"):
        task_body(task)  # type: ignore[arg-type]
