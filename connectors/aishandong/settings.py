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

from pydantic import ConfigDict, Field

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import SignedPushLimits

SHIPPED_RULES = Path(__file__).resolve().parents[2] / "deploy" / "config" / "aishandong.yaml"


class AishandongGatewaySettings(SignedPushLimits):
    """The 爱山东 gateway pushes signed applications to ``POST /v1/applications``.

    Host, secret, replay bounds and request limits are :class:`SignedPushLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-gateway"
    port: Annotated[int, Field(ge=0, le=65535)] = 8092
    max_body_bytes: Annotated[int, Field(ge=1)] = 262_144
    rules: ConfigPath = Field(
        SHIPPED_RULES, description="The form's words (aishandong.yaml); the shipped file if absent."
    )
