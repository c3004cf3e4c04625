import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import load_schema
from hypothesis import given
from hypothesis import strategies as st

from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ProjectEvent, Service, UtilityTask
from routing.service_areas import ServiceAreaTable, load_service_areas
from routing.services import shipped_services
from routing.tasks import Routed, project_identity, route_project_event, task_id

ROOT = Path(__file__).parents[3]
AREAS = load_service_areas(ROOT / "deploy" / "config" / "service-areas.yaml")
INGESTED = datetime(2026, 11, 25, 2, 31, 5, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 2, 31, 7, tzinfo=UTC)
PROJECT = "2026-370602-47-01-000123"
RAW: dict[str, Any] = {
    "seq": 17,
    "xmdm": PROJECT,
    "xmmc": "芝罘区幸福里住宅小区三期",
    "jsdd": "山东省烟台市芝罘区幸福南路18号",
    "jsddxzqh": "370602",
    "jsdw": "烟台市幸福置业有限公司",
    "jsdwdm": "91370602MA3C0X1P4A",  # check character should be G: the event carries a soft flag
    "jsxz": "新建",
    "ydmj": 23000.5,
    "jzmj": 56000.0,
    "dybzspjdxh": 2,
    "blzt": 11,
    "blsj": "2026-11-25 10:31:00",
    "lxr": "张伟",
    "lxrsjh": "13912345678",
    "xqxx": [
        {"fwlx": "供水", "gj_mm": 100, "yl": 300.0, "yldw": "m3/d"},
        {"fwlx": "供气", "yl": 60.0, "yldw": "m3/h"},
        {"fwlx": "供热", "grmj": 48000.0},
    ],
    "fjxx": [{"wjlx": "PERMIT", "wjbh": "建字第370602202600123号", "wjmc": "建设工程规划许可证"}],
}


def event(source: str = "gonggai-interface", **changes: Any) -> ProjectEvent:
    """The RAW record with changes, normalised; a value of ``...`` removes the key."""
    record = {key: value for key, value in {**RAW, **changes}.items() if value is not ...}
    return normalise(record, source=source, ingested_at=INGESTED)


def route(ev: ProjectEvent, areas: ServiceAreaTable = AREAS) -> Routed:
    """Route with the demo table at NOW."""
    return route_project_event(ev, areas, now=NOW)


def summary(routed: Routed) -> list[tuple[str, str, str, str]]:
    """(utility, service, kind, action) of each task."""
    return [(t["utility_id"], t["service"], t["kind"], t["action"]) for t in routed.tasks]


def ids(routed: Routed) -> list[str]:
    """The task ids, in order."""
    return [t["task_id"] for t in routed.tasks]


def test_task_id_is_32_hex_and_depends_on_every_part() -> None:
    """The id is deterministic, 32 lowercase hex characters, and changes with each component."""
    base = task_id("gonggai:P", "yantai-gas", "GAS", "PRE_INTERVENTION")
    variants = {
        task_id("gonggai:Q", "yantai-gas", "GAS", "PRE_INTERVENTION"),
        task_id("gonggai:P", "zhaoyuan-gas", "GAS", "PRE_INTERVENTION"),
        task_id("gonggai:P", "yantai-gas", "WATER", "PRE_INTERVENTION"),
        task_id("gonggai:P", "yantai-gas", "GAS", "CONNECT"),
    }
    assert (True, base, 4) == (
        re.fullmatch(r"[0-9a-f]{32}", base) is not None,
        task_id("gonggai:P", "yantai-gas", "GAS", "PRE_INTERVENTION"),
        len(variants - {base}),
    )


def test_project_identity_is_the_project_code() -> None:
    """Approval-system tasks are identified by project, not by event."""
    assert f"gonggai:{PROJECT}" == project_identity(PROJECT)


def test_three_services_at_stage_two_give_three_pre_intervention_tasks() -> None:
    """Water, gas and heat demanded in 芝罘区 → one task each for three different utilities."""
    routed = route(event())
    assert (
        [
            ("yantai-water", "WATER", "PRE_INTERVENTION", "CREATE"),
            ("yantai-gas", "GAS", "PRE_INTERVENTION", "CREATE"),
            ("yantai-heat", "HEAT", "PRE_INTERVENTION", "CREATE"),
        ],
        None,
        3,
    ) == (summary(routed), routed.skipped_reason, len(set(ids(routed))))


def test_stage_one_then_stage_two_yield_the_same_tasks() -> None:
    """The stage-1 and stage-2 grants of one project are the same pre-intervention tasks."""
    stage_1 = route(event(seq=16, dybzspjdxh=1, spsxmc="建设用地规划许可证核发"))
    stage_2 = route(event(seq=17, dybzspjdxh=2))
    assert ids(stage_1) == ids(stage_2)


def test_replays_and_other_sources_yield_the_same_tasks() -> None:
    """Replaying an event, or reading the same grant from another source, maps to the same task ids."""
    first = route(event())
    assert (ids(first), ids(first)) == (ids(route(event())), ids(route(event(source="gonggai-db", seq=9001))))


def test_each_stage_trigger_is_its_own_task() -> None:
    """Construction-ready and connect tasks get ids of their own."""
    kinds = [route(event(dybzspjdxh=stage)) for stage in (2, 3, 4)]
    assert (["PRE_INTERVENTION", "CONSTRUCTION_READY", "CONNECT"], 9) == (
        [routed.tasks[0]["kind"] for routed in kinds],
        len({task for routed in kinds for task in ids(routed)}),
    )


def test_the_most_specific_service_area_wins() -> None:
    """Gas in 招远市 goes to zhaoyuan-gas, water there still to yantai-water."""
    routed = route(event(jsddxzqh="370685", xmdm="2026-370685-47-01-000777"))
    assert [
        ("yantai-water", "WATER", "PRE_INTERVENTION", "CREATE"),
        ("zhaoyuan-gas", "GAS", "PRE_INTERVENTION", "CREATE"),
        ("yantai-heat", "HEAT", "PRE_INTERVENTION", "CREATE"),
    ] == summary(routed)


def test_a_complete_task_record() -> None:
    """A task copies the project, contact, documents and provenance, with its demand and fresh defaults."""
    ev = event()
    expected: UtilityTask = {
        "task_id": task_id(f"gonggai:{PROJECT}", "yantai-water", "WATER", "PRE_INTERVENTION"),
        "kind": "PRE_INTERVENTION",
        "action": "CREATE",
        "utility_id": "yantai-water",
        "service": "WATER",
        "demand": {
            "service": "WATER",
            "pipe_diameter_mm": 100,
            "load": 300.0,
            "load_unit": "m3/d",
            "heated_area_m2": None,
        },
        "project_code": PROJECT,
        "project_name": "芝罘区幸福里住宅小区三期",
        "region_code": "370602",
        "site_address": "山东省烟台市芝罘区幸福南路18号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": "91370602MA3C0X1P4A",
        "contact_name": "张伟",
        "contact_mobile": "13912345678",
        "project_nature": "新建",
        "floor_area_m2": 56000.0,
        "land_area_m2": 23000.5,
        "trigger_stage": 2,
        "documents": [
            {
                "kind": "PERMIT",
                "number": "建字第370602202600123号",
                "title": "建设工程规划许可证",
                "url": None,
                "digest": None,
            }
        ],
        "missing_materials": [],
        "application_id": None,
        "source": "gonggai-interface",
        "source_event_id": ev["event_id"],
        "occurred_at": datetime(2026, 11, 25, 2, 31, tzinfo=UTC),
        "ingested_at": INGESTED,
        "created_at": NOW,
        "contact_due": None,
        "contact_due_note": None,
        "flags": ["builder_uscc:check_character_mismatch"],
        "application_filed_at": None,
        "application_kind": None,
        "permit_granted_at": datetime(2026, 11, 25, 2, 31, tzinfo=UTC),
        "revision": 0,
        "materials_to_fetch": [],
        "dropped_materials": [],
        "user_category": "ENTERPRISE",  # a credit code of type 91
        "work_order_id": None,
        "answer_due": None,
        "complaint": None,
    }
    assert expected == route(ev).tasks[0]


def test_tasks_are_complete_avro_records() -> None:
    """Every task has every UtilityTask key and round-trips through fastavro."""
    schema = load_schema(str(ROOT / "schemas" / "ubridge.v1.UtilityTask.avsc"))
    tasks = route(event()).tasks + route(event(xqxx=...)).tasks
    decoded = []
    for task in tasks:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, task)
        buffer.seek(0)
        decoded.append(fastavro.schemaless_reader(buffer, schema))
    assert ([set(UtilityTask.__annotations__)] * len(tasks), tasks) == (
        [set(task) for task in tasks],
        decoded,
    )


def test_tasks_do_not_share_mutable_parts_with_the_event() -> None:
    """Changing a task's demand, documents or flags leaves the event as it was."""
    ev = event()
    before = {
        **ev,
        "demands": [dict(d) for d in ev["demands"]],
        "documents": [dict(d) for d in ev["documents"]],
    }
    task = route(ev).tasks[0]
    assert task["demand"] is not None
    task["demand"]["load"] = 0.0
    task["documents"][0]["title"] = "changed"
    task["flags"].append("changed")
    assert before == ev


def test_unknown_demand_goes_to_every_covering_utility() -> None:
    """Without xqxx, each covering utility gets a task with demand None and the areas to estimate from."""
    routed = route(event(xqxx=..., jsddxzqh="370685", xmdm="2026-370685-47-01-000777"))
    assert (
        [
            ("yantai-water", "WATER", None, 56000.0, 23000.5, "新建"),
            ("zhaoyuan-gas", "GAS", None, 56000.0, 23000.5, "新建"),
            ("yantai-heat", "HEAT", None, 56000.0, 23000.5, "新建"),
        ]
    ) == [
        (
            t["utility_id"],
            t["service"],
            t["demand"],
            t["floor_area_m2"],
            t["land_area_m2"],
            t["project_nature"],
        )
        for t in routed.tasks
    ]


def test_unserved_services_are_flagged_on_the_served_ones() -> None:
    """In 聊城 nobody serves heat: water and gas tasks carry unserved_service:HEAT after the event's flags."""
    routed = route(event(jsddxzqh="371502", xmdm="2026-371502-47-01-000001"))
    assert [
        ("liaocheng-water", ["builder_uscc:check_character_mismatch", "unserved_service:HEAT"]),
        ("liaocheng-gas", ["builder_uscc:check_character_mismatch", "unserved_service:HEAT"]),
    ] == [(t["utility_id"], t["flags"]) for t in routed.tasks]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"xqxx": [{"fwlx": "供水"}, {"fwlx": "供气"}]},
            "no utility serves region 370202 for WATER, GAS",
        ),
        ({"xqxx": ...}, "no utility serves region 370202 for WATER, GAS, HEAT, POWER, TELECOM"),
    ],
)
def test_a_site_nobody_serves_is_a_data_error(changes: dict[str, Any], reason: str) -> None:
    """青岛 is unserved in the demo: a trigger there is dead-lettered with the region and services."""
    with pytest.raises(DataError) as caught:
        route(event(jsddxzqh="370202", xmdm="2026-370202-47-01-000001", **changes))
    assert ("region_code", reason) == (caught.value.field, caught.value.reason)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"blzt": 1}, "not_granted:RECEIVED"),
        ({"blzt": 13}, "not_granted:REFUSED"),
        ({"blzt": 7}, "not_granted:IN_PROGRESS"),
        ({"dybzspjdxh": 5}, "stage_without_task:5"),
        ({"blzt": 13, "sjyxbs": 0}, "not_granted:REFUSED"),
        ({"dybzspjdxh": 5, "jsddxzqh": "370202", "xmdm": "2026-370202-47-01-000001"}, "stage_without_task:5"),
    ],
)
def test_non_triggers_give_no_tasks_and_a_reason(changes: dict[str, Any], reason: str) -> None:
    """Events that trigger nothing (even unserved ones) are skipped with the trigger's reason."""
    assert Routed([], reason) == route(event(**changes))


def test_a_retraction_cancels_the_same_tasks() -> None:
    """A withdrawn triggering record yields the same task ids with action CANCEL."""
    created = route(event())
    cancelled = route(event(seq=18, sjyxbs=0))
    assert (ids(created), ["CANCEL"] * 3) == (ids(cancelled), [t["action"] for t in cancelled.tasks])


def test_a_service_demanded_twice_is_a_data_error() -> None:
    """One task per service: an event demanding a service twice is rejected, not silently merged."""
    ev = event()
    ev["demands"] = [*ev["demands"], {**ev["demands"][0]}]
    with pytest.raises(DataError) as caught:
        route(ev)
    assert ("demands", "WATER is demanded twice; one demand per service expected") == (
        caught.value.field,
        caught.value.reason,
    )


def test_a_naive_now_is_refused() -> None:
    """created_at must be an aware timestamp."""
    with pytest.raises(ValueError, match="timezone-aware"):
        route_project_event(event(), AREAS, now=datetime(2026, 11, 25))  # noqa: DTZ001 - the point of the test


regions = st.sampled_from(["370602", "370685", "370102", "371502", "371503", "370202", "370303"])


@given(regions, st.lists(st.sampled_from(shipped_services().codes), unique=True))
def test_routing_agrees_with_the_table(region: str, services: list[Service]) -> None:
    """Tasks go to the table's utilities, one per served service with distinct ids, or fail as data."""
    ev = event(jsddxzqh=region, xmdm=f"2026-{region}-47-01-000001", xqxx=[{"fwlx": s} for s in services])
    wanted = services or list(shipped_services().codes)
    served = [(AREAS.utility_for(region, s), s) for s in wanted if AREAS.utility_for(region, s) is not None]
    try:
        routed = route(ev)
    except DataError:
        assert [] == served
    else:
        assert (served, len(served)) == (
            [(t["utility_id"], t["service"]) for t in routed.tasks],
            len(set(ids(routed))),
        )


@pytest.mark.parametrize(
    ("uscc", "category"),
    [("92370602MA3C0PXL7Q", "INDIVIDUAL_BUSINESS"), ("12370600MB28361230", "PUBLIC_SERVICE"), (None, None)],
)
def test_a_task_carries_the_category_its_builders_credit_code_gives(uscc: str | None, category: str | None) -> None:
    """002's ledger by category: the builder's credit code type says which; no code, no category (never a guess)."""
    ev = event()
    ev["builder_uscc"] = uscc
    assert {task["user_category"] for task in route(ev).tasks} == {category}
