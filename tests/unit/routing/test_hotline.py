"""12345 hotline: work orders and return visits parsed, refused with the platform's field, routed to COMPLAINT tasks."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from routing.errors import DataError
from routing.hotline import (
    PULL_SOURCE,
    PUSH_SOURCE,
    SERVICE_WORDS,
    VISIT_RESULTS,
    HotlineWorkOrder,
    complaint_task,
    complaint_task_id,
    parse_return_visit,
    parse_work_order,
    service_of,
)
from routing.revisions import content_digest
from routing.service_areas import ServiceAreaTable, load_service_areas
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 2, 1, tzinfo=UTC)
MOBILE = "13912345678"


def order(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sjid": "EV-20261125-000123",
        "gdbh": "SD12345-20261125-000123",
        "ywlb": "供水",
        "sqlb": "投诉",
        "xzqhdm": "370602",
        "fsdz": "芝罘区幸福南路18号3单元",
        "sqnr": "家中自来水连续三天水压不足，高峰时段无水",
        "ldrxm": "王秀英",
        "ldrdh": MOBILE,
        "xmdm": None,
        "pdsj": "2026-11-25 09:30:00",
        "fkqx": "2026-11-30 17:30:00",
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not ...}


def visit(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sjid": "EV-20261201-000031",
        "hfbh": "HF-20261201-000031",
        "gdbh": "SD12345-20261125-000123",
        "hfjg": "基本满意",
        "hfsj": "2026-12-01 10:12:00",
        "hfsm": "水压已恢复",
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not ...}


def parse(**changes: Any) -> HotlineWorkOrder:
    return parse_work_order(order(**changes), ingested_at=INGESTED, source=PUSH_SOURCE)


def refusal(**changes: Any) -> DataError:
    with pytest.raises(DataError) as caught:
        parse(**changes)
    return caught.value


@pytest.fixture(scope="module")
def areas() -> ServiceAreaTable:
    return load_service_areas(CONFIG / "service-areas.yaml")


def test_work_order_is_parsed_with_times_in_utc() -> None:
    """Every field lands where the Avro record wants it; Shanghai wall-clock times become UTC."""
    parsed = parse()
    assert parsed == {
        "order_id": "SD12345-20261125-000123",
        "service": "WATER",
        "category": "投诉",
        "region_code": "370602",
        "address": "芝罘区幸福南路18号3单元",
        "content": "家中自来水连续三天水压不足，高峰时段无水",
        "caller_name": "王秀英",
        "caller_mobile": MOBILE,
        "project_code": None,
        "dispatched_at": datetime(2026, 11, 25, 1, 30, tzinfo=UTC),
        "answer_due": datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
        "source": PUSH_SOURCE,
        "source_event_id": "EV-20261125-000123",
        "ingested_at": INGESTED,
    }
    Codec.default().encode("HotlineWorkOrder", dict(parsed))


@pytest.mark.parametrize(
    ("word", "service"),
    [
        ("供水", "WATER"),
        ("自来水", "WATER"),
        ("燃气", "GAS"),
        ("天然气", "GAS"),
        ("供气", "GAS"),
        ("供热", "HEAT"),
        ("暖气", "HEAT"),
        ("供暖", "HEAT"),
        (" 采暖 ", "HEAT"),
        ("GAS", "GAS"),
    ],
)
def test_service_words_name_their_service(word: str, service: str) -> None:
    """The platform's words for water, gas and heat, and the codes themselves, map to the service."""
    assert service_of(word) == service
    assert parse(ywlb=word)["service"] == service


def test_every_service_word_maps_to_a_service() -> None:
    """The table holds only the three services, each reachable by a Chinese word."""
    assert set(SERVICE_WORDS.values()) == {"WATER", "GAS", "HEAT"}
    chinese = {service for word, service in SERVICE_WORDS.items() if not word.isascii()}
    assert chinese == {"WATER", "GAS", "HEAT"}


@pytest.mark.parametrize("word", ["排水", "电力", "物业", "water", ""])
def test_unknown_service_is_refused_naming_the_word(word: str) -> None:
    """A matter about anything other than water, gas or heat is not ubridge's: refused on ywlb."""
    error = refusal(ywlb=word)
    assert error.field == "ywlb"
    assert "required" in error.reason if not word else repr(word) in error.reason


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"xzqhdm": "37060"}, "xzqhdm", "not 6 digits"),
        ({"xzqhdm": "379999"}, "xzqhdm", "not a known"),
        ({"xzqhdm": ...}, "xzqhdm", "required"),
        ({"fkqx": ...}, "fkqx", "required"),
        ({"fkqx": ""}, "fkqx", "required"),
        ({"fkqx": "2026-11-25 09:30:00"}, "fkqx", "not after the dispatch"),
        ({"fkqx": "2026-11-24 17:30:00"}, "fkqx", "not after the dispatch"),
        ({"fkqx": "2026/11/30"}, "fkqx", "YYYY-MM-DD HH:MM:SS"),
        ({"fkqx": "2026-02-30 17:30:00"}, "fkqx", "not a valid date"),
        ({"fkqx": 1796000000}, "fkqx", "got number"),
        ({"pdsj": "1900-11-25 09:30:00"}, "pdsj", "plausible"),
        ({"pdsj": ...}, "pdsj", "required"),
        ({"ldrdh": "1391234567"}, "ldrdh", "expected 11"),
        ({"ldrdh": "23912345678"}, "ldrdh", "landline"),
        ({"ldrdh": 13912345678}, "ldrdh", "got number"),
        ({"gdbh": ...}, "gdbh", "required"),
        ({"gdbh": "SD 12345"}, "gdbh", "letters, digits"),
        ({"sjid": ...}, "sjid", "required"),
        ({"sqlb": "闲聊"}, "sqlb", "not one of"),
        ({"sqnr": ...}, "sqnr", "required"),
        ({"sqnr": "水" * 4001}, "sqnr", "at most 4000"),
        ({"fsdz": "  "}, "fsdz", "required"),
        ({"ldrxm": "\ud800"}, "ldrxm", "surrogate"),
        ({"xmdm": "2026-370602"}, "xmdm", "NNNN-NNNNNN"),
        ({"ywlb": ["供水"]}, "ywlb", "got array"),
    ],
)
def test_bad_work_orders_are_refused_naming_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    """Each fault of a work order is a DataError naming the platform's field and saying what is wrong."""
    error = refusal(**changes)
    assert (error.field, words in error.reason) == (field, True), error


def test_a_refusal_never_quotes_a_mobile_number() -> None:
    """A reason quoting the caller's number shows it masked."""
    error = refusal(gdbh=f"工单{MOBILE}")
    assert MOBILE not in str(error)
    assert "139****5678" in error.reason


def test_work_order_must_be_an_object() -> None:
    """A JSON array or string is not a work order."""
    for body in (["gdbh"], "SD12345"):
        with pytest.raises(DataError, match="must be a JSON object"):
            parse_work_order(body, ingested_at=INGESTED, source=PUSH_SOURCE)  # type: ignore[arg-type]


def test_anonymous_caller_and_landline_and_project_code() -> None:
    """An anonymous caller has no name or number; a landline is a number too; a project code is kept."""
    anonymous = parse(ldrxm=..., ldrdh=None)
    assert (anonymous["caller_name"], anonymous["caller_mobile"]) == (None, None)
    assert parse(ldrdh="0535-6123456")["caller_mobile"] == "0535-6123456"
    assert parse(ldrdh="+86 139-1234-5678")["caller_mobile"] == MOBILE
    assert parse(xmdm="2026-370602-47-01-000123")["project_code"] == "2026-370602-47-01-000123"


def test_naive_ingestion_time_is_a_programming_error() -> None:
    """Times without a zone are refused before any data is looked at."""
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_work_order(order(), ingested_at=datetime(2026, 11, 25), source=PUSH_SOURCE)  # noqa: DTZ001


@pytest.mark.parametrize(("word", "result"), sorted(VISIT_RESULTS.items()))
def test_return_visit_results(word: str, result: str) -> None:
    """满意, 基本满意, 不满意, 未接通 (and the codes) are the four results."""
    parsed = parse_return_visit(visit(hfjg=word), ingested_at=INGESTED, source=PULL_SOURCE)
    assert parsed["result"] == result


def test_return_visit_is_parsed() -> None:
    """A visit keeps its order, its own id, the time in UTC and the comment."""
    parsed = parse_return_visit(visit(), ingested_at=INGESTED, source=PULL_SOURCE)
    assert parsed == {
        "order_id": "SD12345-20261125-000123",
        "visit_id": "HF-20261201-000031",
        "result": "BASICALLY_SATISFIED",
        "visited_at": datetime(2026, 12, 1, 2, 12, tzinfo=UTC),
        "comment": "水压已恢复",
        "source": PULL_SOURCE,
        "source_event_id": "EV-20261201-000031",
        "ingested_at": INGESTED,
    }
    Codec.default().encode("ReturnVisit", dict(parsed))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hfjg": "还行"}, "hfjg"),
        ({"hfjg": ...}, "hfjg"),
        ({"hfsj": ...}, "hfsj"),
        ({"hfsj": "昨天"}, "hfsj"),
        ({"hfbh": ...}, "hfbh"),
        ({"gdbh": ...}, "gdbh"),
        ({"sjid": 5}, "sjid"),
        ({"hfsm": "意" * 2001}, "hfsm"),
    ],
)
def test_bad_return_visits_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    """Each fault of a return visit names the platform's field."""
    with pytest.raises(DataError) as caught:
        parse_return_visit(visit(**changes), ingested_at=INGESTED, source=PULL_SOURCE)
    assert caught.value.field == field


def test_complaint_task_carries_deadline_content_and_caller(areas: ServiceAreaTable) -> None:
    """The task goes to the utility serving the place, with the platform's deadline, content and caller."""
    parsed = parse()
    task = complaint_task(parsed, areas, now=NOW)
    assert task["kind"] == "COMPLAINT"
    assert task["utility_id"] == "yantai-water"
    assert task["task_id"] == complaint_task_id(parsed["order_id"], "yantai-water", "WATER")
    assert task["answer_due"] == parsed["answer_due"]
    assert task["work_order_id"] == parsed["order_id"]
    assert task["complaint"] == parsed["content"]
    assert (task["contact_name"], task["contact_mobile"]) == ("王秀英", MOBILE)
    assert task["site_address"] == parsed["address"]
    assert task["occurred_at"] == parsed["dispatched_at"]
    assert task["flags"] == ["hotline_category:投诉"]
    Codec.default().encode("UtilityTask", dict(task))


def test_complaint_goes_to_the_utility_of_the_service_and_region(areas: ServiceAreaTable) -> None:
    """Gas in 招远市 is zhaoyuan-gas's, gas elsewhere in 烟台 yantai-gas's, heat in 济南 jinan-heat's."""
    assert complaint_task(parse(ywlb="燃气", xzqhdm="370685"), areas, now=NOW)["utility_id"] == "zhaoyuan-gas"
    assert complaint_task(parse(ywlb="燃气", xzqhdm="370602"), areas, now=NOW)["utility_id"] == "yantai-gas"
    assert complaint_task(parse(ywlb="暖气", xzqhdm="370102"), areas, now=NOW)["utility_id"] == "jinan-heat"


def test_a_resent_order_is_the_same_task(areas: ServiceAreaTable) -> None:
    """Another event or intake carrying the order makes the same task with the same content: a repeat."""
    first = complaint_task(parse(), areas, now=NOW)
    again = parse_work_order(order(sjid="EV-OTHER"), ingested_at=NOW, source=PULL_SOURCE)
    second = complaint_task(again, areas, now=datetime(2026, 11, 26, tzinfo=UTC))
    assert second["task_id"] == first["task_id"]
    assert content_digest(second) == content_digest(first)
    other = complaint_task(parse(gdbh="SD12345-20261125-000124"), areas, now=NOW)
    assert other["task_id"] != first["task_id"]


def test_unserved_region_or_service_is_refused(areas: ServiceAreaTable) -> None:
    """青岛 has no utility; 聊城 has no heat utility: both are DataErrors on region_code."""
    for changes in ({"xzqhdm": "370202"}, {"xzqhdm": "371502", "ywlb": "供热"}):
        with pytest.raises(DataError, match="no utility serves region") as caught:
            complaint_task(parse(**changes), areas, now=NOW)
        assert caught.value.field == "region_code"
