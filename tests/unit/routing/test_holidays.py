from datetime import date, timedelta

import chinese_calendar
import pytest

from routing.holidays import NoProvisionalRulesError, provisional_days_off


def span(first: date, days: int) -> set[date]:
    return {first + timedelta(days=i) for i in range(days)}


def weekdays_off(year: int) -> set[date]:
    return {day for day in provisional_days_off(year) if day.weekday() < 5}


def official_weekdays_off(year: int) -> set[date]:
    day, off = date(year, 1, 1), set()
    while day.year == year:
        if day.weekday() < 5 and not chinese_calendar.is_workday(day):
            off.add(day)
        day += timedelta(days=1)
    return off


def test_2027_days_off_follow_the_rules() -> None:
    """2027: 元旦 Fri; 春节 from 除夕 (Feb 5) for 8 days; 清明 Apr 5; May 1-5; 端午 Jun 9; 中秋 Sep 15; Oct 1-7."""
    expected = (
        {date(2027, 1, 1)}
        | span(date(2027, 2, 5), 8)
        | {date(2027, 4, 5)}
        | span(date(2027, 5, 1), 5)
        | {date(2027, 6, 9), date(2027, 9, 15)}
        | span(date(2027, 10, 1), 7)
    )
    assert expected == set(provisional_days_off(2027))


def test_2027_spring_festival_starts_on_the_lunar_new_years_eve() -> None:
    """2027's 正月初一 is Saturday Feb 6, so the break runs from Friday Feb 5 (除夕) to Friday Feb 12."""
    days = provisional_days_off(2027)
    spring = sorted(day for day, name in days.items() if name.startswith("春节"))
    assert (date(2027, 2, 5), date(2027, 2, 12), ["春节"] * 4) == (
        spring[0],
        spring[-1],
        [days[day] for day in spring[:4]],
    )


def test_2028_weekend_holidays_give_the_next_working_day_off() -> None:
    """2028: 元旦 on Saturday → Monday Jan 3 off; 端午 on Sunday May 28 → Monday May 29 off (补假)."""
    days = provisional_days_off(2028)
    assert ("元旦 (补休)", "端午节 (补休)") == (days[date(2028, 1, 3)], days[date(2028, 5, 29)])


def test_2028_mid_autumn_merges_with_national_day_into_eight_days() -> None:
    """2028's 中秋 is Oct 3, inside the National Day break: Oct 1-8 off, Oct 9 not."""
    days = provisional_days_off(2028)
    assert (span(date(2028, 10, 1), 8), False) == (
        {day for day in days if day.month == 10},
        date(2028, 10, 9) in days,
    )


def test_2028_tuesday_holiday_is_not_bridged() -> None:
    """2028's 清明 is Tuesday Apr 4: the Monday bridge needs a make-up day nobody knows yet, so Apr 3 works."""
    days = provisional_days_off(2028)
    assert (True, False) == (date(2028, 4, 4) in days, date(2028, 4, 3) in days)


def test_2029_saturday_mid_autumn_gives_monday_off() -> None:
    """2029's 中秋 is Saturday Sep 22 (not merged): Monday Sep 24 is its 补休."""
    days = provisional_days_off(2029)
    assert ("中秋节", "中秋节 (补休)") == (days[date(2029, 9, 22)], days[date(2029, 9, 24)])


def test_the_rules_reproduce_2025_official_days_off() -> None:
    """For 2025, the first year under the rules, every weekday off matches the State Council's notice."""
    assert official_weekdays_off(2025) == weekdays_off(2025)


def test_2026_differs_only_by_its_bridged_new_year_friday() -> None:
    """2026's notice bridged Thursday 元旦 to Friday Jan 2 (调休), which the rules cannot foresee."""
    assert ({date(2026, 1, 2)}, set()) == (
        official_weekdays_off(2026) - weekdays_off(2026),
        weekdays_off(2026) - official_weekdays_off(2026),
    )


@pytest.mark.parametrize("year", [2024, 2100])
def test_years_outside_the_rules_are_refused(year: int) -> None:
    """Before 2025 (other rules) and after 2099 there is no provisional schedule."""
    with pytest.raises(NoProvisionalRulesError, match=str(year)):
        provisional_days_off(year)


@pytest.mark.parametrize("year", range(2025, 2100))
def test_every_year_holds_the_thirteen_statutory_days(year: int) -> None:
    """Each year from 2025 to 2099 has 第二条's 13 days, in the year, and every 补休 on a weekday."""
    days = provisional_days_off(year)
    statutory = sum(len(name.split("、")) for name in days.values() if "(" not in name)
    substitutes = [day for day, name in days.items() if name.endswith("(补休)")]
    assert (13, True, True) == (
        statutory,
        all(day.year == year for day in days),
        all(day.weekday() < 5 for day in substitutes),
    )
