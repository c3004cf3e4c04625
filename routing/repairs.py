"""Repairs of values a person reads without hesitation, each one recorded so an operator sees what was assumed.

Real exchange databases and interfaces write the same fact in many ways: full-width digits, thousands
separators, ``2026/11/24 10:15:00`` or ``20261125101500``, a lower-case credit code, a region code withdrawn
since the project was registered, a material link on a Windows share, an MD5 digest. Refusing such a record
loses a task for a formatting habit, and silently rewriting it hides what ubridge assumed. Each function here
returns the value in canonical form with the :class:`Repair` it needed (None when the value was canonical);
the normaliser collects them on the event's ``repairs`` and the stage counts them
(``ubridge_records_repaired_total{field,kind}``). ``detail`` never carries personal data.

A value no reading makes sense of still raises :class:`~routing.errors.DataError`.
"""

import re
import unicodedata
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from routing.division_changes import changes, successor
from routing.errors import DataError
from routing.records import Repair

ZONE: Final = ZoneInfo("Asia/Shanghai")
_SHOWN_CHARS: Final = 40
_GROUPED: Final = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_COMPACT_TIME: Final = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})")
_COMPACT_DATE: Final = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_SLASHED: Final = re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?")
_DATE_ONLY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_UNC: Final = re.compile(r"\\\\([^\\/]+)[\\/](.+)")
_DRIVE: Final = re.compile(r"([A-Za-z]):[\\/](.+)")
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://\S+")
_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_DIGEST_BY_LENGTH: Final = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_LABELLED: Final = re.compile(r"(md5|sha1|sha256|sha512):([0-9a-fA-F]+)", re.IGNORECASE)


def repair(field: str, kind: str, detail: str) -> Repair:
    """A repair record."""
    return {"field": field, "kind": kind, "detail": detail}


def number_text(text: str, field: str) -> tuple[str, Repair | None]:
    """``"12,345.67"`` and ``"１２３"`` as ``"12345.67"`` and ``"123"``; other text unchanged (the caller parses it)."""
    folded = unicodedata.normalize("NFKC", text).strip()
    if folded != text.strip():
        text = folded
        kind = "full_width_digits"
    else:
        kind = ""
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
        kind = kind or "thousands_separators"
    return text, (repair(field, kind, f"read as {_shown(text)}") if kind else None)


def exchange_time(text: str, field: str) -> tuple[datetime, Repair | None]:
    """A time as exports write it, naive times read in Asia/Shanghai; aware, with the repair when not ISO 8601.

    Accepted: ISO 8601 with or without ``T``, fractions and offset; ``YYYY/MM/DD[ HH:MM[:SS]]``;
    ``YYYYMMDDHHMMSS``; ``YYYYMMDD``. A date alone is read as the start of that day in Asia/Shanghai, the
    earliest instant it can mean, so a clock that starts from it never starts late (kind ``date_only``).

    Raises:
        DataError: no reading gives a valid time.
    """
    text = unicodedata.normalize("NFKC", text).strip()
    kind = ""
    try:
        if (match := _COMPACT_TIME.fullmatch(text)) is not None:
            moment, kind = _at(match.groups()), "compact_time"
        elif (match := _COMPACT_DATE.fullmatch(text)) is not None:
            moment, kind = _at(match.groups()), "date_only"
        elif (match := _SLASHED.fullmatch(text)) is not None:
            moment, kind = _at(match.groups()), ("slashed_time" if match.group(4) else "date_only")
        else:
            moment = datetime.fromisoformat(text)
            if _DATE_ONLY.fullmatch(text):
                kind = "date_only"
    except (ValueError, OverflowError) as exc:
        raise DataError(field, f"{_shown(text)} is not a time like 2026-11-25 10:31:00") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZONE)
    return moment, (repair(field, kind, f"{_shown(text)} read as {moment.isoformat()}") if kind else None)


def upper_code(code: str, field: str) -> tuple[str, Repair | None]:
    """A credit code or ID number in capitals (the check character ``X`` and USCC letters are capitals)."""
    folded = unicodedata.normalize("NFKC", code).strip()
    upper = folded.upper()
    if upper == code:
        return code, None
    return upper, repair(field, "upper_cased", "letters read as capitals")


def current_region(code: str, field: str) -> tuple[str, Repair | None]:
    """A region code withdrawn since 2015 as the code that took its place; any other code unchanged."""
    now = successor(code)
    if now is None:
        return code, None
    change = changes()[code]
    detail = f"{code} {change.old_name} is {now} since {change.year} ({change.basis})"
    return now, repair(field, "division_changed", detail)


def material_link(link: str, field: str) -> tuple[str, Repair | None]:
    """A material link as a URI: http(s) as given; a UNC or drive path as a ``file:`` URI; other schemes kept.

    The link is a reference for the utility to resolve on its side; ubridge never fetches it, so a scheme it
    cannot fetch is kept rather than refused, and labelled.

    Raises:
        DataError: the text is no link of any kind.
    """
    text = link.strip()
    scheme = _SCHEME.fullmatch(text)
    if scheme is not None:
        name = scheme.group(1).lower()
        if name in ("http", "https"):
            return text, None
        return text, repair(field, "non_http_link", f"{name}: link kept as a reference")
    if (unc := _UNC.fullmatch(text)) is not None:
        uri = f"file://{unc.group(1)}/{unc.group(2).replace(chr(92), '/')}"
        return uri, repair(field, "unc_path", "Windows share path kept as a file: URI")
    if (drive := _DRIVE.fullmatch(text)) is not None:
        uri = f"file:///{drive.group(1).upper()}:/{drive.group(2).replace(chr(92), '/')}"
        return uri, repair(field, "local_path", "local path kept as a file: URI")
    raise DataError(field, f"{_shown(text)} is not a link (a URI, a UNC path or a drive path)")


def labelled_digest(digest: str, field: str) -> tuple[str, Repair | None]:
    """A digest as ``<algorithm>:<lower-case hex>``; a bare SHA-256 is canonical, other algorithms are labelled.

    Raises:
        DataError: neither a labelled digest nor hex of an MD5, SHA-1, SHA-256 or SHA-512 length.
    """
    text = digest.strip()
    if (labelled := _LABELLED.fullmatch(text)) is not None:
        algorithm, value = labelled.group(1).lower(), labelled.group(2).lower()
        if _DIGEST_BY_LENGTH.get(len(value)) != algorithm:
            raise DataError(field, f"{algorithm} digest {_shown(text)} has {len(value)} hex digits")
        result = f"{algorithm}:{value}"
    elif _HEX.fullmatch(text) and len(text) in _DIGEST_BY_LENGTH:
        algorithm, result = _DIGEST_BY_LENGTH[len(text)], f"{_DIGEST_BY_LENGTH[len(text)]}:{text.lower()}"
    else:
        raise DataError(field, f"{_shown(text)} is not 32, 40, 64 or 128 hex digits")
    if algorithm == "sha256":
        return result, None
    return result, repair(field, "digest_algorithm", f"a {algorithm} digest, labelled so")


def _at(groups: tuple[str | None, ...]) -> datetime:
    year, month, day, hour, minute, second = (int(g or 0) for g in (*groups, None, None, None)[:6])
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - the caller sets the zone


def _shown(text: str) -> str:
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}…"
