"""A utility's progress report (callback body or change-feed entry) → ``TaskStatus``, validated strictly.

Pure functions over plain data, validating with the API's own model (:class:`~connectors.status.models.
StatusReport`): every problem is a :class:`DataError` naming the offending field, so the callback intake can
answer 422 with it and the poller can dead-letter the entry with it.

Example:
    >>> status = parse_status({"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"},
    ...                       task_id="7f3a…", utility_id="yantai-water", reporter="callback", reported_at=now)
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import ValidationError

from connectors.status.models import StatusReport
from routing.errors import DataError
from routing.records import TaskStage, TaskStatus

Reporter = Literal["callback", "poll"]

STAGES: tuple[str, ...] = get_args(TaskStage)
# application_id: a task that came from a 爱山东 application carries it, so the app side can follow the
# application across every utility's reports without joining them to the tasks.
REPORT_FIELDS = frozenset({"utility_id", "application_id", "stage", "occurred_at", "pipe_length_m", "reason", "detail"})
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def parse_status(
    payload: Mapping[str, Any],
    *,
    task_id: str,
    utility_id: str,
    reporter: Reporter,
    reported_at: datetime,
    allowed: frozenset[str] = REPORT_FIELDS,
) -> TaskStatus:
    """Validate one report of ``utility_id`` about ``task_id`` with :class:`StatusReport`.

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
    fields = {name: value for name, value in payload.items() if name in REPORT_FIELDS and value is not None}
    try:
        report = StatusReport.model_validate(fields)
    except ValidationError as exc:
        raise _first_error(exc) from None
    _check_across(report)
    return {
        "task_id": task_id,
        "utility_id": utility_id,
        "application_id": report.application_id,
        "stage": report.stage,
        "occurred_at": report.occurred_at,
        "reported_at": reported_at.astimezone(UTC),
        "pipe_length_m": report.pipe_length_m,
        "reason": report.reason,
        "detail": report.detail,
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


def _first_error(exc: ValidationError) -> DataError:
    """The error of the first field in the model's order, in words that name it."""
    order = list(StatusReport.model_fields)
    errors = sorted(exc.errors(), key=lambda e: order.index(str(e["loc"][0])) if e["loc"] else -1)
    error = errors[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "literal_error":
        message = f"must be one of {', '.join(STAGES)}"
    return DataError(field, message)


def _check_across(report: StatusReport) -> None:
    """The rules between fields, which the model's schema states in words only."""
    if report.stage == "EXTERNAL_WORKS" and report.pipe_length_m is None:
        raise DataError("pipe_length_m", "is required with stage EXTERNAL_WORKS")
    if report.stage != "EXTERNAL_WORKS" and report.pipe_length_m is not None:
        raise DataError("pipe_length_m", "is only allowed with stage EXTERNAL_WORKS")
    if report.stage == "REJECTED" and report.reason is None:
        raise DataError("reason", "is required with stage REJECTED")
    if report.stage != "REJECTED" and report.reason is not None:
        raise DataError("reason", "is only allowed with stage REJECTED")
