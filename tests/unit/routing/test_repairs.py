"""Values a person reads without hesitation are repaired, and each repair travels on the event (issue 13)."""

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from routing.division_changes import TABLE, DivisionChanges, changes, successor
from routing.errors import DataError
from routing.identifiers import validate_contact_number
from routing.regions import is_known_region
from routing.repairs import exchange_time, labelled_digest, material_link, number_text
from tests.unit.routing.test_gonggai import DIGEST, USCC, norm, raw


def repairs_of(**changes: Any) -> list[tuple[str, str]]:
    """The (field, kind) of each repair normalising RAW with ``changes`` records."""
    return [(r["field"], r["kind"]) for r in norm(raw(**changes))["repairs"]]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("0535-6123456", "0535-6123456"),
        ("(0535)6123456", "0535-6123456"),
        ("0535 6123456", "0535-6123456"),
        ("05356123456", "0535-6123456"),
        ("010-88888888", "010-88888888"),
        ("0531-88888888转123", "0531-88888888-123"),
        ("+86-535-6123456", "0535-6123456"),
        ("０５３５－６１２３４５６", "0535-6123456"),
    ],
)
def test_a_landline_in_the_contact_column_is_kept_and_recorded(number: str, expected: str) -> None:
    """Landlines in every common writing are accepted as contact numbers, normalised, and the repair recorded."""
    event = norm(raw(lxrsjh=number))
    assert event["contact_mobile"] == expected
    assert [(r["field"], r["kind"]) for r in event["repairs"]] == [("contact_mobile", "landline")]
    assert "6123456" not in event["repairs"][0]["detail"] and "8888" not in event["repairs"][0]["detail"]


@pytest.mark.parametrize("number", ["12345", "0535-123", "0035-6123456", "电话"])
def test_what_is_neither_mobile_nor_landline_is_refused(number: str) -> None:
    """A number nobody can be reached on is still an error naming the column."""
    with pytest.raises(DataError) as caught:
        validate_contact_number(number, "lxrsjh")
    assert caught.value.field == "lxrsjh"


def test_a_mobile_is_not_a_repair() -> None:
    """A mobile number is the canonical case: no repair."""
    assert validate_contact_number("139 1234 5678") == ("13912345678", False)
    assert repairs_of() == []


def test_a_lower_case_uscc_is_upper_cased() -> None:
    """A credit code in lower case is read in capitals and passes its check character."""
    event = norm(raw(jsdwdm=USCC.lower()))
    assert event["builder_uscc"] == USCC
    assert [(r["field"], r["kind"]) for r in event["repairs"]] == [("builder_uscc", "upper_cased")]


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("12,345.67", 12345.67, "thousands_separators"),
        ("１２３４５", 12345.0, "full_width_digits"),
        ("１２,３４５", 12345.0, "full_width_digits"),
    ],
)
def test_numbers_with_separators_or_full_width_digits_are_read(text: str, value: float, kind: str) -> None:
    """A floor area written 12,345.67 or in full-width digits is that number."""
    event = norm(raw(jzmj=text))
    assert event["floor_area_m2"] == value
    assert [(r["field"], r["kind"]) for r in event["repairs"]] == [("floor_area_m2", kind)]


@pytest.mark.parametrize(
    ("text", "utc", "kind"),
    [
        ("2026/11/24 10:15:00", datetime(2026, 11, 24, 2, 15, tzinfo=UTC), "slashed_time"),
        ("2026/11/24 10:15", datetime(2026, 11, 24, 2, 15, tzinfo=UTC), "slashed_time"),
        ("20261125101500", datetime(2026, 11, 25, 2, 15, tzinfo=UTC), "compact_time"),
        ("2026-11-24", datetime(2026, 11, 23, 16, 0, tzinfo=UTC), "date_only"),
        ("20261124", datetime(2026, 11, 23, 16, 0, tzinfo=UTC), "date_only"),
        ("2026/11/24", datetime(2026, 11, 23, 16, 0, tzinfo=UTC), "date_only"),
    ],
)
def test_grant_times_in_export_formats_are_read(text: str, utc: datetime, kind: str) -> None:
    """Slashed, compact and date-only times are read in Asia/Shanghai and recorded as repairs."""
    event = norm(raw(blsj=text))
    assert event["occurred_at"] == utc
    assert [(r["field"], r["kind"]) for r in event["repairs"]] == [("occurred_at", kind)]


@pytest.mark.parametrize(
    "text", ["2026-11-24T10:15:00", "2026-11-24 10:15:00.250", "2026-11-24T10:15:00+08:00", "2026-11-24 10:15:00"]
)
def test_iso_times_are_canonical(text: str) -> None:
    """ISO 8601 with or without T, fractions or an offset needs no repair."""
    moment, done = exchange_time(text, "occurred_at")
    assert (moment.replace(microsecond=0), done) == (datetime(2026, 11, 24, 2, 15, tzinfo=UTC), None)


@pytest.mark.parametrize("text", ["2026/02/30 10:00:00", "20261301101500", "25/11/2026", "soon"])
def test_impossible_times_are_still_refused(text: str) -> None:
    """February 30th or month 13 is no time, in any format."""
    with pytest.raises(DataError):
        exchange_time(text, "occurred_at")


def test_a_project_code_of_the_old_laiwu_block_still_routes() -> None:
    """莱芜 371202 became 济南市莱芜区 370116 (国函〔2019〕6号): the project code is kept, the region is today's."""
    event = norm(raw(xmdm="2017-371202-47-01-000123", jsddxzqh="371202"))
    assert (event["project_code"], event["region_code"]) == ("2017-371202-47-01-000123", "370116")
    (repair,) = event["repairs"]
    assert (repair["field"], repair["kind"]) == ("region_code", "division_changed")
    assert "国函〔2019〕6号" in repair["detail"]


def test_a_missing_site_region_falls_back_to_the_project_code_region() -> None:
    """A NULL site region is the project's own region, resolved through the changes table."""
    assert norm(raw(jsddxzqh=None))["region_code"] == "370602"
    assert repairs_of(jsddxzqh=None) == [("region_code", "region_from_project_code")]
    event = norm(raw(xmdm="2018-370282-47-01-000123", jsddxzqh=...))
    assert event["region_code"] == "370215"


@pytest.mark.parametrize(
    ("link", "uri", "kind"),
    [
        (r"\\fileserver\spgl\2026\permit.pdf", "file://fileserver/spgl/2026/permit.pdf", "unc_path"),
        (r"D:\spgl\permit.pdf", "file:///D:/spgl/permit.pdf", "local_path"),
        ("ftp://files.example.cn/permit.pdf", "ftp://files.example.cn/permit.pdf", "non_http_link"),
        ("file:///data/permit.pdf", "file:///data/permit.pdf", "non_http_link"),
    ],
)
def test_material_links_of_any_scheme_are_kept_as_references(link: str, uri: str, kind: str) -> None:
    """A UNC path or an FTP link is a reference with its scheme, not a reason to lose the task."""
    event = norm(raw(fjxx=[{"wjmc": "许可证", "xzdz": link}]))
    assert event["documents"][0]["url"] == uri
    assert [(r["field"], r["kind"]) for r in event["repairs"]] == [("documents.url", kind)]
    assert material_link("https://a.example.cn/x.pdf", "documents.url") == ("https://a.example.cn/x.pdf", None)


@pytest.mark.parametrize(
    ("digest", "labelled", "kind"),
    [
        ("0" * 31 + "A", "md5:" + "0" * 31 + "a", "digest_algorithm"),
        ("MD5:" + "b" * 32, "md5:" + "b" * 32, "digest_algorithm"),
        ("c" * 40, "sha1:" + "c" * 40, "digest_algorithm"),
        (DIGEST.upper(), f"sha256:{DIGEST.lower()}", None),
        (f"sha256:{DIGEST}", f"sha256:{DIGEST.lower()}", None),
    ],
)
def test_digests_are_labelled_with_their_algorithm(digest: str, labelled: str, kind: str | None) -> None:
    """An MD5 is kept as md5:…; SHA-256 stays canonical."""
    event = norm(raw(fjxx=[{"wjmc": "许可证", "sha256": digest}]))
    assert event["documents"][0]["digest"] == labelled
    assert [r["kind"] for r in event["repairs"]] == ([kind] if kind else [])


def test_a_labelled_digest_of_the_wrong_length_is_refused() -> None:
    """md5: with 64 digits is a contradiction, not a repair."""
    with pytest.raises(DataError):
        labelled_digest("md5:" + "a" * 64, "documents.digest")


def test_the_division_changes_table_is_valid_and_every_successor_is_a_known_region() -> None:
    """Each row validates, names its basis, and leads to a region ubridge knows; withdrawn codes are not tabulated."""
    DivisionChanges.model_validate(yaml.safe_load(TABLE.read_text(encoding="utf-8")))
    assert changes()
    for old, change in changes().items():
        now = successor(old)
        assert now is not None and is_known_region(now), old
        assert not is_known_region(old), old
        assert change.basis


def test_number_text_leaves_plain_numbers_alone() -> None:
    """A plain number is not a repair."""
    assert number_text("12345.5", "floor_area_m2") == ("12345.5", None)
