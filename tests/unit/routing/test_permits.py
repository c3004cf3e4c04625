"""External-works permits by region (issue 18 item 1): filings, 告知承诺, 零审批, the departments' clock."""

import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from routing.calendar import SHANGHAI, load_calendar
from routing.errors import DataError
from routing.permits import (
    PERMIT_KINDS,
    PermitPolicy,
    PermitRequest,
    Source,
    department_due,
    excluded_working_hours,
    load_permit_policy,
    plan_filings,
)

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_permit_policy(ROOT / "deploy" / "config" / "permits.yaml")
CAL = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
SEEDS = ROOT / "tests" / "data" / "seeds"
YANTAI, LIAOCHENG, ZHENGZHOU = "370602", "371502", "410105"


def seed_text(document: str) -> str:
    """The seed's text without whitespace."""
    (path,) = SEEDS.glob(f"{document}_*.txt")
    return re.sub(r"\s+", "", path.read_text(encoding="utf-8"))


def sources(policy: PermitPolicy) -> list[Source]:
    """Every source the policy quotes."""
    found = []
    for region in (policy.default, *policy.regions):
        found += [region.limit_source, *(e.source for e in region.exemptions)]
        found += [region.exclusion_source] if region.exclusion_source is not None else []
    return found


@pytest.mark.parametrize("source", sources(POLICY), ids=lambda s: s.quote[:20])
def test_every_rule_quotes_its_seed_verbatim(source: Source) -> None:
    """Each quoted sentence (parts joined by …) is the cited seed's own text."""
    document = re.search(r"\((\d{3})\)", source.document)
    assert document is not None, f"{source.document} names no seed"
    text = seed_text(document[1])
    assert [part for part in re.sub(r"\s+", "", source.quote).split("…") if part not in text] == []


def kinds_and_how(request: PermitRequest) -> list[tuple[str, str]]:
    """(kind, how) of each filing."""
    return [(f.kind, f.how) for f in plan_filings(request, POLICY)]


APPLY, COMMIT, EXEMPT = "APPLICATION", "COMMITMENT", "EXEMPT"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (PermitRequest(("PLANNING", "ROAD_EXCAVATION"), 120.0, YANTAI), [COMMIT, APPLY]),
        (PermitRequest(("PLANNING",), 150.0, YANTAI), [APPLY]),  # 150米以下: 150 m is not below
        (PermitRequest(("PLANNING",), 149.9, LIAOCHENG), [COMMIT]),
        (PermitRequest(("TREE_FELLING", "GREEN_SPACE"), 80.0, LIAOCHENG), [APPLY, APPLY]),
        (PermitRequest(("PLANNING", "ROAD_OCCUPATION"), 90.0, ZHENGZHOU, simple_low_risk=True), [EXEMPT, EXEMPT]),
        (PermitRequest(("PLANNING", "ROAD_OCCUPATION"), 90.0, ZHENGZHOU), [COMMIT, APPLY]),
        (PermitRequest(("ROAD_OCCUPATION",), 200.0, ZHENGZHOU, simple_low_risk=True), [APPLY]),
        (PermitRequest(("PLANNING",), 10.0, "110105"), [COMMIT]),  # no region's policy: the default's
    ],
)
def test_each_permit_becomes_what_its_region_says(request_: PermitRequest, expected: list[str]) -> None:
    """Short pipe: 告知承诺 for planning (001/002); 零审批 only for Zhengzhou's simple low-risk projects; else apply."""
    assert kinds_and_how(request_) == list(zip(request_.kinds, expected, strict=True))


def test_each_filing_names_the_regions_department_and_its_source() -> None:
    """Yantai's departments are Yantai's; the commitment cites 001's exemption, the application the 3-day limit."""
    planning, road = plan_filings(PermitRequest(("PLANNING", "ROAD_EXCAVATION"), 60.0, YANTAI), POLICY)
    assert (planning.department, road.department) == ("烟台市自然资源和规划局", "烟台市城市管理局")
    assert "规划许可豁免" in planning.source.quote and "3个工作日内办结" in road.source.quote


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (PermitRequest((), 50.0, YANTAI), "kinds"),
        (PermitRequest(("PLANNING", "PLANNING"), 50.0, YANTAI), "kinds"),
        (PermitRequest(("PLANNING",), 0.0, YANTAI), "pipe_length_m"),
        (PermitRequest(("PLANNING",), float("nan"), YANTAI), "pipe_length_m"),
    ],
)
def test_a_bad_request_is_refused_naming_its_field(request_: PermitRequest, field: str) -> None:
    """No permit, one twice, or a length that is not a positive number: a DataError on that field."""
    with pytest.raises(DataError) as refused:
        plan_filings(request_, POLICY)
    assert refused.value.field == field


def test_the_departments_three_working_days_skip_the_weekend() -> None:
    """Filed on Thursday 2026-12-03 at 10:00: due Tuesday 2026-12-08 at 10:00 (three working days)."""
    filed = datetime(2026, 12, 3, 10, tzinfo=SHANGHAI)
    assert department_due(filed, POLICY.for_region(YANTAI), CAL) == datetime(2026, 12, 8, 10, tzinfo=SHANGHAI)


def test_parallel_permits_are_left_out_once_where_the_region_excludes_them() -> None:
    """Yantai (004: 不含…不可控的时间): overlapping permits count once; Liaocheng keeps the utility's clock whole."""
    monday = datetime(2026, 12, 7, 9, tzinfo=SHANGHAI)
    pending = [
        (monday, monday.replace(hour=11)),
        (monday.replace(hour=10), monday.replace(hour=12)),  # overlaps the first: 9-12 counts once
        (monday.replace(day=8, hour=9), monday.replace(day=8, hour=10)),
    ]
    expected = CAL.working_hours_between(monday, monday.replace(hour=12)) + 1.0
    assert excluded_working_hours(pending, POLICY.for_region(YANTAI), CAL) == pytest.approx(expected)
    assert excluded_working_hours(pending, POLICY.for_region(LIAOCHENG), CAL) == 0.0
    assert excluded_working_hours([], POLICY.for_region(YANTAI), CAL) == 0.0


def test_a_permit_decided_before_it_was_filed_is_refused() -> None:
    """An interval that ends before it starts is a DataError, not a negative pause."""
    monday = datetime(2026, 12, 7, 9, tzinfo=SHANGHAI)
    with pytest.raises(DataError, match="before it was filed"):
        excluded_working_hours([(monday, monday.replace(hour=8))], POLICY.for_region(YANTAI), CAL)


def test_the_longest_region_prefix_wins(tmp_path: Path) -> None:
    """A county's policy beats its city's, the city's the province default."""
    document = yaml.safe_load((ROOT / "deploy" / "config" / "permits.yaml").read_text(encoding="utf-8"))
    county = {**document["regions"][0], "regions": ["370685"], "limit_working_days": 2}
    document["regions"].append(county)
    path = tmp_path / "permits.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    policy = load_permit_policy(path)
    days = [policy.for_region(code).limit_working_days for code in ("370685", "370602", "371502")]
    assert days == [2, 3, 3]
    assert policy.for_region("370602").departments_time_excluded is True
    assert policy.for_region("371502") == policy.default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["default"]["departments"].pop("GREEN_SPACE"), "no department for GREEN_SPACE"),
        (lambda d: d["regions"][0].pop("exclusion_source"), "exclusion_source: required"),
        (lambda d: d["regions"].append(dict(d["regions"][0])), "3706 already has a policy"),
        (lambda d: d["default"]["exemptions"][0].update(filing="MAYBE"), "default.exemptions[0].filing"),
        (lambda d: d["default"].update(limit_working_days=0), "limit_working_days"),
        (lambda d: d["default"].update(regions=["37"]), "default.regions: the default applies wherever"),
        (lambda d: d["regions"][1].update(regions=[]), "regions[1].regions: name at least one"),
    ],
)
def test_a_bad_policy_file_names_the_key(tmp_path: Path, change: object, message: str) -> None:
    """Validation at start-up: the message names the file and the bad key."""
    document = yaml.safe_load((ROOT / "deploy" / "config" / "permits.yaml").read_text(encoding="utf-8"))
    assert callable(change)
    change(document)
    path = tmp_path / "permits.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_permit_policy(path)


def test_every_kind_has_a_department_everywhere() -> None:
    """The shipped policy names a department for each kind in every region."""
    for region in (POLICY.default, *POLICY.regions):
        assert set(region.departments) == set(PERMIT_KINDS)
