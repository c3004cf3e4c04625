"""A utility's progress report (callback body or change-feed entry) → ``TaskStatus``, validated strictly.

Pure functions over plain data: every problem is a :class:`DataError` naming the offending field, so the
callback intake can answer 422 with it and the poller can dead-letter the entry with it.

Example:
    >>> status = parse_status({"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"},
    ...                       task_id="7f3a…", utility_id="yantai-water", reporter="callback", reported_at=now)
"""

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from routing.errors import DataError
from routing.records import TaskStage, TaskStatus

Reporter = Literal["callback", "poll"]

STAGES: tuple[str, ...] = get_args(TaskStage)
# application_id: a task that came from a 爱山东 application carries it, so the app side can follow the
# application across every utility's reports without joining them to the tasks.
REPORT_FIELDS = frozenset({"utility_id", "application_id", "stage", "occurred_at", "pipe_length_m", "reason", "detail"})
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_PIPE_LENGTH_M = 100_000.0
MAX_TEXT_CHARS = 2000
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099


def parse_status(
    payload: Mapping[str, Any],
    *,
    task_id: str,
    utility_id: str,
    reporter: Reporter,
    reported_at: datetime,
    allowed: frozenset[str] = REPORT_FIELDS,
) -> TaskStatus:
    """Validate one report of ``utility_id`` about ``task_id``.

    Args:
        payload: The report as decoded JSON; ``null`` values count as absent.
        task_id: The task it is about (already checked with :func:`check_task_id`).
        utility_id: The utility that reported it (authenticated by the caller).
        reporter: How it reached ubridge.
        reported_at: When ubridge received it (UTC).
        allowed: The field names a report may carry; any other is refused.

    Raises:
        DataError: naming the first field that is unknown, missing, of the wrong type or out of range.
    """
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise DataError(unknown[0], "unknown field")
    check_utility(payload, utility_id)
    stage = _stage(payload.get("stage"))
    return {
        "task_id": task_id,
        "utility_id": utility_id,
        "application_id": _text("application_id", payload.get("application_id")),
        "stage": stage,
        "occurred_at": _occurred_at(payload.get("occurred_at")),
        "reported_at": reported_at.astimezone(UTC),
        "pipe_length_m": _pipe_length(payload.get("pipe_length_m"), stage),
        "reason": _reason(payload.get("reason"), stage),
        "detail": _text("detail", payload.get("detail")),
        "reporter": reporter,
        "task": None,
    }


def check_task_id(value: Any, field: str = "task_id") -> str:
    """Return ``value`` if it is a plausible task id (letters, digits, ``. _ : -``; at most 128 characters).

    Raises:
        DataError: naming ``field``.
    """
    if not isinstance(value, str) or not TASK_ID.fullmatch(value):
        raise DataError(field, "must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return value


def claimed_utility(payload: Mapping[str, Any]) -> str | None:
    """The ``utility_id`` a report names about itself, if any.

    Raises:
        DataError: it is present but not a string.
    """
    value = payload.get("utility_id")
    if value is not None and not isinstance(value, str):
        raise DataError("utility_id", "must be a string")
    return value


def check_utility(payload: Mapping[str, Any], utility_id: str) -> None:
    """Refuse a report that names a utility other than the one that sent it.

    Raises:
        DataError: on ``utility_id``.
    """
    claimed = claimed_utility(payload)
    if claimed is not None and claimed != utility_id:
        raise DataError("utility_id", f"{claimed!r} is not the reporting utility {utility_id!r}")


def _stage(value: Any) -> TaskStage:
    if value is None:
        raise DataError("stage", "is required")
    if value not in STAGES:
        raise DataError("stage", f"must be one of {', '.join(STAGES)}")
    stage: TaskStage = value
    return stage


def _occurred_at(value: Any) -> datetime:
    if value is None:
        raise DataError("occurred_at", "is required")
    if not isinstance(value, str):
        raise DataError("occurred_at", "must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DataError("occurred_at", f"is not ISO-8601: {value[:40]!r}") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DataError("occurred_at", "must carry a UTC offset, e.g. 2026-11-02T10:15:00+08:00")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise DataError("occurred_at", f"must lie in the years {EARLIEST_YEAR}-{LATEST_YEAR}")
    return moment.astimezone(UTC)


def _pipe_length(value: Any, stage: TaskStage) -> float | None:
    if value is None:
        if stage == "EXTERNAL_WORKS":
            raise DataError("pipe_length_m", "is required with stage EXTERNAL_WORKS")
        return None
    if stage != "EXTERNAL_WORKS":
        raise DataError("pipe_length_m", "is only allowed with stage EXTERNAL_WORKS")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError("pipe_length_m", "must be a number")
    if not 0 < value <= MAX_PIPE_LENGTH_M:
        raise DataError("pipe_length_m", f"must be more than 0 and at most {MAX_PIPE_LENGTH_M:g}")
    return float(value)


def _reason(value: Any, stage: TaskStage) -> str | None:
    if value is None:
        if stage == "REJECTED":
            raise DataError("reason", "is required with stage REJECTED")
        return None
    if stage != "REJECTED":
        raise DataError("reason", "is only allowed with stage REJECTED")
    return _text("reason", value)


def _text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DataError(field, "must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        raise DataError(field, f"must be at most {MAX_TEXT_CHARS} characters")
    return value.strip()
