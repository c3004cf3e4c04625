"""Settings every HTTP intake shares: how long a request may take to arrive and to be stored, and how many at once.

The 工改 webhook, the 爱山东 gateway and the status callbacks each inherit these keys, for example::

    sources:
      gonggai_webhook: {read_timeout_s: 10, kafka_timeout_s: 3, max_concurrent_requests: 64, ...}
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


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
