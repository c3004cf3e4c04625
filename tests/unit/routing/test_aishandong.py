"""爱山东 applications: parsing, validation reasons, masking, tasks per service, contact deadline, materials."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.aishandong.rules import load_application_rules
from routing.aishandong import PROJECT_NOT_FOUND_FLAG, application_tasks, materials_to_fetch, parse_application
from routing.calendar import WorkingCalendar, load_calendar
from routing.errors import DataError
from routing.records import ConnectionApplication, ProjectEvent
from routing.service_areas import ServiceAreaTable, load_service_areas
from routing.tasks import task_id
from simulators.aishandong import id_check_character, make_applications

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
SHANGHAI = ZoneInfo("Asia/Shanghai")
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 2, 1, tzinfo=UTC)
ID_NUMBER = "11010519491231002X"
MOBILE = "13912345678"
RULES = load_application_rules(CONFIG / "aishandong.yaml")
SHARED = RULES.shared_materials
DIGEST = "ab" * 32


def raw(**changes: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "sqbh": "AS2026112500001",
        "sqlx": "报装",
        "fwlx": ["供水"],
        "sqrlx": "个人",
        "sqrxm": "张伟",
        "sfzhm": ID_NUMBER,
        "lxdh": MOBILE,
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路18号",
        "sqsj": "2026-11-25 09:00:00",
        "cl": [{"lx": "图纸", "bh": "T-1", "mc": "总平面图", "url": "https://example.cn/t1", "sha256": DIGEST}],
        "bz": "请尽快联系",
    }
    app.update(changes)
    return {k: v for k, v in app.items() if v is not ...}


@pytest.fixture(scope="module")
def areas() -> ServiceAreaTable:
    return load_service_areas(CONFIG / "service-areas.yaml")


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return load_calendar(CONFIG / "calendar.yaml")


def parse(**changes: Any) -> ConnectionApplication:
    return parse_application(raw(**changes), ingested_at=INGESTED, vocabulary=RULES.vocabulary)


def project(code: str = "2026-370602-47-01-000123") -> ProjectEvent:
    return {
        "event_id": "e1",
        "source": "gonggai-interface",
        "source_record_id": "1",
        "project_code": code,
        "project_name": "幸福里三期",
        "region_code": "370602",
        "site_address": "幸福南路18号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": "91370600MA3C5H1X2Q",
        "contact_name": None,
        "contact_mobile": None,
        "stage": 3,
        "item_code": None,
        "item_instance_code": None,
        "item_name": None,
        "item_status": "GRANTED",
        "retraction": False,
        "occurred_at": INGESTED,
        "ingested_at": INGESTED,
        "time_zone": "Asia/Shanghai",
        "project_nature": "新建",
        "floor_area_m2": 56000.0,
        "land_area_m2": 23000.0,
        "investment_10k_cny": None,
        "demands": [
            {"service": "GAS", "pipe_diameter_mm": 100, "load": 60.0, "load_unit": "m3/h", "heated_area_m2": None}
        ],
        "documents": [{"kind": "PERMIT", "number": "P-1", "title": "施工许可证", "url": None, "digest": None}],
        "flags": [],
    }


def test_parses_a_person_application_into_the_canonical_record() -> None:
    """A 点单式 报装 by a person maps every field; the Shanghai filing time becomes UTC."""
    app = parse()
    assert app["application_id"] == "AS2026112500001"
    assert (app["kind"], app["services"], app["applicant_type"]) == ("CONNECTION", ["WATER"], "PERSON")
    assert (app["applicant_id_number"], app["applicant_mobile"], app["applicant_uscc"]) == (ID_NUMBER, MOBILE, None)
    assert app["filed_at"] == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert app["ingested_at"] == INGESTED and app["time_zone"] == "Asia/Shanghai"
    assert app["materials"] == [
        {
            "kind": "DRAWING",
            "number": "T-1",
            "title": "总平面图",
            "url": "https://example.cn/t1",
            "digest": f"sha256:{DIGEST}",
        }
    ]
    assert (app["project_code"], app["note"]) == (None, "请尽快联系")


@pytest.mark.parametrize(
    ("kind", "expected"), [("报装", "CONNECTION"), ("报修", "REPAIR"), ("报停", "SUSPENSION"), ("过户", "TRANSFER")]
)
def test_application_kinds(kind: str, expected: str) -> None:
    """Each 申请类型 maps to its canonical kind."""
    assert parse(sqlx=kind)["kind"] == expected


def test_enterprise_with_uscc_and_project_code() -> None:
    """An enterprise applicant needs a USCC, not an ID number; a cited project code is kept."""
    app = parse(
        sqrlx="企业",
        sqrxm="烟台市幸福置业有限公司",
        sfzhm=...,
        tyshxydm="91110000600037341L",
        xmdm="2026-370602-47-01-000123",
    )
    assert (app["applicant_type"], app["applicant_uscc"], app["applicant_id_number"]) == (
        "ENTERPRISE",
        "91110000600037341L",
        None,
    )
    assert app["project_code"] == "2026-370602-47-01-000123"


def test_residence_permit_numbers_are_accepted() -> None:
    """Hong Kong, Macao and Taiwan residence permits (81/82/83) are valid ID numbers."""
    for prefix in ("810000", "820000", "830000"):
        body = f"{prefix}19900101123"
        number = body + id_check_character(body)
        assert parse(sfzhm=number)["applicant_id_number"] == number


def test_mobile_is_normalised() -> None:
    """A +86 prefix and dashes are stripped from the mobile number."""
    assert parse(lxdh="+86 139-1234-5678")["applicant_mobile"] == MOBILE


@pytest.mark.parametrize(
    ("written", "kept"), [("0535-6123456", "0535-6123456"), ("(0531)88888888转12", "0531-88888888-12")]
)
def test_a_repair_form_with_a_landline_is_accepted(written: str, kept: str) -> None:
    """报修 by a household that gives its landline: a person can be reached on it, so the form is taken."""
    assert parse(lxdh=written, sqlx="报修")["applicant_mobile"] == kept


@pytest.mark.parametrize(
    ("changes", "field", "reason_part"),
    [
        ({"sqbh": ""}, "sqbh", "required"),
        ({"sqbh": "AS 1"}, "sqbh", "letters, digits"),
        ({"sqlx": "缴费"}, "sqlx", "is not one of"),
        ({"fwlx": []}, "fwlx", "non-empty array"),
        ({"fwlx": "供水"}, "fwlx", "got string"),
        ({"fwlx": ["供水", "供油"]}, "fwlx.1", "is not one of"),
        ({"fwlx": ["供水", "自来水"]}, "fwlx.1", "second time"),
        ({"sqrlx": "机关"}, "sqrlx", "is not one of"),
        ({"sqrxm": 12}, "sqrxm", "got number"),
        ({"sfzhm": ...}, "sfzhm", "needs an ID number"),
        ({"sqrlx": "企业", "tyshxydm": None}, "tyshxydm", "needs a USCC"),
        ({"sfzhm": "110105194912310021"}, "sfzhm", "check character"),
        ({"sfzhm": "1101051949"}, "sfzhm", "17 digits"),
        ({"lxdh": "12912345678"}, "lxdh", "starts with 12"),
        ({"lxdh": None}, "lxdh", "required"),
        ({"xmdm": "2026-37060-47-01-000123"}, "xmdm", "does not match"),
        ({"xzqhdm": "379999"}, "xzqhdm", "not a known"),
        ({"xzqhdm": 370602}, "xzqhdm", "got number"),
        ({"dz": "  "}, "dz", "required"),
        ({"sqsj": "2026/11/25 09:00"}, "sqsj", "YYYY-MM-DD"),
        ({"sqsj": "2026-02-30 09:00:00"}, "sqsj", "valid date"),
        ({"sqsj": "0001-01-01 00:00:00"}, "sqsj", "valid date"),
        ({"sqsj": "9999-12-31 23:59:59"}, "sqsj", "plausible filing time"),
        ({"sqsj": 1764032400}, "sqsj", "got number"),
        ({"bz": "\ud800"}, "bz", "surrogate"),
    ],
)
def test_invalid_fields_name_the_gateway_field(changes: dict[str, Any], field: str, reason_part: str) -> None:
    """Every validation failure is a DataError naming the raw field with a precise reason."""
    with pytest.raises(DataError) as caught:
        parse(**changes)
    assert caught.value.field == field
    assert reason_part in caught.value.reason


def test_not_an_object() -> None:
    """A body that is not an object is refused as a whole."""
    with pytest.raises(DataError) as caught:
        parse_application([], ingested_at=INGESTED, vocabulary=RULES.vocabulary)  # type: ignore[arg-type]
    assert caught.value.field == ""


@pytest.mark.parametrize(
    "changes",
    [
        {"sfzhm": "110105194912310021"},
        {"sfzhm": "11010519491231002"},
        {"lxdh": "1391234567"},
        {"lxdh": "12912345678"},
        {"sqrxm": "13912345678" * 20},
        {"sqbh": "ID 110105194912310021"},
        {"sqlx": "13912345678"},
        {"fwlx": ["110105194912310021"]},
    ],
)
def test_reasons_never_quote_personal_numbers(changes: dict[str, Any]) -> None:
    """Reasons carry no ID or mobile number in clear, even when one sits in the wrong field."""
    with pytest.raises(DataError) as caught:
        parse(**changes)
    text = str(caught.value)
    for value in changes.values():
        secret = value[0] if isinstance(value, list) else value
        assert secret[:11] not in text
    assert "13912345678" not in text and "110105194912310021" not in text


def test_naive_ingested_at_is_a_programming_error() -> None:
    """ingested_at must carry its zone."""
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_application(raw(), ingested_at=datetime(2026, 11, 25), vocabulary=RULES.vocabulary)  # noqa: DTZ001 - the point of the test


def test_package_application_yields_one_task_per_service(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """套餐式: three services give three APPLICATION tasks with one application id and distinct utilities."""
    app = parse(fwlx=["供水", "供气", "供热"])
    tasks = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert [(t["utility_id"], t["service"]) for t in tasks] == [
        ("yantai-water", "WATER"),
        ("yantai-gas", "GAS"),
        ("yantai-heat", "HEAT"),
    ]
    assert {t["application_id"] for t in tasks} == {"AS2026112500001"}
    assert {t["kind"] for t in tasks} == {"APPLICATION"}
    assert [t["task_id"] for t in tasks] == [
        task_id("aishandong:AS2026112500001", t["utility_id"], t["service"], "APPLICATION") for t in tasks
    ]
    first = tasks[0]
    assert (first["contact_name"], first["contact_mobile"], first["builder_name"]) == ("张伟", MOBILE, None)
    assert (first["source"], first["source_event_id"], first["created_at"]) == ("aishandong", "AS2026112500001", NOW)
    assert first["occurred_at"] == app["filed_at"] and first["flags"] == []


def test_task_ids_are_deterministic(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """The same application routed twice gives the same task ids."""
    app = parse(fwlx=["供水", "供气"])
    once = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    again = application_tasks(app, areas, calendar, now=INGESTED, project=None, shared_materials=SHARED)
    assert [t["task_id"] for t in once] == [t["task_id"] for t in again]


@pytest.mark.parametrize(
    ("filed", "due"),
    [
        ("2026-11-25 09:00:00", datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)),  # same morning
        ("2026-11-27 16:30:00", datetime(2026, 11, 30, 10, 30, tzinfo=SHANGHAI)),  # Friday → Monday
        ("2026-09-30 16:30:00", datetime(2026, 10, 8, 10, 30, tzinfo=SHANGHAI)),  # across National Day
        ("2026-11-28 10:00:00", datetime(2026, 11, 30, 11, 30, tzinfo=SHANGHAI)),  # filed on a Saturday
    ],
)
def test_contact_due_is_three_working_hours_after_filing(
    areas: ServiceAreaTable, calendar: WorkingCalendar, filed: str, due: datetime
) -> None:
    """contact_due counts 3 working hours from filing, skipping nights, weekends and holidays."""
    (task,) = application_tasks(parse(sqsj=filed), areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert task["contact_due"] == due.astimezone(UTC)


@pytest.mark.parametrize(
    ("filed", "due"),
    [
        ("2026-12-31 16:00:00", datetime(2027, 1, 4, 10, 0, tzinfo=SHANGHAI)),  # over the provisional 元旦
        ("2027-02-04 16:30:00", datetime(2027, 2, 15, 10, 30, tzinfo=SHANGHAI)),  # over 春节 from 除夕 (Feb 5)
        ("2028-05-26 16:30:00", datetime(2028, 5, 30, 10, 30, tzinfo=SHANGHAI)),  # 端午 Sunday → Monday off
    ],
)
def test_contact_due_in_years_without_a_notice_is_provisional(
    areas: ServiceAreaTable, calendar: WorkingCalendar, filed: str, due: datetime
) -> None:
    """Filed across a year without a holiday notice: contact_due from the statutory rules, flagged provisional."""
    (task,) = application_tasks(parse(sqsj=filed), areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert (due.astimezone(UTC), ["contact_due_provisional"], True) == (
        task["contact_due"],
        task["flags"],
        (task["contact_due_note"] or "").startswith("provisional: no State Council holiday notice for"),
    )


@pytest.mark.parametrize("filed", ["2003-05-06 10:00:00", "2100-03-02 10:00:00", "1995-06-01 08:00:00"])
def test_an_unclockable_filing_time_never_blocks_the_task(
    areas: ServiceAreaTable, calendar: WorkingCalendar, filed: str
) -> None:
    """A filing year no calendar covers still yields the task, without contact_due, flagged with the reason."""
    (task,) = application_tasks(parse(sqsj=filed), areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert (None, ["contact_due_unclocked"], True) == (
        task["contact_due"],
        task["flags"],
        f"no holiday schedule for {filed[:4]}" in (task["contact_due_note"] or ""),
    )


def test_an_officially_covered_filing_has_no_note(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """Inside the official years, contact_due carries no note and no calendar flag."""
    (task,) = application_tasks(parse(), areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert (None, []) == (task["contact_due_note"], task["flags"])


def test_nothing_is_ever_missing_from_the_builder(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """000 "用户只需提交申请表1份材料", 001 "报装材料减少到零": an online 报装 citing no project misses nothing."""
    (task,) = application_tasks(parse(cl=None), areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert (task["missing_materials"], task["documents"]) == ([], [])
    # 000 "项目图纸暂未实现共享或不方便上传的,应容缺受理,在现场踏勘时提交": no project code, so at the survey
    assert task["materials_to_fetch"] == ["PERMIT:SITE_SURVEY:", "DRAWING:SITE_SURVEY:"]


def test_shared_documents_are_fetched_by_project_code(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """004 四免 "凡与政府部门通过数据共享可获取的材料，免提供": an unknown project's permit and drawing are fetched."""
    code = "2026-370602-47-01-000123"
    (task,) = application_tasks(
        parse(cl=None, xmdm=code), areas, calendar, now=NOW, project=None, shared_materials=SHARED
    )
    assert task["materials_to_fetch"] == [f"PERMIT:APPROVAL_SYSTEM:{code}", f"DRAWING:APPROVAL_SYSTEM:{code}"]
    assert task["missing_materials"] == []


def test_attached_documents_are_not_fetched(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """The form's own drawing and the project's permit are attached; nothing is left to fetch."""
    app = parse(xmdm="2026-370602-47-01-000123")
    (task,) = application_tasks(app, areas, calendar, now=NOW, project=project(), shared_materials=SHARED)
    assert ([d["kind"] for d in task["documents"]], task["materials_to_fetch"]) == (["PERMIT", "DRAWING"], [])


def test_registry_documents_of_other_kinds(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """A 过户 gets the property certificate from the registry; a 报修 needs nothing at all."""
    (transfer,) = application_tasks(
        parse(sqlx="过户", cl=None), areas, calendar, now=NOW, project=None, shared_materials=SHARED
    )
    assert transfer["materials_to_fetch"] == ["PROPERTY_CERTIFICATE:PROPERTY_REGISTRY:"]
    (repair,) = application_tasks(
        parse(sqlx="报修", cl=[]), areas, calendar, now=NOW, project=None, shared_materials=SHARED
    )
    assert (repair["materials_to_fetch"], repair["missing_materials"]) == ([], [])


def test_materials_to_fetch_keeps_the_configured_order() -> None:
    """Pure: each shared kind not present, in the configured order, with its source's reference."""
    shared = {"DRAWING": "APPROVAL_SYSTEM", "BUSINESS_LICENSE": "MARKET_REGULATOR"}
    drawing = {"kind": "DRAWING", "number": None, "title": "图", "url": None, "digest": None}
    assert materials_to_fetch([], shared, "C") == ["DRAWING:APPROVAL_SYSTEM:C", "BUSINESS_LICENSE:MARKET_REGULATOR:"]
    assert materials_to_fetch([drawing], shared, None) == ["BUSINESS_LICENSE:MARKET_REGULATOR:"]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("materials", "reason"),
    [
        ({}, "cl: must be an array of materials, got object"),
        (["x"], "cl.0: material must be an object, got string"),
        ([{"lx": "照片", "mc": "x"}], "cl.0.lx: '照片' is not one of"),
        ([{"lx": "图纸", "mc": "x", "sha256": "abc"}], "cl.0.sha256: 'abc' is not 64 hex digits"),
        ([{"lx": "图纸", "mc": "x", "url": "ftp://x"}], "cl.0.url: 'ftp://x' is not an http(s) URL"),
        ([{"lx": "图纸", "url": "https://x.cn/a b"}], "cl.0.url: 'https://x.cn/a b' is not an http(s) URL"),
    ],
)
def test_a_bad_material_drops_that_link_never_the_application(materials: object, reason: str) -> None:
    """000/004 容缺受理: an unusable material is left out with its field and reason; the application stands."""
    app = parse(cl=materials)
    assert app["materials"] == []
    assert len(app["dropped_materials"]) == 1 and app["dropped_materials"][0].startswith(reason)


def test_good_materials_survive_a_bad_neighbour(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """One unreadable link among good ones: the good ones are attached and the task names the dropped one."""
    good = {"lx": "图纸", "mc": "总平面图", "url": "https://example.cn/t1"}
    app = parse(cl=[{"lx": "图纸", "mc": "x", "url": "javascript:alert(1)"}, good, {"lx": "许可证"}])
    assert [(d["kind"], d["title"]) for d in app["materials"]] == [("DRAWING", "总平面图"), ("PERMIT", "许可证")]
    (task,) = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert task["dropped_materials"] == ["cl.0.url: 'javascript:alert(1)' is not an http(s) URL"]


def test_more_materials_than_the_bound_drop_the_rest() -> None:
    """Beyond 50 materials the rest are dropped, each named, and the first 50 kept."""
    app = parse(cl=[{"lx": "其他", "mc": f"m{n}"} for n in range(52)])
    assert len(app["materials"]) == 50
    assert app["dropped_materials"] == ["cl.50: beyond the first 50 materials", "cl.51: beyond the first 50 materials"]


@pytest.mark.parametrize(
    ("words", "services"),
    [
        (["供暖"], ["HEAT"]),
        (["采暖"], ["HEAT"]),
        (["供热"], ["HEAT"]),
        (["自来水", "天然气"], ["WATER", "GAS"]),
        (["燃气", "供水", "暖气"], ["GAS", "WATER", "HEAT"]),
        (["用水", "用气", "用暖"], ["WATER", "GAS", "HEAT"]),
    ],
)
def test_everyday_service_words_are_accepted(words: list[str], services: list[str]) -> None:
    """供暖 (the seeds' own word for heating), 采暖, 自来水, 天然气…: synonyms from aishandong.yaml."""
    assert parse(fwlx=words)["services"] == services


@pytest.mark.parametrize(
    ("word", "applicant_type", "identity"),
    [
        ("居民", "PERSON", {}),
        ("企业", "ENTERPRISE", {"sfzhm": ..., "tyshxydm": "91110000600037341L"}),
        ("法人", "ENTERPRISE", {"sfzhm": ..., "tyshxydm": "91110000600037341L"}),
        ("个体工商户", "SOLE_PROPRIETOR", {"sfzhm": ..., "tyshxydm": "91110000600037341L"}),
        ("公服", "PUBLIC_SERVICE", {"sfzhm": ..., "tyshxydm": "91110000600037341L"}),
    ],
)
def test_applicant_types_the_seeds_name(word: str, applicant_type: str, identity: dict[str, Any]) -> None:
    """002's ledger categories (企业/个体工商户/居民/公服) and 爱山东's 法人 are accepted."""
    assert parse(sqrlx=word, **identity)["applicant_type"] == applicant_type


def test_an_organisation_needs_a_uscc() -> None:
    """A 公服 applicant without a USCC is refused on tyshxydm, naming the word it used."""
    with pytest.raises(DataError) as caught:
        parse(sqrlx="公服")
    assert (caught.value.field, caught.value.reason) == (
        "tyshxydm",
        "an applicant that is an organisation (公服) needs a USCC",
    )


def test_an_organisation_applicant_is_the_builder(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """Without a known project, an organisation applicant (法人) names the builder; a person never does."""
    app = parse(sqrlx="法人", sqrxm="烟台市幸福置业有限公司", sfzhm=..., tyshxydm="91110000600037341L")
    (task,) = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert task["builder_name"] == "烟台市幸福置业有限公司"


def test_project_documents_and_demand_enrich_the_tasks(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """A known project adds its documents (so its permit is no longer missing), builder, figures and demand."""
    app = parse(fwlx=["供水", "供气"], xmdm="2026-370602-47-01-000123")
    water, gas = application_tasks(app, areas, calendar, now=NOW, project=project(), shared_materials=SHARED)
    assert [d["kind"] for d in water["documents"]] == ["PERMIT", "DRAWING"]
    assert (water["missing_materials"], water["materials_to_fetch"]) == ([], [])
    assert (water["project_name"], water["builder_name"], water["floor_area_m2"]) == (
        "幸福里三期",
        "烟台市幸福置业有限公司",
        56000.0,
    )
    assert water["demand"] is None
    assert gas["demand"] is not None and gas["demand"]["pipe_diameter_mm"] == 100
    assert water["flags"] == []


def test_unknown_cited_project_is_flagged(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """An application citing a project nobody knows still yields tasks, flagged project_not_found."""
    app = parse(xmdm="2026-370602-47-01-000123")
    (task,) = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert task["flags"] == [PROJECT_NOT_FOUND_FLAG]
    assert task["project_code"] == "2026-370602-47-01-000123" and task["project_name"] is None


def test_unserved_service_is_skipped_and_flagged(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """In 聊城 nobody supplies heat: water and gas tasks carry unserved_service:HEAT."""
    app = parse(xzqhdm="371502", fwlx=["供水", "供气", "供热"])
    tasks = application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert [t["utility_id"] for t in tasks] == ["liaocheng-water", "liaocheng-gas"]
    assert all(t["flags"] == ["unserved_service:HEAT"] for t in tasks)


def test_nothing_served_is_a_data_error(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """青岛 is served by nobody: the application is a DataError on xzqhdm (dead-lettered)."""
    app = parse(xzqhdm="370202", fwlx=["供水", "供气"])
    with pytest.raises(DataError) as caught:
        application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)
    assert caught.value.field == "xzqhdm"
    assert caught.value.reason == "no utility serves region 370202 for WATER, GAS"


def test_naive_now_is_refused(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """The current time must carry its zone."""
    with pytest.raises(ValueError, match="timezone-aware"):
        application_tasks(
            parse(),
            areas,
            calendar,
            now=datetime(2026, 11, 25),  # noqa: DTZ001 - the point of the test
            project=None,
            shared_materials=SHARED,
        )


def test_simulated_applications_all_parse(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """Every simulated application, in everyday words and some with a bad link, is valid and routes."""
    apps = make_applications(
        300, seed=5, regions=["370602", "370685", "370102"], project_codes=["2026-370602-47-01-000123"]
    )
    parsed = [parse_application(a, ingested_at=INGESTED, vocabulary=RULES.vocabulary) for a in apps]
    assert {a["kind"] for a in parsed} == {"CONNECTION", "REPAIR", "SUSPENSION", "TRANSFER"}
    assert any((a["applicant_id_number"] or "")[:2] in {"81", "82", "83"} for a in parsed)
    assert {a["applicant_type"] for a in parsed} == {"PERSON", "ENTERPRISE", "SOLE_PROPRIETOR", "PUBLIC_SERVICE"}
    assert any(a["dropped_materials"] for a in parsed)  # an unusable link, and the application still parses
    assert {len(a["services"]) for a in parsed} == {1, 2, 3}
    assert any(a["project_code"] for a in parsed)
    for app in parsed:
        if app["region_code"] == "370102" and app["services"] == ["GAS"]:
            continue  # 济南 gas is not in the demo table
        assert application_tasks(app, areas, calendar, now=NOW, project=None, shared_materials=SHARED)


def test_an_application_carries_its_users_category(areas: ServiceAreaTable, calendar: WorkingCalendar) -> None:
    """A person is 居民用户, an enterprise's credit code 企业用户; the tasks carry the application's category."""
    person = parse()
    company = parse(sqrlx="企业", sqrxm="烟台市幸福置业有限公司", sfzhm=..., tyshxydm="91110000600037341L")
    tasks = application_tasks(company, areas, calendar, now=NOW, project=None, shared_materials=RULES.shared_materials)
    assert (person["user_category"], company["user_category"], {t["user_category"] for t in tasks}) == (
        "RESIDENT",
        "ENTERPRISE",
        {"ENTERPRISE"},
    )


def test_a_stated_category_that_fits_wins_and_one_that_does_not_is_refused() -> None:
    """A person stating 个体工商户 (yhlb) keeps it; one stating 公服用户 is refused on yhlb, naming both."""
    assert parse(yhlb="个体工商户")["user_category"] == "INDIVIDUAL_BUSINESS"
    with pytest.raises(DataError) as caught:
        parse(yhlb="公服用户")
    assert (caught.value.field, caught.value.reason) == ("yhlb", "公服用户 does not fit a natural person (居民用户)")


def test_an_organisation_whose_code_says_nothing_takes_its_applicant_type() -> None:
    """A credit code of a type the table does not class (Y1…) falls back to what sqrlx said (公服 → 公服用户)."""
    app = parse(sqrlx="公服", sqrxm="某某学校", sfzhm=..., tyshxydm="Y1110000600037341Y")
    assert app["user_category"] == "PUBLIC_SERVICE"
