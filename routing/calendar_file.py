"""The model of ``calendar.yaml``: office hours, the State Council's override years, provisional rules.

:func:`routing.calendar.parse_calendar` validates a document with :class:`CalendarFile`, then checks what
needs the year a day is listed under (the day lies in that year; a make-up working day is a weekend day that
is not also a holiday), and builds the :class:`~routing.calendar.WorkingCalendar`.

Example:
    >>> CalendarFile.model_validate({"office_hours": ["08:30-12:00"]}).office_hours
    ((datetime.time(8, 30), datetime.time(12, 0)),)
"""

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from routing.spelling import did_you_mean

_PERIOD: Final = re.compile(r"([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])")
_YEAR_DIGITS: Final = 4


def _invalid(reason: str) -> PydanticCustomError:
    # The reason goes in as context so that braces in a quoted value are not read as a template.
    return PydanticCustomError("calendar", "{reason}", {"reason": reason})


def _period(value: object) -> tuple[time, time]:
    match = _PERIOD.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        msg = f"{value!r} is not a quoted 'HH:MM-HH:MM' period"
        raise _invalid(msg)
    hour1, minute1, hour2, minute2 = (int(part) for part in match.groups())
    try:
        return time(hour1, minute1), time(hour2, minute2)
    except ValueError as exc:
        msg = f"{value!r}: {exc}"
        raise _invalid(msg) from exc


def _periods_listed(value: object) -> object:
    if not isinstance(value, list) or not value:
        msg = f"must be a non-empty list of quoted 'HH:MM-HH:MM' periods, got {value!r}"
        raise _invalid(msg)
    return value


def _day(value: object) -> date:
    # An unquoted YYYY-MM-DD arrives as a date already; a quoted one as text.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        msg = f"{value!r} is not a date (YYYY-MM-DD)"
        raise _invalid(msg) from None


def _days_listed(value: object) -> object:
    if value is None:
        return []
    if not isinstance(value, list):
        msg = f"must be a list of dates (YYYY-MM-DD), got {value!r}"
        raise _invalid(msg)
    return value


def _year(value: object) -> int:
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or len(text) != _YEAR_DIGITS:
        raise _invalid("the key must be a four-digit year")
    return int(text)


def _years_mapped(value: object) -> object:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"must map a year to {{holidays: [...], workdays: [...]}}, got {type(value).__name__}"
        raise _invalid(msg)
    return value


Period = Annotated[tuple[time, time], BeforeValidator(_period)]
Day = Annotated[date, BeforeValidator(_day)]
Days = Annotated[tuple[Day, ...], BeforeValidator(_days_listed)]
Year = Annotated[int, BeforeValidator(_year)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class YearOverride(_Strict):
    """One year as the State Council's notice gives it: weekdays off, and weekend days worked (调休上班)."""

    holidays: Days = ()
    workdays: Days = ()


class CalendarFile(_Strict):
    """``calendar.yaml``: every key but ``office_hours`` may be left out."""

    office_hours: Annotated[tuple[Period, ...], BeforeValidator(_periods_listed)]
    overrides: Annotated[dict[Year, YearOverride], BeforeValidator(_years_mapped)] = {}
    provisional_rules: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            msg = f"expected a mapping with 'office_hours' and 'overrides', got {type(value).__name__}"
            raise _invalid(msg)
        return value


def describe(error: ValidationError, origin: str) -> str:
    """One ``<origin>: <key>: <reason>`` line per fault, with the nearest spelling of a mistyped key."""
    lines = []
    for item in error.errors(include_url=False):
        key = _key(item["loc"])
        hint = ""
        if item["type"] == "extra_forbidden":
            model = CalendarFile if len(item["loc"]) == 1 else YearOverride
            hint = did_you_mean(item["loc"][-1], model.model_fields)
        lines.append(f"{origin}: {key}: {item['msg']}{hint}" if key else f"{origin}: {item['msg']}")
    return "\n".join(lines)


def _key(loc: Sequence[int | str]) -> str:
    # overrides.<year> is a mapping's key, written as YAML reads it, not a list index
    head, rest = (f"overrides.{loc[1]}", loc[2:]) if len(loc) > 1 and loc[0] == "overrides" else ("", loc)
    return (head + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)).lstrip(".")
