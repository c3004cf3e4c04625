"""Reading a raw 工改 record as both normalisers need it: its JSON object and its source headers."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka.consumer.fetcher import ConsumerRecord

from routing.errors import DataError

_LONG = 2.0**63
_DEEP = 32  # raw records nest four levels at most


@dataclass(frozen=True)
class RawRecord:
    """A raw record's JSON object, its headers as text, and when ubridge first read it."""

    body: dict[str, Any]
    headers: dict[str, str]
    ingested_at: datetime


def read_raw(record: ConsumerRecord) -> RawRecord:
    """Decode a raw record.

    Raises:
        DataError: the value is not a JSON object, or ``ubridge.ingested_at`` is not an aware ISO-8601 time.
    """
    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
    try:
        body = _parse(record.value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise DataError("", f"raw record is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DataError("", "raw record is not a JSON object")
    return RawRecord(body, headers, _ingested_at(headers.get("ubridge.ingested_at")))


def _parse(value: bytes | None) -> Any:
    """The JSON in ``value``, parsed by orjson in a fifth of the standard library's time.

    What orjson refuses (NaN, lone surrogates, UTF-16, a byte-order mark) is parsed, or refused with its
    message, by the standard library, so what is accepted and every error are as they were; so is anything but
    a plain object (refused either way, with the standard library's reason), a value nested deeper than raw
    records ever are (where the standard library's limit is the interpreter's stack), and a value with a number
    beyond 64 bits, which orjson reads as a float where the standard library reads an int.
    """
    try:
        parsed = orjson.loads(value)  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return json.loads(value)  # type: ignore[arg-type]
    return json.loads(value) if type(parsed) is not dict or _unusual(parsed) else parsed  # type: ignore[arg-type]


def _unusual(parsed: dict[str, Any]) -> bool:
    """Whether ``parsed`` nests deeper than :data:`_DEEP` or holds a float of 2**63 or more in magnitude."""
    return _unusual_in(parsed.values(), 1)


def _unusual_in(values: Iterable[Any], depth: int) -> bool:
    """:func:`_unusual` over the ``values`` of a container at ``depth`` - 1 (recursion stops at :data:`_DEEP`)."""
    # recursion instead of a stack of (value, depth) pairs: a tuple pushed per value cost half as much as parsing
    for item in values:
        kind = type(item)
        if kind is float:
            if not -_LONG < item < _LONG:
                return True
        elif kind is dict:
            if depth == _DEEP or _unusual_in(item.values(), depth + 1):
                return True
        elif kind is list and (depth == _DEEP or _unusual_in(item, depth + 1)):
            return True
    return False


def _ingested_at(stamp: str | None) -> datetime:
    if stamp is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise DataError("ubridge.ingested_at", f"header is not an ISO-8601 time: {stamp!r}") from exc
    if moment.tzinfo is None:
        raise DataError("ubridge.ingested_at", f"header has no time zone: {stamp!r}")
    return moment
