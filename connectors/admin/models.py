"""The admin API's request and answer bodies: one definition for validation, answers and the OpenAPI document."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["pause", "resume", "restart"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionRequest(_Body):
    """Why a stage is paused, resumed or restarted (recorded with the control record and on the audit topic)."""

    reason: str | None = Field(None, max_length=500)


class ActionAnswer(_Body):
    """A control record written: every process running the stage acts on it within a second or so."""

    stage: str
    action: Action
    by: str
    at: datetime


class LetterSummary(_Body):
    """One dead letter in a listing: where it is, when it failed, why, and where it came from."""

    partition: int
    offset: int
    timestamp: datetime
    key: str | None = Field(description="Masked: a key may carry personal data.")
    error_class: str | None
    field: str | None
    message: str | None
    source_topic: str | None
    source_partition: str | None
    source_offset: str | None


class LetterDetail(_Body):
    """One dead letter decoded (the schemas' codec, or JSON text), personal data masked."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    schema_name: str | None = Field(description="ubridge.v1.<Record>, json, bytes or undecodable.")
    value: Any
    error: dict[str, str]
    headers: dict[str, str]


class LetterCriteria(_Body):
    """Which dead letters: every criterion given must hold (times on the letter's timestamp, until exclusive)."""

    error_class: str | None = None
    field: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    from_offset: int | None = Field(None, ge=0, description="First offset in the dead-letter topic (inclusive).")
    to_offset: int | None = Field(None, ge=0, description="Last offset in the dead-letter topic (inclusive).")


class LetterQuery(LetterCriteria):
    """A dead-letter listing's query string."""

    limit: int = Field(100, ge=1, le=1000)


class ReplayRequest(LetterCriteria):
    """Which dead letters of the stage go back, where to, and why (no criteria: every letter)."""

    reason: str = Field(min_length=3, max_length=500)
    offsets: list[int] | None = Field(None, description="Only these offsets of the dead-letter topic.")
    topic: str | None = Field(None, description="Replay here (prefix included) instead of each letter's source.")


class ReplayAnswer(_Body):
    """What was replayed (the same is on the audit topic)."""

    count: int
    offsets: list[int]
    targets: list[str]


class OffsetsResetRequest(_Body):
    """Where the stage's consumer group starts again: the first record at or after a time, or the start."""

    to: Literal["start"] | datetime
    reason: str = Field(min_length=3, max_length=500)


class PartitionOffset(_Body):
    """One committed offset."""

    topic: str
    partition: int
    offset: int


class OffsetsResetAnswer(_Body):
    """The offsets now committed for the stage's group."""

    group: str
    offsets: list[PartitionOffset]
