"""Configuration of external-works permits (``permits:`` in ubridge.yaml), validated at start-up."""

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import IntakeLimits
from connectors.runtime.peer_post import BoundedRetry, http_url, http_urls

SHIPPED_POLICY = Path(__file__).parents[2] / "deploy" / "config" / "permits.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PermitIntakeSettings(IntakeLimits):
    """Where utilities file permit applications (``POST /v1/permits``, their status-callback tokens)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8098
    max_body_bytes: Annotated[int, Field(ge=1024)] = 65536
    unknown_task_wait_s: Annotated[float, Field(gt=0, le=30)] = Field(
        3.0, description="An application for a task not seen yet waits this long for its delivery before 404."
    )


class ApprovalDesks(_Strict):
    """The approval system's permit interface: ``POST {url}/api/v1/permits``, ``GET …/permits/status``."""

    url: str = Field(description="Base URL of the approval system's interface.")
    token: SecretStr = Field(description="Bearer token the approval system issued to ubridge.")
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    _url = field_validator("url")(http_url)


class PermitSettings(_Strict):
    """Permits a utility files through ubridge: the intake, the departments, the follower, the notices."""

    enabled: bool = True
    intake: PermitIntakeSettings = PermitIntakeSettings()
    approval: ApprovalDesks
    policy: ConfigPath = Field(SHIPPED_POLICY, description="permits.yaml: departments, deadlines, the 150 m rule.")
    calendar: ConfigPath = Field(description="calendar.yaml: the working days the departments' 3 days count in.")
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="Least time between two reads of the departments' states by the follower."
    )
    retry: BoundedRetry = BoundedRetry()
    endpoints: dict[str, str] = Field(
        {},
        description="Utility id → its permit-notice endpoint; absent: the origin of its task endpoint "
        "+ /v1/permits/status.",
    )

    _endpoints = field_validator("endpoints")(http_urls)
