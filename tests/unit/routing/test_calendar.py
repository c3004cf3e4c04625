import math
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.calendar import SHANGHAI, CalendarError, WorkingCalendar, load_calendar, parse_calendar

CALENDAR_FILE = Path(__file__).parents[3] / "deploy" / "config" / "calendar.yaml"
OFFICE_HOURS = ["08:30-12:00", "13:30-17:30"]


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    """The calendar shipped in deploy/config."""
    return load_calendar(CALENDAR_FILE)


def with_2027(**schedule: Any) -> WorkingCalendar:
    return parse_calendar({"office_hours": OFFICE_HOURS, "overrides": {2027: schedule}}, origin="calendar.yaml")


def test_shipped_calendar_has_shandong_office_hours_and_no_overrides(cal: WorkingCalendar) -> None:
    """The shipped file sets 08:30-12:00 and 13:30-17:30 (7.5 h) and invents no year."""
    periods = ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))
    assert (periods, 7.5, frozenset(), frozenset(), frozenset()) == (
        cal.periods,
        cal.hours_per_day,
        cal.holidays,
        cal.workdays,
        cal.override_years,
    )


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 13), True),  # Friday before the Spring Festival
        (date(2026, 2, 14), True),  # make-up Saturday
        (date(2026, 2, 15), False),  # first day of the Spring Festival holiday
        (date(2026, 2, 16), False),
        (date(2026, 2, 17), False),  # 春节 itself
        (date(2026, 2, 20), False),
        (date(2026, 2, 23), False),  # last day, a Monday
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # make-up Saturday
        (date(2026, 3, 1), False),  # an ordinary Sunday
        (date(2026, 9, 30), True),
        (date(2026, 10, 1), False),  # National Day week
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # make-up Saturday after National Day
    ],
)
def test_2026_holidays_and_make_up_days(cal: WorkingCalendar, day: date, working: bool) -> None:
    """The 2026 Spring Festival (Feb 15-23) and National Day (Oct 1-7) are off; their make-up Saturdays work."""
    assert working == cal.is_working_day(day)


def test_first_contact_clock_from_friday_afternoon_ends_monday_morning(cal: WorkingCalendar) -> None:
    """Three working hours from Friday 16:30 are one hour on Friday and two on Monday: due 10:30."""
    due = cal.add_working_hours(sh(2026, 3, 6, 16, 30), 3.0)
    assert (datetime(2026, 3, 9, 2, 30, tzinfo=UTC), UTC) == (due, due.tzinfo)


def test_budget_ending_at_lunch_ends_at_noon(cal: WorkingCalendar) -> None:
    """A budget that runs out exactly at 12:00 ends at 12:00, not when the afternoon opens."""
    assert sh(2026, 3, 9, 12) == cal.add_working_hours(sh(2026, 3, 9, 9), 3.0)


def test_clock_started_outside_office_hours_starts_at_opening(cal: WorkingCalendar) -> None:
    """A clock started at 06:00 or over lunch counts from the next opening."""
    assert (sh(2026, 3, 9, 9, 30), sh(2026, 3, 9, 14, 30)) == (
        cal.add_working_hours(sh(2026, 3, 9, 6), 1.0),
        cal.add_working_hours(sh(2026, 3, 9, 12, 15), 1.0),
    )


def test_day_of_work_before_spring_festival_uses_make_up_saturday(cal: WorkingCalendar) -> None:
    """One working day from Friday 2026-02-13 16:00 ends on the make-up Saturday at 16:00."""
    assert sh(2026, 2, 14, 16) == cal.add_working_hours(sh(2026, 2, 13, 16), 7.5)


def test_clock_over_spring_festival_resumes_after_the_holiday(cal: WorkingCalendar) -> None:
    """One hour from Saturday 2026-02-14 17:00 ends on Tuesday 2026-02-24 at 09:00."""
    assert sh(2026, 2, 24, 9) == cal.add_working_hours(sh(2026, 2, 14, 17), 1.0)


def test_three_day_deadline_crosses_national_day_week(cal: WorkingCalendar) -> None:
    """Three working days from 2026-09-30 09:00 skip Oct 1-7 and end on the make-up Saturday Oct 10 at 09:00."""
    assert sh(2026, 10, 10, 9) == cal.add_working_hours(sh(2026, 9, 30, 9), 3 * 7.5)


def test_hours_between_across_national_day_week(cal: WorkingCalendar) -> None:
    """From 2026-09-30 09:00 to 2026-10-08 09:00 only 7 hours on Sep 30 and half an hour on Oct 8 count."""
    assert 7.5 == cal.working_hours_between(sh(2026, 9, 30, 9), sh(2026, 10, 8, 9))


def test_hours_between_spring_festival_week_is_zero(cal: WorkingCalendar) -> None:
    """Nothing counts between the eve of the holiday's first day and its last evening."""
    assert 0.0 == cal.working_hours_between(sh(2026, 2, 14, 18), sh(2026, 2, 23, 23))


def test_any_time_zone_is_read_as_the_same_instant(cal: WorkingCalendar) -> None:
    """A UTC start and the same instant in Shanghai give the same hours and the same deadline."""
    utc_start = datetime(2026, 3, 6, 8, 30, tzinfo=UTC)
    shanghai_start = sh(2026, 3, 6, 16, 30)
    end = sh(2026, 3, 9, 12)
    assert (cal.working_hours_between(utc_start, end), cal.add_working_hours(utc_start, 2.0)) == (
        cal.working_hours_between(shanghai_start, end),
        cal.add_working_hours(shanghai_start, 2.0),
    )


def test_end_not_after_start_is_zero(cal: WorkingCalendar) -> None:
    """An interval that ends before (or when) it starts has no working time."""
    start = sh(2026, 3, 9, 10)
    assert (0.0, 0.0) == (
        cal.working_hours_between(start, start),
        cal.working_hours_between(start, start - timedelta(hours=1)),
    )


def test_zero_hours_is_the_start_in_utc(cal: WorkingCalendar) -> None:
    """Adding nothing returns the start itself, even outside office hours, as UTC."""
    start = sh(2026, 3, 8, 3)
    result = cal.add_working_hours(start, 0.0)
    assert (start, UTC) == (result, result.tzinfo)


@pytest.mark.parametrize("hours", [-0.5, math.nan, math.inf])
def test_bad_hours_are_refused(cal: WorkingCalendar, hours: float) -> None:
    """Negative, NaN or infinite hours are a ValueError."""
    with pytest.raises(ValueError, match="finite number >= 0"):
        cal.add_working_hours(sh(2026, 3, 9), hours)


def test_naive_datetimes_are_refused(cal: WorkingCalendar) -> None:
    """A naive datetime is a ValueError, never silently read as some zone."""
    naive = datetime(2026, 3, 9, 9)  # noqa: DTZ001
    errors = []
    for call in (
        lambda: cal.working_hours_between(naive, sh(2026, 3, 10)),
        lambda: cal.working_hours_between(sh(2026, 3, 8), naive),
        lambda: cal.add_working_hours(naive, 1.0),
    ):
        with pytest.raises(ValueError, match="must be timezone-aware") as info:
            call()
        errors.append(info.type)
    assert [ValueError] * 3 == errors


def test_a_year_nothing_covers_fails_loudly(cal: WorkingCalendar) -> None:
    """A 2003 day is a CalendarError naming the year, the key to add and the file."""
    with pytest.raises(CalendarError, match=r"2003.*overrides\.2003.*calendar\.yaml"):
        cal.is_working_day(date(2003, 6, 2))


def test_2027_without_override_is_provisional(cal: WorkingCalendar) -> None:
    """2027 is not in chinesecalendar: its days come from the statutory rules, marked provisional."""
    days = [date(2027, 1, 1), date(2027, 1, 4), date(2027, 2, 5), date(2027, 2, 13), date(2027, 2, 15)]
    assert ("provisional", [False, True, False, False, True]) == (
        cal.year_source(2027),
        [cal.is_working_day(day) for day in days],
    )


def test_provisional_rules_can_be_switched_off() -> None:
    """With provisional_rules: false, a 2027 clock is a CalendarError that says the rules are off."""
    strict = parse_calendar({"office_hours": OFFICE_HOURS, "provisional_rules": False}, origin="calendar.yaml")
    with pytest.raises(CalendarError, match=r"provisional_rules is off.*overrides\.2027"):
        strict.add_working_hours(sh(2026, 12, 31, 9), 10.0)


def test_clock_running_into_2027_uses_the_provisional_new_year(cal: WorkingCalendar) -> None:
    """Ten hours from 2026-12-31 09:00 (7 that day) skip the provisional 2027-01-01 holiday and the weekend."""
    start = sh(2026, 12, 31, 9)
    due = cal.add_working_hours(start, 10.0)
    assert (sh(2027, 1, 4, 11, 30), True) == (due, cal.provisional_between(start, due))


def test_provisional_between_and_years(cal: WorkingCalendar) -> None:
    """Only spans that touch a provisional year are provisional; years are read in Asia/Shanghai."""
    new_year_local = sh(2027, 1, 1, 0, 30)  # still 2026 in UTC
    assert (False, True, [2027, 2028], []) == (
        cal.provisional_between(sh(2026, 3, 2, 9), sh(2026, 12, 31, 17)),
        cal.provisional_between(sh(2026, 12, 31, 23), new_year_local),
        cal.provisional_years(sh(2028, 5, 2), sh(2027, 5, 2)),
        cal.provisional_years(sh(2025, 5, 2), sh(2026, 5, 2)),
    )


def test_official_until_follows_package_then_overrides(cal: WorkingCalendar) -> None:
    """Official data ends with chinesecalendar's last year, later with each consecutive override year."""
    both = parse_calendar(
        {"office_hours": OFFICE_HOURS, "overrides": {2027: {"holidays": []}, 2028: {"holidays": []}}},
    )
    gap = parse_calendar({"office_hours": OFFICE_HOURS, "overrides": {2028: {"holidays": []}}})
    assert [date(2026, 12, 31), date(2028, 12, 31), date(2026, 12, 31), date(2026, 12, 31)] == [
        cal.official_until(date(2026, 12, 4)),
        both.official_until(date(2026, 12, 4)),
        gap.official_until(date(2026, 12, 4)),
        cal.official_until(date(2027, 1, 5)),
    ]


def test_special_days_say_where_each_comes_from(cal: WorkingCalendar) -> None:
    """2026's make-up Saturday is official, a 2027 override day is overridden, a rule day provisional."""
    overridden = with_2027(holidays=[date(2027, 1, 1)], workdays=[date(2027, 2, 20)])
    make_up = next(d for d in cal.special_days(2026) if d.day == date(2026, 2, 14))
    assert (
        (True, "春节", "official"),
        [(date(2027, 1, 1), False, "overridden"), (date(2027, 2, 20), True, "overridden")],
        (date(2028, 1, 3), False, "元旦 (补休)", "provisional"),
    ) == (
        (make_up.working, make_up.name, make_up.source),
        [(d.day, d.working, d.source) for d in overridden.special_days(2027)],
        next((d.day, d.working, d.name, d.source) for d in cal.special_days(2028) if d.day == date(2028, 1, 3)),
    )


def test_the_notice_switches_a_year_from_provisional_to_overridden() -> None:
    """Adding overrides.2027 replaces the rules: its make-up Sunday works, its extra day off is off."""
    provisional = parse_calendar({"office_hours": OFFICE_HOURS})
    notice = with_2027(holidays=[date(2027, 2, 4), date(2027, 2, 5), date(2027, 2, 8)], workdays=[date(2027, 1, 31)])
    days = [date(2027, 1, 31), date(2027, 2, 4), date(2027, 2, 9)]
    assert (
        ("provisional", [False, True, False]),
        ("overridden", [True, False, True]),
    ) == (
        (provisional.year_source(2027), [provisional.is_working_day(d) for d in days]),
        (notice.year_source(2027), [notice.is_working_day(d) for d in days]),
    )


def test_clock_ending_on_new_years_eve_needs_nothing_of_2027(cal: WorkingCalendar) -> None:
    """Hours up to 2026-12-31 17:30 are counted without consulting 2027."""
    assert 8.5 == cal.working_hours_between(sh(2026, 12, 30, 16, 30), sh(2026, 12, 31, 17, 30))


def test_2027_override_is_used() -> None:
    """With an override, 2027 holidays are off, ordinary weekdays work and a make-up Saturday works."""
    cal = with_2027(holidays=[date(2027, 1, 1)], workdays=["2027-02-06"])
    days = [date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 4), date(2027, 2, 6), date(2027, 2, 7)]
    assert [False, False, True, True, False] == [cal.is_working_day(day) for day in days]


def test_deadline_across_new_year_with_2027_override() -> None:
    """Two hours from 2026-12-31 17:00 end on Monday 2027-01-04 at 10:00 when Jan 1 is a 2027 holiday."""
    cal = with_2027(holidays=[date(2027, 1, 1)])
    start = sh(2026, 12, 31, 17)
    due = cal.add_working_hours(start, 2.0)
    assert (sh(2027, 1, 4, 10), False) == (due, cal.provisional_between(start, due))


def test_override_replaces_the_package_for_its_year() -> None:
    """An override for 2026 replaces chinesecalendar's 2026 schedule entirely."""
    cal = parse_calendar({"office_hours": OFFICE_HOURS, "overrides": {"2026": {"holidays": [], "workdays": []}}})
    assert (True, False) == (cal.is_working_day(date(2026, 2, 16)), cal.is_working_day(date(2026, 2, 14)))


def test_dataclass_refuses_override_days_outside_override_years() -> None:
    """A holiday in a year that is not an override year is a ValueError."""
    with pytest.raises(ValueError, match="outside the override years"):
        WorkingCalendar(((time(9), time(17)),), holidays=frozenset({date(2027, 1, 1)}))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (["08:30-12:00"], "expected a mapping"),
        ({"office_hours": OFFICE_HOURS, "timezone": "UTC"}, "timezone: Extra inputs are not permitted"),
        ({"office_hours": OFFICE_HOURS, "overides": {}}, "overides: Extra inputs are not permitted; did you mean"),
        ({"office_hours": []}, "office_hours: must be a non-empty list"),
        ({"office_hours": [810]}, "office_hours[0]: 810 is not a quoted 'HH:MM-HH:MM' period"),
        ({"office_hours": ["8:30-12:00"]}, "office_hours[0]: '8:30-12:00' is not a quoted"),
        ({"office_hours": ["25:00-26:00"]}, "office_hours[0]: '25:00-26:00': hour must be in 0..23"),
        ({"office_hours": ["12:00-08:30"]}, "office_hours: 12:00-08:30 ends before it starts"),
        ({"office_hours": ["08:30-12:00", "11:30-17:00"]}, "office_hours: periods must be sorted and disjoint"),
        ({"office_hours": OFFICE_HOURS, "overrides": [2027]}, "overrides: must map a year"),
        ({"office_hours": OFFICE_HOURS, "overrides": {"27": {}}}, "overrides.27.[key]: the key must be a four"),
        ({"office_hours": OFFICE_HOURS, "overrides": {2027: {"days": []}}}, "overrides.2027.days: Extra inputs"),
        (
            {"office_hours": OFFICE_HOURS, "overrides": {2027: {"holidays": "2027-01-01"}}},
            "overrides.2027.holidays: must be a list of dates",
        ),
        (
            {"office_hours": OFFICE_HOURS, "overrides": {2027: {"holidays": ["2027-13-01"]}}},
            "overrides.2027.holidays[0]: '2027-13-01' is not a date",
        ),
        (
            {"office_hours": OFFICE_HOURS, "overrides": {2027: {"holidays": [date(2026, 12, 31)]}}},
            "overrides.2027.holidays[0]: 2026-12-31 is not in 2027",
        ),
        (
            {"office_hours": OFFICE_HOURS, "overrides": {2027: {"workdays": [date(2027, 2, 8)]}}},
            "overrides.2027.workdays[0]: 2027-02-08 is a Monday, already a working day",
        ),
        (
            {
                "office_hours": OFFICE_HOURS,
                "overrides": {2027: {"holidays": [date(2027, 2, 6)], "workdays": [date(2027, 2, 6)]}},
            },
            "overrides.2027.workdays[0]: 2027-02-06 is listed both as a holiday and as a working day",
        ),
    ],
)
def test_invalid_documents_name_origin_and_key(doc: Any, message: str) -> None:
    """Every malformed calendar is a ValueError naming the file and the key."""
    with pytest.raises(ValueError, match=re.escape(f"calendar.yaml: {message}")):
        parse_calendar(doc, origin="calendar.yaml")


def test_every_fault_of_the_structure_is_reported_at_once() -> None:
    """Two bad keys in two places give two lines, each naming the file and its key."""
    doc = {"office_hours": ["08:30-12:00", "13:30-1730"], "overrides": {2027: {"holidays": ["2027-02-30"]}}}
    with pytest.raises(ValueError) as caught:
        parse_calendar(doc, origin="calendar.yaml")
    assert str(caught.value).splitlines() == [
        "calendar.yaml: office_hours[1]: '13:30-1730' is not a quoted 'HH:MM-HH:MM' period",
        "calendar.yaml: overrides.2027.holidays[0]: '2027-02-30' is not a date (YYYY-MM-DD)",
    ]


def test_load_refuses_invalid_yaml(tmp_path: Path) -> None:
    """A file that is not YAML is a ValueError naming the file."""
    path = tmp_path / "calendar.yaml"
    path.write_text("office_hours: [", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not valid YAML")):
        load_calendar(path)


# Property tests run from 2025 to 2098: official years, the change to provisional ones, and provisional years.
starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2098, 6, 30), timezones=st.just(SHANGHAI))  # noqa: DTZ001
hours = st.floats(min_value=0, max_value=400, allow_nan=False)
CAL = load_calendar(CALENDAR_FILE)


@given(start=starts, amount=hours)
def test_add_then_measure_round_trips(start: datetime, amount: float) -> None:
    """The working hours from a start to ``add_working_hours(start, h)`` are ``h``."""
    end = CAL.add_working_hours(start, amount)
    assert math.isclose(amount, CAL.working_hours_between(start, end), abs_tol=1e-6)


@given(start=starts, amount=st.floats(min_value=0.001, max_value=400))
def test_deadlines_fall_in_office_hours_of_working_days(start: datetime, amount: float) -> None:
    """A deadline after a positive budget lies within (or at the end of) a working day's office period."""
    local = CAL.add_working_hours(start, amount).astimezone(SHANGHAI)
    inside = any(opens < local.time() <= closes for opens, closes in CAL.periods)
    assert (True, True) == (CAL.is_working_day(local.date()), inside)


@given(start=starts, first=hours, second=hours)
def test_adding_is_monotonic(start: datetime, first: float, second: float) -> None:
    """More working hours never give an earlier deadline."""
    low, high = sorted((first, second))
    assert CAL.add_working_hours(start, low) <= CAL.add_working_hours(start, high)


@given(
    start=starts,
    first=st.timedeltas(timedelta(0), timedelta(days=60)),
    second=st.timedeltas(timedelta(0), timedelta(days=60)),
)
def test_measuring_is_monotonic(start: datetime, first: timedelta, second: timedelta) -> None:
    """A later end never has fewer working hours, and never more than the wall-clock hours."""
    low, high = sorted((first, second))
    near, far = CAL.working_hours_between(start, start + low), CAL.working_hours_between(start, start + high)
    assert (True, True) == (near <= far, far <= high.total_seconds() / 3600 + 1e-9)
