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

from pydantic import ConfigDict, Field

from connectors.config_paths import ConfigPath
from connectors.runtime.intake_settings import SignedPushLimits


class GonggaiWebhookSettings(SignedPushLimits):
    """The approval system pushes signed project events to ``POST /v1/project-events``.

    Host, secret, replay bounds and request limits are :class:`SignedPushLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "gonggai-webhook"
    port: Annotated[int, Field(ge=0, le=65535)] = 8090
    max_body_bytes: Annotated[int, Field(ge=1)] = 4 * 1024 * 1024
    mapping: ConfigPath = Field(description="The vendor's mapping file (relative paths: to the configuration file).")
