"""Configuration of the complaint loop (``complaints:`` in ubridge.yaml), validated at start-up."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.config_paths import ConfigPath


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HotlinePlatformSettings(_Strict):
    """The 12345 platform's interface for answers (反馈): ``POST {url}/api/v1/work-orders/{order}/answer``."""

    url: str = Field(description="Base URL of the platform, e.g. https://12345.example.gov.cn")
    token: SecretStr = Field(description="Bearer token the platform issued to ubridge.")
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        4, description="Tries per answer (408, 429, 5xx, transport errors); then the status goes to the DLQ."
    )
    backoff_s: Annotated[float, Field(ge=0)] = Field(
        0.5, description="First pause between tries; it doubles, at most 8 s."
    )


class ComplaintSettings(_Strict):
    """The complaint loop's stage: its policy files, clock and the platform it answers."""

    enabled: bool = True
    policy: ConfigPath = Field(description="complaints.yaml: the loop's limits.")
    satisfaction: ConfigPath = Field(description="satisfaction.yaml: which visits count, the target and weights.")
    calendar: ConfigPath = Field(description="calendar.yaml: the working time the limits count in.")
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: the machine's clock; event: the latest reported time seen (replays, the demo)."
    )
    platform: HotlinePlatformSettings | None = Field(
        None, description="Where answers go; without it answers are recorded but not sent (logged once each)."
    )
