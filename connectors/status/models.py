"""The status-callback API's request and answer bodies, as pydantic models (the OpenAPI document's source).

:class:`StatusReport` is also what :func:`connectors.status.mapping.parse_status` validates a report with, so
the document and the checks cannot drift apart.
"""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from routing.records import TaskStage

MAX_PIPE_LENGTH_M = 100_000.0
MAX_TEXT_CHARS = 2000

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]


class StatusReport(BaseModel):
    """A utility's report of a task's progress (``null`` counts as absent)."""

    model_config = ConfigDict(extra="forbid", title="StatusReport")

    stage: TaskStage = Field(description="The stage the task reached.")
    occurred_at: datetime = Field(
        description="When it happened, ISO-8601 with a UTC offset, in the years 2000-2099.",
        examples=["2026-11-03T14:05:00+08:00"],
    )
    utility_id: str | None = Field(None, description="The reporting utility, if named: must be the token's own.")
    application_id: Text | None = Field(None, description="The 爱山东 application the task came from, if any.")
    pipe_length_m: float | None = Field(
        None, gt=0, le=MAX_PIPE_LENGTH_M, description="Required with EXTERNAL_WORKS, and only with it."
    )
    reason: Text | None = Field(None, description="Required with REJECTED, and only with it.")
    detail: Text | None = Field(None, description="Free text for the record.")


class StatusAccepted(BaseModel):
    """The report is stored on the task-status topic; the ledger will take it."""

    accepted: bool = Field(description="Always true.")
    task_id: str = Field(description="The task reported on.")
