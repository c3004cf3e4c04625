"""Configuration of the 12345 hotline's push intake (``hotline.push`` in ``ubridge.yaml``).

The rest of the section, the pull feed and the router, is :class:`connectors.settings.HotlineSettings`.

Example::

    hotline:
      push:
        port: 8096
        secret: "${HOTLINE_PUSH_SECRET}"
"""

from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, field_validator

from connectors.runtime.intake_settings import IntakeLimits

_MIN_SECRET_CHARS = 16


class HotlinePushSettings(IntakeLimits):
    """The platform pushes signed work orders and return visits (``POST /v1/hotline/…``).

    ``read_timeout_s``, ``kafka_timeout_s`` and ``max_concurrent_requests`` are :class:`IntakeLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "hotline-push"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8096
    secret: SecretStr
    replay_window_s: Annotated[int, Field(ge=1, le=3600)] = 300
    replay_cache_max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_body_bytes: Annotated[int, Field(ge=1)] = 65_536

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < _MIN_SECRET_CHARS:
            message = f"must be at least {_MIN_SECRET_CHARS} characters (a random string, shared with the sender)"
            raise ValueError(message)
        return secret
