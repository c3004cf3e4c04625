"""Configuration of the 12345 hotline's push intake (``hotline.push`` in ``ubridge.yaml``).

The rest of the section, the pull feed and the router, is :class:`connectors.settings.HotlineSettings`.

Example::

    hotline:
      push:
        port: 8096
        secret: "${HOTLINE_PUSH_SECRET}"
"""

from typing import Annotated

from pydantic import ConfigDict, Field

from connectors.runtime.intake_settings import SignedPushLimits


class HotlinePushSettings(SignedPushLimits):
    """The platform pushes signed work orders and return visits (``POST /v1/hotline/…``).

    Host, secret, replay bounds and request limits are :class:`SignedPushLimits`'.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "hotline-push"
    port: Annotated[int, Field(ge=0, le=65535)] = 8096
