"""Services are data (issue 18 item 3): services.yaml, and power and telecom through router, form, policy, figures."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.aishandong.rules import load_application_rules
from routing.aishandong import application_tasks, parse_application
from routing.calendar import load_calendar
from routing.errors import DataError
from routing.gonggai import normalise
from routing.service_areas import ServiceAreaTable, parse_service_areas
from routing.services import ServiceTable, load_service_table, shipped_services
from routing.sla_policy import parse_policies
from routing.supervision import TaskFacts, figures_of
from routing.tasks import route_project_event

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"
NOW = datetime(2026, 11, 25, 2, 1, tzinfo=UTC)
# a site in 芝罘区 served for all five services, the power and telecom rows next to the shipped three
AREAS = parse_service_areas(
    {
        "version": "t",
        "areas": [
            {"utility": "yantai-water", "region_prefix": "3706", "services": ["WATER"]},
            {"utility": "yantai-gas", "region_prefix": "3706", "services": ["GAS"]},
            {"utility": "yantai-power", "region_prefix": "3706", "services": ["POWER"]},
            {"utility": "yantai-telecom", "region_prefix": "3706", "services": ["TELECOM"]},
        ],
    }
)


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def shipped_doc() -> dict[str, Any]:
    return dict(yaml.safe_load((CONFIG / "services.yaml").read_text(encoding="utf-8")))


def test_the_shipped_table_names_the_five_linked_services() -> None:
    """水电气暖信: WATER 供水, GAS 供气, HEAT 供热, POWER 供电, TELECOM 通信, in that order."""
    table = shipped_services()
    assert [(code, table.name(code)) for code in table.codes] == [
        ("WATER", "供水"),
        ("GAS", "供气"),
        ("HEAT", "供热"),
        ("POWER", "供电"),
        ("TELECOM", "通信"),
    ]


@pytest.mark.parametrize(
    ("words", "code"),
    [
        ("供电", "POWER"),
        ("power", "POWER"),
        ("用电", "POWER"),
        ("信息", "TELECOM"),
        ("燃气", "GAS"),
        (" 供水 ", "WATER"),
    ],
)
def test_a_service_is_found_by_code_name_or_synonym(words: str, code: str) -> None:
    """The code, the Chinese or English name and every synonym name the same service."""
    assert shipped_services().of_words(words, "fwlx") == code


def test_words_for_no_service_are_a_data_error_listing_the_configured_ones() -> None:
    """供油 names no service; the error lists every configured one."""
    with pytest.raises(DataError) as caught:
        shipped_services().of_words("供油", "fwlx")
    assert (caught.value.field, "供电/通信" in caught.value.reason) == ("fwlx", True)


def test_a_configured_service_is_checked_with_a_spelling_hint() -> None:
    """POWR is refused with a hint at POWER; POWER passes."""
    table = shipped_services()
    with pytest.raises(DataError, match="did you mean 'POWER'"):
        table.check("POWR", "service")
    assert table.check("POWER", "service") == "POWER"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"services": {"power": {"name": "供电", "english": "power"}}}, "services.power.[key]: String should match"),
        ({"services": {"POWER": {"name": "供电"}}}, "services.POWER.english: Field required"),
        ({"services": {"POWER": {"name": "供电", "english": "power", "colour": "red"}}}, "services.POWER.colour"),
        ({"services": {}}, "services: Dictionary should have at least 1 item"),
        (
            {
                "services": {
                    "A": {"name": "供电", "english": "a"},
                    "B": {"name": "电", "english": "b", "words": ["供电"]},
                }
            },
            "services.B: '供电' also means A",
        ),
        ({"source": None}, "source: Input should be"),
    ],
)
def test_bad_service_files_name_the_file_and_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    """A wrong services.yaml is refused at load, naming the file and the bad key."""
    path = write(tmp_path, shipped_doc() | change)
    with pytest.raises(ValueError, match=r"services\.yaml") as caught:
        load_service_table(path)
    assert message in str(caught.value)


def test_a_table_loaded_from_a_file_is_the_shipped_one() -> None:
    """The loader and the cached shipped table agree."""
    assert load_service_table(CONFIG / "services.yaml") == shipped_services()
    assert isinstance(shipped_services(), ServiceTable)


def test_a_project_needing_power_and_telecom_goes_to_their_utilities() -> None:
    """工改 demands for 供电 and 通信 become tasks for the power utility and the telecom operator."""
    raw = {
        "seq": 1,
        "xmdm": "2026-370602-47-01-000777",
        "xmmc": "幸福里四期",
        "jsdd": "芝罘区幸福南路20号",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": 2,
        "blzt": 11,
        "blsj": "2026-11-25 10:31:00",
        "xqxx": [{"fwlx": "供电"}, {"fwlx": "通信"}],
    }
    event = normalise(raw, source="gonggai-interface", ingested_at=NOW)
    routed = route_project_event(event, AREAS, now=NOW)
    assert [(t["utility_id"], t["service"]) for t in routed.tasks] == [
        ("yantai-power", "POWER"),
        ("yantai-telecom", "TELECOM"),
    ]


def test_a_project_without_demands_reaches_every_configured_service_served_there() -> None:
    """No demands: one task per service the site is served for, power and telecom included, in config order."""
    served = [service for _, service in AREAS.coverage("370602")]
    assert served == ["WATER", "GAS", "POWER", "TELECOM"]


def test_the_aishandong_form_takes_power_and_telecom() -> None:
    """An 爱山东 package naming 供电 and 通信 gives a task for each, to the power utility and the telecom operator."""
    rules = load_application_rules(CONFIG / "aishandong.yaml")
    form = {
        "sqbh": "AS2026112500009",
        "sqlx": "报装",
        "fwlx": ["供电", "通信"],
        "sqrlx": "企业",
        "sqrxm": "烟台市幸福置业有限公司",
        "tyshxydm": "91370602MA3C0X1P4G",
        "lxdh": "13912345678",
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路18号",
        "sqsj": "2026-11-25 09:00:00",
    }
    app = parse_application(form, ingested_at=NOW, vocabulary=rules.vocabulary)
    calendar = load_calendar(CONFIG / "calendar.yaml")
    tasks = application_tasks(app, AREAS, calendar, now=NOW, project=None, shared_materials=rules.shared_materials)
    assert (app["services"], [t["utility_id"] for t in tasks]) == (
        ["POWER", "TELECOM"],
        ["yantai-power", "yantai-telecom"],
    )


def policy_doc(services: list[str]) -> dict[str, Any]:
    doc = dict(yaml.safe_load((CONFIG / "sla-policies.yaml").read_text(encoding="utf-8")))
    rule = dict(doc["rules"][0]) | {"id": "power-contact", "services": services, "overrides": []}
    return doc | {"rules": [*doc["rules"], rule]}


def test_a_policy_may_name_power() -> None:
    """A rule for POWER loads and governs a power task in its regions."""
    doc = policy_doc(["POWER"])
    book = parse_policies(doc, origin="sla-policies.yaml")
    rule = doc["rules"][-1]
    kind = rule["task_kinds"][0]
    application_kind = (rule.get("application_kinds") or [None])[0]
    region = str(rule["regions"][0]).ljust(6, "0")
    governing = book.governing(kind=kind, application_kind=application_kind, service="POWER", region_code=region)
    assert "power-contact" in [g.rule.id for g in governing]


def test_a_policy_naming_an_unknown_service_is_refused_at_load() -> None:
    """OIL is configured nowhere: the policy file is refused, naming the rule's key."""
    with pytest.raises(ValueError, match=r"rules\[\d+\]\.services\[0\]: .*unknown service 'OIL'"):
        parse_policies(policy_doc(["OIL"]), origin="sla-policies.yaml")


def test_supervision_figures_count_a_power_utility_under_its_name() -> None:
    """A POWER task is counted for its utility, labelled 供电, next to the water utility's."""
    base = TaskFacts("t", "yantai-water", "WATER", "APPLICATION", "370602", NOW, None, False, (), ())
    facts = [
        base,
        replace(base, task_id="p1", utility_id="yantai-power", service="POWER"),
        replace(base, task_id="p2", utility_id="yantai-power", service="POWER"),
    ]
    figures = figures_of(facts, now=NOW)
    assert [(g.key, g.label, g.tasks) for g in figures.by_utility] == [
        ("yantai-power", "yantai-power（供电）", 2),
        ("yantai-water", "yantai-water（供水）", 1),
    ]


def test_a_service_area_row_for_power_is_accepted_and_serves_it() -> None:
    """service-areas.yaml may name any configured service."""
    assert isinstance(AREAS, ServiceAreaTable) and AREAS.utility_for("370602", "TELECOM") == "yantai-telecom"
