"""Reading a raw 工改 record as both normalisers need it: its JSON object and its source headers."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from routing.errors import DataError


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
        body = json.loads(record.value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise DataError("", f"raw record is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DataError("", "raw record is not a JSON object")
    return RawRecord(body, headers, _ingested_at(headers.get("ubridge.ingested_at")))


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
