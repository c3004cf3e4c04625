"""Working time in Asia/Shanghai: office hours on working days, statutory holidays and make-up days (DESIGN §7).

Which days are working days comes, for each year, from the first of these that has it (its *source*):

1. ``overridden``: the ``overrides`` of the calendar file, copied from the State Council's notice; an override
   year replaces everything else for that year.
2. ``official``: the ``chinesecalendar`` package, which ships the notices from 2004 to its release year.
3. ``provisional``: for a year neither has (2025-2099), the days off that follow from the statutory rules
   (:mod:`routing.holidays`), with no make-up working days: those are unknowable before the notice. Every
   figure computed over such a day says so (:meth:`WorkingCalendar.provisional_between`). ``provisional_rules:
   false`` turns this off.

A day in a year none of them covers raises :class:`CalendarError`; callers record the clock as unclocked and
never let that stop a delivery.

.. code-block:: yaml

    office_hours: ["08:30-12:00", "13:30-17:30"]
    overrides:
      2027:
        holidays: [2027-01-01]
        workdays: []

Example:
    >>> from datetime import UTC, datetime
    >>> cal = parse_calendar({"office_hours": ["08:30-12:00", "13:30-17:30"]})
    >>> friday = datetime(2026, 3, 6, 8, 30, tzinfo=UTC)  # 16:30 in Shanghai
    >>> cal.add_working_hours(friday, 3.0).isoformat()  # one hour on Friday, two on Monday
    '2026-03-09T02:30:00+00:00'
"""

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final, Literal, NoReturn
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import ValidationError

from routing.calendar_file import CalendarFile, describe
from routing.errors import UbridgeError
from routing.holidays import NoProvisionalRulesError, provisional_days_off
from routing.yaml_files import read_yaml

DaySource = Literal["official", "overridden", "provisional"]

TIME_ZONE: Final = "Asia/Shanghai"
SHANGHAI: Final = ZoneInfo(TIME_ZONE)
_ONE_DAY: Final = timedelta(days=1)
_SATURDAY: Final = 5
_PROBED_YEARS: Final = range(1990, 2101)


class CalendarError(UbridgeError):
    """A day outside every known holiday schedule: add the year's ``overrides`` entry, never guess."""


@dataclass(frozen=True)
class SpecialDay:
    """A day that is not an ordinary weekday or weekend: a holiday, or a weekend day worked (调休上班)."""

    day: date
    working: bool
    name: str
    source: DaySource


@dataclass(frozen=True)
class WorkingCalendar:
    """Office hours on working days, in Asia/Shanghai.

    Args:
        periods: Office hours of a working day, sorted and disjoint, e.g. ``((08:30, 12:00), (13:30, 17:30))``.
        holidays: Days off in the override years (weekdays included in the State Council's notice).
        workdays: Make-up working days (调休上班) in the override years, all Saturdays or Sundays.
        override_years: Years whose schedule comes from the overrides, not from ``chinesecalendar``.
        provisional_rules: Whether a year nothing else covers gets the statutory rules' provisional schedule.
        origin: The file the overrides belong in, named by :class:`CalendarError`.
    """

    periods: tuple[tuple[time, time], ...]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    override_years: frozenset[int] = frozenset()
    provisional_rules: bool = True
    origin: str = field(default="calendar.yaml", compare=False)

    def __post_init__(self) -> None:
        if not self.periods:
            _fail("office_hours", "must list at least one period")
        for (_, end), (start, _) in zip(self.periods, self.periods[1:], strict=False):
            if start < end:
                _fail("office_hours", f"periods must be sorted and disjoint; {start:%H:%M} starts before {end:%H:%M}")
        for start, end in self.periods:
            if end <= start:
                _fail("office_hours", f"{start:%H:%M}-{end:%H:%M} ends before it starts")
        stray = sorted(day for day in self.holidays | self.workdays if day.year not in self.override_years)
        if stray:
            _fail("overrides", f"{stray[0]} is outside the override years {sorted(self.override_years)}")

    @property
    def hours_per_day(self) -> float:
        """Office hours of one working day: the length of "1 working day" in every limit."""
        return sum((_span(start, end) for start, end in self.periods), timedelta()).total_seconds() / 3600

    def is_working_day(self, day: date) -> bool:
        """Return whether ``day`` is a working day.

        Raises:
            CalendarError: If no source covers ``day``'s year.
        """
        source = self.year_source(day.year)
        if source == "overridden":
            return day in self.workdays or (day.weekday() < _SATURDAY and day not in self.holidays)
        if source == "official":
            return _package_workday(day)
        if source == "provisional":
            return day.weekday() < _SATURDAY and day not in _provisional(day.year)
        covered = f"{min(_package_years())}-{max(_package_years())}" if _package_years() else "no year"
        rules = "the statutory rules cover 2025-2099" if self.provisional_rules else "provisional_rules is off"
        msg = (
            f"no holiday schedule for {day.year} (chinesecalendar covers {covered}; {rules}); add "
            f"overrides.{day.year} (holidays, workdays) to {self.origin} from the State Council's notice"
        )
        raise CalendarError(msg)

    def year_source(self, year: int) -> DaySource | None:
        """Return where ``year``'s working days come from, or None if nothing covers it."""
        if year in self.override_years:
            return "overridden"
        if year in _package_years():
            return "official"
        if self.provisional_rules and _provisional_or_none(year) is not None:
            return "provisional"
        return None

    def provisional_years(self, start: datetime, end: datetime) -> list[int]:
        """Return the years from ``start`` to ``end`` (either order, Asia/Shanghai) with a provisional schedule."""
        first, last = sorted((_local(start, "start").year, _local(end, "end").year))
        return [year for year in range(first, last + 1) if self.year_source(year) == "provisional"]

    def provisional_between(self, start: datetime, end: datetime) -> bool:
        """Return whether a day from ``start`` to ``end`` (either order) has only a provisional schedule."""
        return bool(self.provisional_years(start, end))

    def official_until(self, today: date) -> date:
        """Return the last day of the unbroken run of official or overridden years from ``today``'s year on.

        The day before ``today``'s year if that year itself is not officially covered.
        """
        year = today.year
        while self.year_source(year) in ("official", "overridden"):
            year += 1
        return date(year - 1, 12, 31)

    def special_days(self, year: int) -> list[SpecialDay]:
        """Return the year's holidays and make-up working days, by date, each with its source.

        Raises:
            CalendarError: If no source covers ``year``.
        """
        source = self.year_source(year)
        if source == "overridden":
            days = [SpecialDay(d, False, "", source) for d in self.holidays if d.year == year]
            days += [SpecialDay(d, True, "", source) for d in self.workdays if d.year == year]
        elif source == "official":
            days = [_package_day(d) for d in _days_of(year) if _is_package_special(d)]
        elif source == "provisional":
            days = [SpecialDay(d, False, name, source) for d, name in _provisional(year).items()]
        else:
            self.is_working_day(date(year, 1, 1))  # raises the CalendarError that names the file
            days = []
        return sorted(days, key=lambda special: special.day)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Return the office time between two aware instants, exact to the microsecond (zero if not after)."""
        first, last = _local(start, "start"), _local(end, "end")
        total = timedelta()
        if last <= first:
            return total
        for opens, closes in self._windows(first, last.date()):
            total += max(timedelta(), min(closes, last) - max(opens, first))
        return total

    def working_hours_between(self, start: datetime, end: datetime) -> float:
        """Return the working hours between two aware instants (any zone); 0 if ``end <= start``.

        Raises:
            ValueError: If either is naive.
            CalendarError: If a day in between has no known schedule.
        """
        return self.working_time_between(start, end).total_seconds() / 3600

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """Return (in UTC) the first instant at which ``amount`` of office time after ``start`` has elapsed."""
        first = _local(start, "start")
        if amount < timedelta():
            msg = f"amount must not be negative, got {amount}"
            raise ValueError(msg)
        if not amount:
            return first.astimezone(UTC)
        remaining = amount
        for opens, closes in self._windows(first):
            begin = max(opens, first)
            if closes - begin >= remaining:
                return (begin + remaining).astimezone(UTC)
            remaining -= max(timedelta(), closes - begin)
        raise AssertionError  # pragma: no cover - _windows never ends; unknown years raise CalendarError

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Return (in UTC) the instant when ``hours`` working hours after ``start`` have elapsed.

        A budget that runs out exactly at the end of a period ends there (12:00), not when the next opens.

        Raises:
            ValueError: If ``start`` is naive or ``hours`` is negative or not finite.
            CalendarError: If the walk reaches a day with no known schedule.
        """
        if not math.isfinite(hours) or hours < 0:
            msg = f"hours must be a finite number >= 0, got {hours!r}"
            raise ValueError(msg)
        return self.add_working_time(start, timedelta(hours=hours))

    def _windows(self, first: datetime, last_day: date = date.max) -> Iterator[tuple[datetime, datetime]]:
        # Office periods from the day of ``first`` to ``last_day``, skipping those that closed before ``first``.
        # Only the days walked are looked up, so a clock ending on 31 December needs nothing of the next year.
        day = first.date()
        while day <= last_day:
            if self.is_working_day(day):
                for start, end in self.periods:
                    closes = datetime.combine(day, end, SHANGHAI)
                    if closes > first:
                        yield datetime.combine(day, start, SHANGHAI), closes
            day += _ONE_DAY


def load_calendar(path: Path) -> WorkingCalendar:
    """Read and validate a calendar YAML file.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not valid YAML or not a valid calendar; the message names the file and key.
    """
    doc = read_yaml(path)
    return parse_calendar(doc, origin=str(path))


def parse_calendar(doc: Mapping[str, Any] | Any, *, origin: str = "<memory>") -> WorkingCalendar:
    """Validate a parsed calendar document (:class:`~routing.calendar_file.CalendarFile`) and build the calendar.

    Raises:
        ValueError: One line per fault, naming ``origin`` and the key, e.g. ``calendar.yaml:
            overrides.2027.workdays[0]: 2027-02-08 is a Monday, already a working day``.
    """
    try:
        model = CalendarFile.model_validate(doc)
    except ValidationError as exc:
        raise ValueError(describe(exc, origin)) from exc
    try:
        for year, schedule in model.overrides.items():
            _check_year(f"overrides.{year}.holidays", schedule.holidays, year)
            _check_year(f"overrides.{year}.workdays", schedule.workdays, year)
            _check_make_up_days(f"overrides.{year}.workdays", schedule.workdays, schedule.holidays)
        return WorkingCalendar(
            model.office_hours,
            frozenset(day for schedule in model.overrides.values() for day in schedule.holidays),
            frozenset(day for schedule in model.overrides.values() for day in schedule.workdays),
            frozenset(model.overrides),
            model.provisional_rules,
            origin=origin,
        )
    except ValueError as exc:
        msg = f"{origin}: {exc}"
        raise ValueError(msg) from exc


def _check_year(path: str, days: tuple[date, ...], year: int) -> None:
    for i, day in enumerate(days):
        if day.year != year:
            _fail(f"{path}[{i}]", f"{day} is not in {year}")


def _check_make_up_days(path: str, workdays: tuple[date, ...], holidays: tuple[date, ...]) -> None:
    for i, day in enumerate(workdays):
        if day in holidays:
            _fail(f"{path}[{i}]", f"{day} is listed both as a holiday and as a working day")
        if day.weekday() < _SATURDAY:
            _fail(f"{path}[{i}]", f"{day} is a {day:%A}, already a working day; list make-up weekend days only")


def _span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)


def _local(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"{name} must be timezone-aware, got naive {moment.isoformat()}"
        raise ValueError(msg)
    return moment.astimezone(SHANGHAI)


def _fail(path: str, reason: str) -> NoReturn:
    msg = f"{path}: {reason}" if path else reason
    raise ValueError(msg)


@functools.lru_cache(maxsize=4096)
def _package_workday(day: date) -> bool:
    """Chinesecalendar's verdict; cached because the ledger asks about the same few days all the time."""
    return bool(chinese_calendar.is_workday(day))


@functools.cache
def _package_years() -> frozenset[int]:
    """The years the installed chinesecalendar has a notice for (it raises NotImplementedError for others)."""
    years: set[int] = set()
    for year in _PROBED_YEARS:
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            continue
        years.add(year)
    return frozenset(years)


@functools.cache
def _provisional_or_none(year: int) -> dict[date, str] | None:
    try:
        return provisional_days_off(year)
    except NoProvisionalRulesError:
        return None


def _provisional(year: int) -> dict[date, str]:
    return _provisional_or_none(year) or {}


def _days_of(year: int) -> Iterator[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += _ONE_DAY


def _is_package_special(day: date) -> bool:
    weekend = day.weekday() >= _SATURDAY
    return _package_workday(day) == weekend or (weekend and chinese_calendar.get_holiday_detail(day)[1] is not None)


def _package_day(day: date) -> SpecialDay:
    holiday = chinese_calendar.get_holiday_detail(day)[1]
    name = next((h.chinese for h in chinese_calendar.Holiday if h.value == holiday), holiday or "")
    return SpecialDay(day, _package_workday(day), str(name), "official")
