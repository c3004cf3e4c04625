"""Configuration of the 爱山东 application gateway (``sources.aishandong_gateway`` in ``ubridge.yaml``).

Example::

    sources:
      aishandong_gateway:
        host: 0.0.0.0
        port: 8092
        secret: "${AISHANDONG_GATEWAY_SECRET}"
"""

from pathlib import Path
from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, field_validator

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import IntakeLimits

_MIN_SECRET_CHARS = 16
SHIPPED_RULES = Path(__file__).resolve().parents[2] / "deploy" / "config" / "aishandong.yaml"


class AishandongGatewaySettings(IntakeLimits):
    """The 爱山东 gateway pushes signed applications to ``POST /v1/applications``.

    ``read_timeout_s``, ``kafka_timeout_s`` and ``max_concurrent_requests`` are :class:`IntakeLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-gateway"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8092
    secret: SecretStr
    replay_window_s: Annotated[int, Field(ge=1, le=3600)] = 300
    replay_cache_max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_body_bytes: Annotated[int, Field(ge=1)] = 262_144
    rules: ConfigPath = Field(
        SHIPPED_RULES, description="The form's words (aishandong.yaml); the shipped file if absent."
    )

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < _MIN_SECRET_CHARS:
            message = f"must be at least {_MIN_SECRET_CHARS} characters (a random string, shared with the sender)"
            raise ValueError(message)
        return secret
