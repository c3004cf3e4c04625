"""The status-callback API's request and answer bodies, as pydantic models: the checks and the OpenAPI document.

:class:`StatusReport` is what :func:`connectors.status.mapping.parse_status` validates every report with (a
callback body or a change-feed entry), and what ``deploy/openapi.json`` is generated from, so the document
and the checks cannot drift apart. Only the rules across fields (a pipe length with EXTERNAL_WORKS alone, a
reason with REJECTED alone) are checked after the model, and are stated in the fields' descriptions.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictStr, StringConstraints

from routing.records import TaskStage

MAX_PIPE_LENGTH_M = 100_000.0
MAX_TEXT_CHARS = 2000
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099

Text = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]


def _instant(value: Any) -> datetime:
    """An ISO-8601 text with a UTC offset, in the years accepted, as a UTC datetime."""
    if value is None:
        message = "is required"
        raise ValueError(message)
    if not isinstance(value, str):
        message = "must be an ISO-8601 string"
        raise ValueError(message)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        message = f"is not ISO-8601: {value[:40]!r}"
        raise ValueError(message) from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        message = "must carry a UTC offset, e.g. 2026-11-02T10:15:00+08:00"
        raise ValueError(message)
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        message = f"must lie in the years {EARLIEST_YEAR}-{LATEST_YEAR}"
        raise ValueError(message)
    return moment.astimezone(UTC)


class StatusReport(BaseModel):
    """A utility's report of a task's progress (``null`` counts as absent)."""

    model_config = ConfigDict(extra="forbid", title="StatusReport")

    stage: TaskStage = Field(description="The stage the task reached.")
    occurred_at: Annotated[datetime, BeforeValidator(_instant)] = Field(
        description=f"When it happened: ISO-8601 with a UTC offset, in the years {EARLIEST_YEAR}-{LATEST_YEAR}.",
        examples=["2026-11-03T14:05:00+08:00"],
    )
    utility_id: StrictStr | None = Field(None, description="The reporting utility, if named: must be the token's.")
    application_id: Text | None = Field(None, description="The 爱山东 application the task came from, if any.")
    pipe_length_m: Annotated[float, Strict(), Field(gt=0, le=MAX_PIPE_LENGTH_M, allow_inf_nan=False)] | None = Field(
        None, description="Metres of external pipe: with EXTERNAL_WORKS, and only with it."
    )
    reason: Text | None = Field(None, description="Why the utility refuses: with REJECTED, and only with it.")
    detail: Text | None = Field(None, description="Free text for the record.")


class StatusAccepted(BaseModel):
    """The report is stored on the task-status topic; the ledger will take it."""

    accepted: bool = Field(description="Always true.")
    task_id: str = Field(description="The task reported on.")
