"""External-works permits (issue 18 item 1), on plain data: the policy, the application, the filings, the clock."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from routing.calendar import SHANGHAI, load_calendar
from routing.errors import DataError
from routing.permits import (
    DECIDED,
    KINDS,
    PermitApplication,
    PermitState,
    PermitStatus,
    advance,
    application_id,
    commitment_applies,
    decision_due,
    filings,
    load_policy,
    overdue,
    parse_application,
    working_hours_taken,
)
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CAL = load_calendar(CONFIG / "calendar.yaml")
POLICY = load_policy(CONFIG / "permits.yaml")
NOW = datetime(2026, 3, 9, 1, tzinfo=UTC)
SUBMITTED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday, office hours


def body(**changes: Any) -> dict[str, Any]:
    """A valid application of a Zhengzhou utility, with ``changes``."""
    payload: dict[str, Any] = {
        "application_no": "ZZ-2026-0001",
        "task_id": "task-1",
        "project_code": "2026-410105-47-01-000001",
        "region_code": "410105",
        "kinds": ["PLANNING", "ROAD_EXCAVATION", "TREE_FELLING"],
        "pipe_length_m": 320.0,
        "route": "花园路 经三路口 至 地块红线",
        "filed_at": "2026-03-09T09:00:00+08:00",
    }
    payload.update(changes)
    return payload


def parse(**changes: Any) -> PermitApplication:
    """The application of ``body(**changes)`` filed by zhengzhou-water."""
    return parse_application(body(**changes), utility_id="zhengzhou-water", policy=POLICY, source="test", now=NOW)


def test_the_shipped_policy_quotes_its_seeds() -> None:
    """Every rule cites its seed's words; 001's carries the 3 working days and the 150 m threshold."""
    assert set(POLICY.departments) == set(KINDS)
    zhengzhou = POLICY.rule_for("410105")
    assert zhengzhou is not None
    assert zhengzhou.source.document == "001"
    assert "3个工作日内办结" in zhengzhou.source.quote
    assert "150米以下" in zhengzhou.source.quote
    assert (zhengzhou.decision_working_days, zhengzhou.planning_exempt_below_metres) == (3, 150)
    for rule in POLICY.rules:
        (seed,) = (CONFIG.parents[1] / "tests" / "data" / "seeds").glob(f"{rule.source.document}_*.txt")
        text = re.sub(r"\s+", "", seed.read_text(encoding="utf-8"))
        assert re.sub(r"\s+", "", rule.source.quote) in text, f"{rule.id} does not quote its seed verbatim"


def test_a_region_without_a_rule_has_none() -> None:
    """A site outside the configured regions gets no rule, hence no deadline and no 告知承诺."""
    assert POLICY.rule_for("110101") is None
    assert decision_due(SUBMITTED, rule=None, calendar=CAL, now=SUBMITTED) is None


def test_a_policy_missing_a_department_is_refused(tmp_path: Path) -> None:
    """Every kind needs its department; the error names the missing kind."""
    text = (CONFIG / "permits.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "permits.yaml"
    bad.write_text(
        text.replace("  GREEN_SPACE: {code: greening, name: 园林绿化局（占用绿地）}\n", ""), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="GREEN_SPACE"):
        load_policy(bad)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("decision_working_days: 3", "decision_working_days: 0", "decision_working_days"),
        ("planning_exempt_below_metres: 150", "planning_exempt_below_metres: -1", "planning_exempt_below_metres"),
        ('regions: ["4101"]', 'regions: ["41x"]', "regions"),
        ("ROAD_OCCUPATION:", "ROAD_CLOSURE:", "ROAD_CLOSURE"),
    ],
)
def test_a_bad_key_is_named(tmp_path: Path, old: str, new: str, key: str) -> None:
    """A bad value or an unknown kind fails validation naming the file and the key."""
    bad = tmp_path / "permits.yaml"
    bad.write_text((CONFIG / "permits.yaml").read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"permits\.yaml[\s\S]*{key}"):
        load_policy(bad)


def test_an_application_is_parsed_with_its_rule() -> None:
    """A Zhengzhou application of 320 m gets 001's rule and files every permit, planning included."""
    application = parse()
    assert application["rule_id"] == "zhengzhou-001-parallel"
    assert application["commitment_notice"] is False
    assert application["filed_at"] == datetime(2026, 3, 9, 1, tzinfo=UTC)
    assert application["application_id"] == application_id("zhengzhou-water", "ZZ-2026-0001")
    assert [(f.kind, f.department.code, f.commitment) for f in filings(application, POLICY)] == [
        ("PLANNING", "planning", False),
        ("ROAD_EXCAVATION", "road", False),
        ("TREE_FELLING", "greening", False),
    ]


def test_a_short_pipe_in_zhengzhou_files_a_commitment_instead_of_planning() -> None:
    """Below 150 m the planning permit becomes a 告知承诺 record; the other permits are still submitted."""
    application = parse(pipe_length_m=149.9)
    assert application["commitment_notice"] is True
    marked = {f.kind: f.commitment for f in filings(application, POLICY)}
    assert marked == {"PLANNING": True, "ROAD_EXCAVATION": False, "TREE_FELLING": False}


@pytest.mark.parametrize(
    ("region", "length", "expected"),
    [
        ("410105", 150.0, False),
        ("410105", 10.0, True),
        ("371502", 10.0, False),
        ("370602", 10.0, False),
        ("110101", 10.0, False),
    ],
)
def test_the_exemption_holds_only_where_the_region_says(region: str, length: float, expected: bool) -> None:
    """150 m exactly is not "below"; 聊城 and 烟台 state no threshold; an unconfigured region has none."""
    assert commitment_applies(POLICY.rule_for(region), length) is expected
    assert parse(region_code=region, pipe_length_m=length)["commitment_notice"] is expected


def test_the_same_number_of_the_same_utility_is_the_same_application() -> None:
    """A resent application keeps its id; another utility's same number is another application."""
    assert application_id("a", "1") == application_id("a", "1")
    assert application_id("a", "1") != application_id("b", "1")
    assert application_id("a", "1") != application_id("a", "2")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"application_no": ""}, "application_no"),
        ({"task_id": None}, "task_id"),
        ({"project_code": 7}, "project_code"),
        ({"project_code": " "}, "project_code"),
        ({"region_code": "4101"}, "region_code"),
        ({"region_code": "４１０１０５"}, "region_code"),
        ({"kinds": []}, "kinds"),
        ({"kinds": "PLANNING"}, "kinds"),
        ({"kinds": ["PLANNING", "PLANNING"]}, "kinds"),
        ({"kinds": ["ROAD_CLOSURE"]}, "kinds"),
        ({"pipe_length_m": 0}, "pipe_length_m"),
        ({"pipe_length_m": -5}, "pipe_length_m"),
        ({"pipe_length_m": True}, "pipe_length_m"),
        ({"pipe_length_m": "30"}, "pipe_length_m"),
        ({"pipe_length_m": float("inf")}, "pipe_length_m"),
        ({"pipe_length_m": 100_001}, "pipe_length_m"),
        ({"route": " "}, "route"),
        ({"route": "路" * 501}, "route"),
        ({"filed_at": "2026-03-09T09:00:00"}, "filed_at"),
        ({"filed_at": "yesterday"}, "filed_at"),
        ({"filed_at": None}, "filed_at"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    """Each missing, unknown or invalid field raises a DataError naming it."""
    with pytest.raises(DataError) as caught:
        parse(**changes)
    assert caught.value.field == field


def test_a_missing_field_is_named() -> None:
    """An application without its route names route."""
    payload = body()
    del payload["route"]
    with pytest.raises(DataError) as caught:
        parse_application(payload, utility_id="u", policy=POLICY, source="test", now=NOW)
    assert caught.value.field == "route"


def test_works_without_a_construction_project_have_no_project_code() -> None:
    """A 爱山东 household connection has no 项目代码: absent or null, the application is taken without one."""
    absent = body()
    del absent["project_code"]
    for payload in (absent, body(project_code=None)):
        application = parse_application(payload, utility_id="u", policy=POLICY, source="test", now=NOW)
        assert application["project_code"] is None


MOVES: list[tuple[PermitState, PermitState]] = [
    ("SUBMITTED", "ACCEPTED"),
    ("SUBMITTED", "MORE_REQUIRED"),
    ("SUBMITTED", "GRANTED"),
    ("SUBMITTED", "REFUSED"),
    ("ACCEPTED", "MORE_REQUIRED"),
    ("ACCEPTED", "GRANTED"),
    ("ACCEPTED", "REFUSED"),
    ("MORE_REQUIRED", "ACCEPTED"),
    ("MORE_REQUIRED", "GRANTED"),
    ("MORE_REQUIRED", "REFUSED"),
]
STATES: tuple[PermitState, ...] = ("SUBMITTED", "ACCEPTED", "MORE_REQUIRED", "GRANTED", "REFUSED", "COMMITTED")


@pytest.mark.parametrize("current", STATES)
@pytest.mark.parametrize("new", STATES)
def test_every_move_of_a_permit(current: PermitState, new: PermitState) -> None:
    """Forward moves are taken, a repeat is ignored, anything else (leaving a decision, going back) refused."""
    if current == new:
        assert advance(current, new) is False
    elif (current, new) in MOVES:
        assert advance(current, new) is True
    else:
        with pytest.raises(DataError, match=f"a {current} permit cannot become {new}"):
            advance(current, new)


@pytest.mark.parametrize("new", STATES)
def test_a_first_state_is_always_a_move(new: PermitState) -> None:
    """A permit not seen yet takes any state."""
    assert advance(None, new) is True


def test_three_working_days_skip_the_weekend() -> None:
    """Submitted Thursday 9:00, the departments have until Tuesday 9:00 (Saturday and Sunday are not counted)."""
    rule = POLICY.rule_for("410105")
    thursday = datetime(2026, 3, 12, 9, tzinfo=SHANGHAI)
    due = decision_due(thursday, rule=rule, calendar=CAL, now=thursday)
    assert due == datetime(2026, 3, 17, 9, tzinfo=SHANGHAI)


def test_a_more_required_wait_is_left_out_of_the_clock() -> None:
    """A 补正 from Monday 10:00 to Tuesday 10:00 pushes the Thursday 9:00 deadline to Friday 9:00."""
    rule = POLICY.rule_for("410105")
    waits = [(datetime(2026, 3, 9, 10, tzinfo=SHANGHAI), datetime(2026, 3, 10, 10, tzinfo=SHANGHAI))]
    plain = decision_due(SUBMITTED, rule=rule, calendar=CAL, now=SUBMITTED)
    paused = decision_due(SUBMITTED, rule=rule, calendar=CAL, waits=waits, now=SUBMITTED)
    assert plain == datetime(2026, 3, 12, 9, tzinfo=SHANGHAI)
    assert paused == datetime(2026, 3, 13, 9, tzinfo=SHANGHAI)


def test_the_departments_working_hours_leave_out_the_wait_and_the_weekend() -> None:
    """Monday 9:00 to the next Monday 9:00 with a 补正 wait of one working day: four days' hours, not seven."""
    waits = [(datetime(2026, 3, 9, 10, tzinfo=SHANGHAI), datetime(2026, 3, 10, 10, tzinfo=SHANGHAI))]
    decided = datetime(2026, 3, 16, 9, tzinfo=SHANGHAI)
    plain = working_hours_taken(SUBMITTED, calendar=CAL, at=decided)
    assert plain == 5 * CAL.hours_per_day
    assert working_hours_taken(SUBMITTED, calendar=CAL, waits=waits, at=decided) == plain - CAL.hours_per_day
    assert working_hours_taken(SUBMITTED, calendar=CAL, waits=[(waits[0][0], None)], at=decided) == 1.0


def test_an_open_wait_holds_the_clock_until_now() -> None:
    """While the utility still owes the material, the deadline moves with the wait."""
    rule = POLICY.rule_for("410105")
    start = datetime(2026, 3, 9, 10, tzinfo=SHANGHAI)
    later = datetime(2026, 3, 11, 10, tzinfo=SHANGHAI)
    due = decision_due(SUBMITTED, rule=rule, calendar=CAL, waits=[(start, None)], now=later)
    assert due == datetime(2026, 3, 16, 9, tzinfo=SHANGHAI)


def status(state: PermitState, due: datetime | None) -> PermitStatus:
    """A ROAD_EXCAVATION permit in ``state`` due at ``due``."""
    return {
        "permit_id": "a:ROAD_EXCAVATION",
        "application_id": "a",
        "utility_id": "u",
        "task_id": "t",
        "project_code": "p",
        "kind": "ROAD_EXCAVATION",
        "department": "road",
        "state": state,
        "reason": None,
        "reference": None,
        "rule_id": None,
        "due_at": due,
        "occurred_at": SUBMITTED,
        "reported_at": SUBMITTED,
        "working_hours": 2.5,
    }


@pytest.mark.parametrize("state", STATES)
def test_only_an_undecided_permit_past_its_deadline_is_overdue(state: PermitState) -> None:
    """Past due, SUBMITTED and ACCEPTED are overdue; decided ones and one waiting for 补正 are not."""
    due = SUBMITTED + timedelta(days=3)
    assert overdue(status(state, due), due + timedelta(seconds=1)) is (state in {"SUBMITTED", "ACCEPTED"})
    assert overdue(status(state, due), due) is False
    assert overdue(status(state, None), due + timedelta(days=30)) is False
    assert ("COMMITTED" in DECIDED) is True


def test_the_records_round_trip_through_avro() -> None:
    """The application and a status encode and decode unchanged with the current schemas."""
    codec = Codec.default()
    application = parse()
    assert codec.decode(codec.encode("PermitApplication", dict(application)))[1] == application
    record = status("MORE_REQUIRED", SUBMITTED)
    assert codec.decode(codec.encode("PermitStatus", dict(record)))[1] == record
