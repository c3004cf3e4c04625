"""Configuration of joint site surveys (``surveys:`` in ubridge.yaml), validated at start-up."""

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import IntakeLimits
from connectors.runtime.peer_post import BoundedRetry, http_urls

SHIPPED_POLICY = Path(__file__).parents[2] / "deploy" / "config" / "surveys.yaml"


class SurveyIntakeSettings(IntakeLimits):
    """Where utilities answer surveys (``POST /v1/surveys/{id}/replies``, their status-callback tokens)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8099
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16384


class SurveySettings(BaseModel):
    """Joint site surveys (联合踏勘): the regions' policy, the proposals, the replies, the notices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    policy: ConfigPath = Field(SHIPPED_POLICY, description="surveys.yaml: which regions, the slot, the rounds.")
    calendar: ConfigPath = Field(description="calendar.yaml: the working days a slot falls on.")
    settle_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0, description="A project's survey is proposed once no task of it has arrived for this long."
    )
    intake: SurveyIntakeSettings = SurveyIntakeSettings()
    retry: BoundedRetry = BoundedRetry()
    endpoints: dict[str, str] = Field(
        {}, description="Utility id → its survey endpoint; absent: the origin of its task endpoint + /v1/surveys."
    )

    _endpoints = field_validator("endpoints")(http_urls)
