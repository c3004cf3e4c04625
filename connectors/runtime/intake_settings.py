"""Settings every HTTP intake shares: how long a request may take to arrive and to be stored, and how many at once.

The 工改 webhook, the 爱山东 gateway, the 12345 push and the status callbacks each inherit these keys, for example::

    sources:
      gonggai_webhook: {read_timeout_s: 10, kafka_timeout_s: 3, max_concurrent_requests: 64, ...}
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_MIN_SECRET_CHARS = 16


class IntakeLimits(BaseModel):
    """Bounds on one intake's requests: none can hang, and none can hold a thread for long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        10.0, description="The whole request must arrive within this time, else 408 (or, when idle, a close)."
    )
    kafka_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        3.0, description="Wait for Kafka to take a request's records; the 503 comes within 1.5 times this."
    )
    max_concurrent_requests: Annotated[int, Field(ge=1, le=4096)] = Field(
        64, description="Connections served at once; more are answered 503 with Retry-After."
    )


class SignedPushLimits(IntakeLimits):
    """What every signed push intake is configured with; each intake sets its own defaults of name and port.

    The secret is shared with the sender (:mod:`connectors.runtime.signed_push`); it must be long enough not
    to be guessed.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)]
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
