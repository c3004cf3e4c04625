"""What the compacted tables keep of personal data: the strip functions and the ID-number detector."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.aishandong.rules import load_application_rules
from connectors.aishandong.settings import SHIPPED_RULES
from routing.aishandong import parse_application
from routing.personal_data import (
    contact_expired,
    id_numbers_in,
    strip_awaiting_application,
    strip_held_status,
    strip_project_event,
    strip_task,
)
from routing.records import ConnectionApplication, ProjectEvent, TaskStatus
from routing.repairs import repair
from tests.support import make_task

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
ID_NUMBER = "11010519491231002X"
PERMIT_NUMBER = "810000199408230021"  # a Hong Kong residents' permit (prefix 81)
RULES = load_application_rules(SHIPPED_RULES)


def application(**changes: Any) -> ConnectionApplication:
    """A person's connection application with an ID card among its materials."""
    raw = {
        "sqbh": "AS1",
        "sqlx": "报装",
        "fwlx": ["供水"],
        "sqrlx": "个人",
        "sqrxm": "张伟",
        "sfzhm": ID_NUMBER,
        "lxdh": "13912345678",
        "xmdm": "2026-370602-47-01-000123",
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路18号",
        "sqsj": "2026-11-25 09:00:00",
        "bz": "身份证 11010519491231002X",
        "cl": [
            {"lx": "身份证", "mc": "身份证", "bh": ID_NUMBER, "url": "https://zwfw.example.cn/cl/1"},
            {"lx": "产权证明", "mc": "不动产权证书", "bh": "鲁(2026)烟台市不动产权第0001号", "url": None},
        ],
        **changes,
    }
    return parse_application(raw, ingested_at=NOW, vocabulary=RULES.vocabulary)


def project_event() -> ProjectEvent:
    """A project event with a contact, a repaired contact number and a repaired area."""
    return {
        "event_id": "e1",
        "source": "gonggai-interface",
        "source_record_id": "1",
        "project_code": "2026-370602-47-01-000123",
        "project_name": "幸福里三期",
        "region_code": "370602",
        "site_address": "芝罘区幸福南路18号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": "91370600MA3C5XXX0X",
        "contact_name": "张伟",
        "contact_mobile": "0535-6688123",
        "stage": 2,
        "item_code": None,
        "item_instance_code": "SL-1",
        "item_name": None,
        "item_status": "GRANTED",
        "retraction": False,
        "occurred_at": NOW,
        "ingested_at": NOW,
        "time_zone": "Asia/Shanghai",
        "project_nature": None,
        "floor_area_m2": 100.0,
        "land_area_m2": None,
        "investment_10k_cny": None,
        "demands": [],
        "documents": [{"kind": "PERMIT", "number": "P-1", "title": "许可证", "url": None, "digest": None}],
        "flags": [],
        "repairs": [
            repair("contact_mobile", "landline", "a landline with its area code, not a mobile"),
            repair("floor_area_m2", "full_width_digits", "read as 100"),
        ],
    }


def test_the_project_table_keeps_no_contact() -> None:
    """Contact name and number go, with the repair note about the number; everything else stays."""
    event = project_event()
    kept = strip_project_event(event)
    assert (kept["contact_name"], kept["contact_mobile"]) == (None, None)
    assert [r["field"] for r in kept["repairs"]] == ["floor_area_m2"]
    assert {k: v for k, v in kept.items() if k not in ("contact_name", "contact_mobile", "repairs")} == {
        k: v for k, v in event.items() if k not in ("contact_name", "contact_mobile", "repairs")
    }
    assert event["contact_name"] == "张伟"  # the input is not changed


def test_an_awaiting_application_keeps_its_contact_but_no_id_number() -> None:
    """The ID number, the note and an ID card's number go; the name, mobile and other materials stay."""
    app = application()
    kept = strip_awaiting_application(app)
    assert (kept["applicant_id_number"], kept["note"]) == (None, None)
    assert [m["number"] for m in kept["materials"]] == [None, "鲁(2026)烟台市不动产权第0001号"]
    assert (kept["applicant_name"], kept["applicant_mobile"]) == ("张伟", "13912345678")
    assert id_numbers_in(kept) == []
    assert id_numbers_in(app) == [ID_NUMBER, ID_NUMBER, ID_NUMBER]
    assert strip_awaiting_application(kept) == kept


@pytest.mark.parametrize(
    ("age", "expired"),
    [(timedelta(days=29, hours=23), False), (timedelta(days=30), True), (timedelta(days=400), True)],
)
def test_contact_expiry(age: timedelta, expired: bool) -> None:
    """A contact is kept for exactly the retention after its filing."""
    assert contact_expired(NOW, NOW + age, timedelta(days=30)) is expired


def held(**changes: Any) -> TaskStatus:
    """A utility's report whose task has not opened in the ledger."""
    status: TaskStatus = {
        "task_id": "t1",
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": "CONTACTED",
        "occurred_at": NOW,
        "reported_at": NOW,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
    return {**status, **changes}  # type: ignore[typeddict-item]


def test_a_held_status_is_masked_and_its_task_has_no_contact() -> None:
    """Free text is masked as in logs; a task it carries loses its contact; a plain status is unchanged."""
    task = make_task("yantai-water", 1)
    kept = strip_held_status(held(detail=f"联系 13912345678 {ID_NUMBER}", reason="号码 13912345678", task=task))
    assert (kept["detail"], kept["reason"]) == ("联系 139****5678 1101**********002X", "号码 139****5678")
    assert kept["task"] == strip_task(task)
    assert (kept["task"] or {}).get("contact_mobile") is None
    assert strip_held_status(held()) == held()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"身份证{ID_NUMBER}号", [ID_NUMBER]),
        (PERMIT_NUMBER, [PERMIT_NUMBER]),
        (ID_NUMBER.lower(), [ID_NUMBER.lower()]),
        ("110105194912310021", []),  # a wrong check character
        ("91370600MA3C5XXX0X", []),  # a USCC
        ("X" + ID_NUMBER, []),  # part of a longer token
        ("2026-370602-47-01-000123", []),
    ],
)
def test_id_numbers_in_text(text: str, found: list[str]) -> None:
    """Only valid ID numbers standing on their own are found."""
    assert id_numbers_in({"a": [{"b": text}], "n": 3, "none": None}) == found


@given(st.text(alphabet="张伟幸福南路 ,:-", max_size=20), st.text(alphabet="张伟幸福南路 ,:-", max_size=20))
def test_an_id_number_anywhere_in_chinese_text_is_found(before: str, after: str) -> None:
    """An ID number between any Chinese text and punctuation is found."""
    assert id_numbers_in(before + ID_NUMBER + after) == [ID_NUMBER]
