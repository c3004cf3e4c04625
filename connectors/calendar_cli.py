"""``ubridge calendar show [YEAR]``: a year's days off and make-up working days, and where each comes from.

Every day is ``official`` (the ``chinesecalendar`` package, i.e. the State Council's published notice),
``overridden`` (``overrides.<year>`` of the calendar file) or ``provisional`` (the statutory rules, for a year
with neither; no make-up days). The calendar is the configuration's (``--config``), a file (``--calendar``),
or the shipped ``deploy/config/calendar.yaml``.

Example::

    ubridge calendar show 2027
    ubridge calendar show 2027 --config /etc/ubridge/ubridge.yaml
"""

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectors.ledger.show import DEFAULT_CALENDAR
from connectors.settings import ConfigError, load_settings
from routing.calendar import SHANGHAI, DaySource, SpecialDay, WorkingCalendar, load_calendar
from routing.holidays import RULES_SOURCE

_PIPE_WIDTH = 120
_SOURCE_STYLE = {"official": "green", "overridden": "cyan", "provisional": "yellow"}
_ABOUT: dict[DaySource, str] = {
    "official": "the State Council's notice, as shipped by the chinesecalendar package",
    "overridden": "overrides.{year} in {origin}",
    "provisional": (
        "provisional: no State Council notice for {year} is known yet. Days off follow "
        + RULES_SOURCE
        + "; make-up working days (调休上班) cannot be known before the notice, so none are added. "
        "When the notice is published, copy it into overrides.{year} of {origin}."
    ),
}


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``calendar show`` to the ``ubridge`` command."""
    calendar = subparsers.add_parser("calendar", help="the working-day calendar of every SLA clock")
    commands = calendar.add_subparsers(title="calendar commands")
    show = commands.add_parser("show", help="a year's days off and make-up working days, with their source")
    show.add_argument("year", type=int, nargs="?", help="the year (default: this year, Asia/Shanghai)")
    where = show.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="use the calendar of this configuration's ledger")
    where.add_argument("--calendar", type=Path, help="calendar YAML (default: the shipped one)")
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the year's calendar; 2 when the configuration or calendar is invalid or does not cover the year."""
    year: int = args.year if args.year is not None else datetime.now(SHANGHAI).year
    try:
        calendar = load_calendar(_calendar_path(args))
    except (ConfigError, OSError, ValueError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    source = calendar.year_source(year)
    if source is None:
        print(f"ubridge: no holiday schedule for {year}; add overrides.{year} to {calendar.origin}", file=sys.stderr)
        return 2
    console = Console() if sys.stdout.isatty() else Console(width=_PIPE_WIDTH)
    console.print(render(year, source, calendar.special_days(year), _working_days(calendar, year)))
    console.print(_ABOUT[source].format(year=year, origin=calendar.origin))
    official_until = calendar.official_until(date(year, 1, 1))
    if official_until.year >= year:
        console.print(f"official or overridden data runs to {official_until.isoformat()}")
    return 0


def render(year: int, source: DaySource, days: Sequence[SpecialDay], working_days: int) -> Table:
    """The year's special days as a rich table."""
    table = Table(
        title=f"Working-day calendar {year}: {source}",
        caption=f"{working_days} working days in {year}; weekends not listed unless worked or inside a break",
    )
    for column in ("date", "weekday", "kind", "holiday", "source"):
        table.add_column(column, no_wrap=True)
    for special in days:
        style = _SOURCE_STYLE.get(special.source, "")
        table.add_row(
            special.day.isoformat(),
            f"{special.day:%a}",
            "make-up working day (调休上班)" if special.working else "day off",
            special.name,
            f"[{style}]{special.source}[/]" if style else special.source,
        )
    return table


def _working_days(calendar: WorkingCalendar, year: int) -> int:
    day, count = date(year, 1, 1), 0
    while day.year == year:
        count += calendar.is_working_day(day)
        day += timedelta(days=1)
    return count


def _calendar_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        settings = load_settings(args.config)
        section = settings.ledger or settings.applications
        if section is None:
            msg = f"{args.config}: neither ledger nor applications names a calendar"
            raise ConfigError(msg)
        return section.calendar
    return args.calendar or DEFAULT_CALENDAR
