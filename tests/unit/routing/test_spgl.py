import json
from datetime import UTC, datetime
from typing import Any

import pytest

from routing.errors import DataError
from routing.service_areas import parse_service_areas
from routing.spgl import (
    APPROVALS,
    ATTACHMENTS,
    DETAILS,
    ITEMS,
    NEVER_ARRIVED,
    PROJECTS,
    JoinedRecord,
    JoinFailure,
    JoinOutcome,
    MemoryStore,
    SpglJoiner,
    joined_to_event,
)
from routing.tasks import route_project_event

INGESTED = datetime(2026, 11, 25, 2, 31, 5, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 2, 31, 7, tzinfo=UTC)
CODE = "2026-370602-47-01-000123"
INSTANCE = "37060200011700400012345"
AREAS = parse_service_areas(
    {
        "version": "test",
        "areas": [
            {"utility": "yantai-water", "region_prefix": "3706", "services": ["WATER"]},
            {"utility": "yantai-gas", "region_prefix": "3706", "services": ["GAS"]},
            {"utility": "yantai-heat", "region_prefix": "3706", "services": ["HEAT"]},
        ],
    }
)
COMMON = {"xzqhdm": "370602", "sjyxbs": 1, "sjwxyy": None}
PROJECT: dict[str, Any] = {
    **COMMON,
    "lsh": 1,
    "dfsjzj": "p-1",
    "xmdm": CODE,
    "xmmc": "芝罘区幸福里住宅小区三期",
    "gcdm": f"{CODE}-001",
    "jsdd": "山东省烟台市芝罘区幸福南路18号",
    "jsddxzqh": "370602",
    "jsdw": "烟台市幸福置业有限公司",
    "jsdwdm": "91370602MA3C0X1P4G",
    "jsxz": "新建",
    "ztze": 18000.0,
    "ydmj": 23000.5,
    "jzmj": 56000.0,
}
ITEM: dict[str, Any] = {
    **COMMON,
    "lsh": 2,
    "dfsjzj": "i-1",
    "xmdm": CODE,
    "spsxbm": "000117004",
    "spsxslbm": INSTANCE,
    "spsxmc": "建设工程规划许可证核发",
    "spbmmc": "自然资源和规划局",
    "dybzspjdxh": 2,
    "lxr": "张伟",
    "lxrsjh": "13912345678",
}
APPROVAL: dict[str, Any] = {
    **COMMON,
    "lsh": 3,
    "dfsjzj": "a-1",
    "xmdm": CODE,
    "spsxslbm": INSTANCE,
    "pfwh": "建字第370602202600123号",
    "pfwjbt": "建设工程规划许可证",
    "pfrq": "2026-11-25",
    "fjdz": "https://gcxm.example.gov.cn/files/a.pdf",
    "fjzy": "ab" * 32,
}
DRAWING: dict[str, Any] = {
    **COMMON,
    "lsh": 4,
    "dfsjzj": "f-1",
    "xmdm": CODE,
    "spsxslbm": INSTANCE,
    "fjbh": f"{CODE}-ZP-01",
    "fjmc": "总平面图",
    "fjlx": "图纸",
    "fjdz": "https://gcxm.example.gov.cn/files/zp.pdf",
    "fjzy": "CD" * 32,
}
DETAIL: dict[str, Any] = {
    **COMMON,
    "lsh": 5,
    "dfsjzj": "d-1",
    "spsxslbm": INSTANCE,
    "blzt": 11,
    "blsj": "2026-11-25 10:31:00",
}


def row(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def feed(joiner: SpglJoiner, *rows: tuple[str, dict[str, Any]]) -> list[JoinOutcome]:
    outcomes: list[JoinOutcome] = []
    for table, values in rows:
        outcomes += joiner.add(table, dict(values))
    return outcomes


def everything(joiner: SpglJoiner) -> list[JoinOutcome]:
    return feed(joiner, (PROJECTS, PROJECT), (ITEMS, ITEM), (APPROVALS, APPROVAL), (ATTACHMENTS, DRAWING))


def joined(outcomes: list[JoinOutcome]) -> list[JoinedRecord]:
    assert all(isinstance(outcome, JoinedRecord) for outcome in outcomes)
    return [outcome for outcome in outcomes if isinstance(outcome, JoinedRecord)]


def to_event(record: JoinedRecord) -> Any:
    return joined_to_event(json.loads(json.dumps(record.to_json())), source="gonggai-spgl", ingested_at=INGESTED)


def test_detail_with_known_parents_joins_at_once() -> None:
    """A handling detail whose instance and project are known yields one complete record."""
    joiner = SpglJoiner()
    assert everything(joiner) == []
    [record] = joined(joiner.add(DETAILS, dict(DETAIL)))
    assert (record.project["xmdm"], record.instance["spsxslbm"], record.detail["blzt"]) == (CODE, INSTANCE, 11)
    assert record.record_id == f"370602:{DETAILS}:d-1:5"


def test_out_of_order_detail_is_held_until_both_parents_arrive() -> None:
    """A detail committed before its item instance and project is held, then completed by them."""
    joiner = SpglJoiner()
    assert joiner.add(DETAILS, dict(DETAIL)) == []
    assert joiner.add(ITEMS, dict(ITEM)) == []
    assert joiner.held_count == 1
    [record] = joined(joiner.add(PROJECTS, dict(PROJECT)))
    assert joiner.held_count == 0
    assert record.detail == DETAIL


def test_beyond_the_bound_the_oldest_held_row_fails() -> None:
    """With more than max_held rows waiting, the oldest comes back as a failure naming the missing parent."""
    joiner = SpglJoiner(max_held=2)
    details = [row(DETAIL, lsh=n, dfsjzj=f"d-{n}", spsxslbm=f"{INSTANCE}-{n}") for n in (1, 2, 3)]
    assert feed(joiner, (DETAILS, details[0]), (DETAILS, details[1])) == []
    [failure] = joiner.add(DETAILS, details[2])
    assert isinstance(failure, JoinFailure)
    assert (failure.row, failure.error.field) == (details[0], f"{DETAILS}.spsxslbm")
    assert failure.error.reason.startswith(NEVER_ARRIVED)
    assert joiner.held_count == 2


def test_withdrawn_detail_becomes_a_retraction_that_cancels_the_same_tasks() -> None:
    """A later sjyxbs=0 row for a granted detail yields a retraction whose tasks are cancellations."""
    joiner = SpglJoiner()
    everything(joiner)
    [granted] = joined(joiner.add(DETAILS, dict(DETAIL)))
    withdrawal = row(DETAIL, lsh=9, sjyxbs=0, sjwxyy="数据填报错误，撤回重报")
    [withdrawn] = joined(joiner.add(DETAILS, withdrawal))
    assert (withdrawn.withdrawn_by, withdrawn.withdrawn_reason) == (DETAILS, "数据填报错误，撤回重报")
    created = route_project_event(to_event(granted), AREAS, now=NOW).tasks
    cancelled = route_project_event(to_event(withdrawn), AREAS, now=NOW).tasks
    assert to_event(withdrawn)["retraction"] is True
    assert [(t["task_id"], t["action"]) for t in cancelled] == [(t["task_id"], "CANCEL") for t in created]


def test_withdrawn_item_instance_retracts_its_last_detail() -> None:
    """Withdrawing an item instance is not silent: its last detail comes back as a retraction."""
    joiner = SpglJoiner()
    everything(joiner)
    joiner.add(DETAILS, dict(DETAIL))
    [retraction] = joined(joiner.add(ITEMS, row(ITEM, lsh=10, sjyxbs=0, sjwxyy="办件信息有误，已作废")))
    assert retraction.withdrawn_by == ITEMS
    assert retraction.record_id == f"370602:{ITEMS}:i-1:10>d-1"
    assert to_event(retraction)["retraction"] is True


def test_unchanged_resend_yields_nothing() -> None:
    """A detail pushed again unchanged (same key, new lsh) is an upsert that emits nothing."""
    joiner = SpglJoiner()
    everything(joiner)
    assert len(joiner.add(DETAILS, dict(DETAIL))) == 1
    assert joiner.add(DETAILS, row(DETAIL, lsh=20)) == []


def test_held_rows_survive_a_round_trip_through_json() -> None:
    """to_state/from_state carries held rows across a restart; parents found in the store then complete them."""
    store = MemoryStore()  # stands for the database, which outlives the process
    first = SpglJoiner(max_held=5, store=store)
    first.add(ITEMS, dict(ITEM))
    first.add(DETAILS, dict(DETAIL))
    state = json.loads(json.dumps(first.to_state()))
    second = SpglJoiner.from_state(state, max_held=5, store=store)
    assert (second.retry_held(), second.held_count) == ([], 1)
    [record] = joined(second.add(PROJECTS, dict(PROJECT)))
    assert record.detail == DETAIL


def test_state_of_another_shape_is_refused() -> None:
    """A cursor whose joiner state is not ours fails loudly rather than dropping held rows."""
    with pytest.raises(ValueError, match="held"):
        SpglJoiner.from_state({"version": 99, "held": []})


def test_task_from_spgl_rows_carries_documents_builder_and_contact() -> None:
    """A stage-2 grant joined from SPGL rows routes to three utilities with permits, drawings and contact."""
    joiner = SpglJoiner()
    everything(joiner)
    [record] = joined(joiner.add(DETAILS, dict(DETAIL)))
    event = to_event(record)
    tasks = route_project_event(event, AREAS, now=NOW).tasks
    assert sorted((t["utility_id"], t["kind"]) for t in tasks) == [
        ("yantai-gas", "PRE_INTERVENTION"),
        ("yantai-heat", "PRE_INTERVENTION"),
        ("yantai-water", "PRE_INTERVENTION"),
    ]
    task = tasks[0]
    assert [(d["kind"], d["number"], d["digest"]) for d in task["documents"]] == [
        ("PERMIT", "建字第370602202600123号", "sha256:" + "ab" * 32),
        ("DRAWING", f"{CODE}-ZP-01", "sha256:" + "cd" * 32),
    ]
    assert (task["builder_name"], task["builder_uscc"]) == ("烟台市幸福置业有限公司", "91370602MA3C0X1P4G")
    assert (task["contact_name"], task["contact_mobile"], task["trigger_stage"]) == ("张伟", "13912345678", 2)
    assert (event["item_status"], event["demands"]) == ("GRANTED", [])


@pytest.mark.parametrize(
    ("table", "changes", "field"),
    [
        (ITEMS, {"lxrsjh": "12345"}, f"{ITEMS}.lxrsjh"),
        (PROJECTS, {"jsddxzqh": "379999"}, f"{PROJECTS}.jsddxzqh"),
        (ATTACHMENTS, {"fjzy": "not-a-digest"}, f"{ATTACHMENTS}.fjzy"),
        (DETAILS, {"blsj": "待定"}, f"{DETAILS}.blsj"),
    ],
)
def test_invalid_values_are_data_errors_naming_the_spgl_field(table: str, changes: dict[str, Any], field: str) -> None:
    """Validation failures name the table and column the bad value came from."""
    bases = {PROJECTS: PROJECT, ITEMS: ITEM, APPROVALS: APPROVAL, ATTACHMENTS: DRAWING, DETAILS: DETAIL}
    bases[table] = row(bases[table], **changes)
    joiner = SpglJoiner()
    for name in (PROJECTS, ITEMS, APPROVALS, ATTACHMENTS):
        joiner.add(name, dict(bases[name]))
    [record] = joined(joiner.add(DETAILS, dict(bases[DETAILS])))
    with pytest.raises(DataError) as caught:
        to_event(record)
    assert caught.value.field == field


def test_a_row_without_its_key_fails_at_once() -> None:
    """A row lacking dfsjzj cannot be upserted and is returned as a failure, not held."""
    [failure] = SpglJoiner().add(DETAILS, row(DETAIL, dfsjzj=None))
    assert isinstance(failure, JoinFailure)
    assert failure.error.field == f"{DETAILS}.dfsjzj"
