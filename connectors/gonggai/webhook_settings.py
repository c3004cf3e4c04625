"""Configuration of the 工改 push webhook (``sources.gonggai_webhook`` in ``ubridge.yaml``).

Example::

    sources:
      gonggai_webhook:
        name: gonggai-webhook
        host: 0.0.0.0
        port: 8090
        secret: "${GONGGAI_WEBHOOK_SECRET}"
        mapping: mappings/vendor-yantai.yaml
"""

from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, field_validator

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import IntakeLimits

_MIN_SECRET_CHARS = 16


class GonggaiWebhookSettings(IntakeLimits):
    """The approval system pushes signed project events to ``POST /v1/project-events``.

    ``read_timeout_s``, ``kafka_timeout_s`` and ``max_concurrent_requests`` are :class:`IntakeLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "gonggai-webhook"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8090
    secret: SecretStr
    replay_window_s: Annotated[int, Field(ge=1, le=3600)] = 300
    replay_cache_max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_body_bytes: Annotated[int, Field(ge=1)] = 4 * 1024 * 1024
    mapping: ConfigPath = Field(description="The vendor's mapping file (relative paths: to the configuration file).")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < _MIN_SECRET_CHARS:
            message = f"must be at least {_MIN_SECRET_CHARS} characters (a random string, shared with the sender)"
            raise ValueError(message)
        return secret
