"""Configuration of 爱山东 payments (``payments`` in ``ubridge.yaml``).

Example::

    payments:
      gateway: {port: 8096, secret: "${AISHANDONG_PAYMENTS_SECRET}"}      # the app pushes POST /v1/payments
      acknowledgement: {url: "https://aishandong.example/v1/payment-receipts", token: "${AISHANDONG_RECEIPT_TOKEN}"}
      endpoints: {yantai-water: "https://water.example/billing/v1/payments"}   # else <task endpoint origin>/v1/payments
      retry: {max_attempts: 8}
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.aishandong.settings import SHIPPED_RULES, AishandongGatewaySettings
from connectors.config_paths import ConfigPath
from connectors.runtime.peer_post import BoundedRetry, http_url, http_urls, on_origin

PAYMENTS_PATH = "/v1/payments"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaymentGatewaySettings(AishandongGatewaySettings):
    """The 爱山东 platform pushes signed payments to ``POST /v1/payments`` (the application gateway's scheme)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-payments"
    port: Annotated[int, Field(ge=0, le=65535)] = 8096
    max_body_bytes: Annotated[int, Field(ge=1)] = 16_384


class AcknowledgementSettings(_Strict):
    """爱山东's endpoint for the utility's receipts (入账回执): ``POST`` with a bearer token."""

    url: str
    token: SecretStr
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    _url = field_validator("url")(http_url)


class PaymentSettings(_Strict):
    """Payments from the 爱山东 app: received, posted at the account's utility, receipted back to the app."""

    enabled: bool = True
    gateway: PaymentGatewaySettings | None = Field(None, description="The push intake (absent: not run).")
    acknowledgement: AcknowledgementSettings
    endpoints: dict[str, str] = Field(
        {},
        description="Utility id → its payments endpoint; absent: the origin of its task endpoint + /v1/payments.",
    )
    max_in_flight: Annotated[int, Field(ge=1, le=64)] = 8
    retry: BoundedRetry = BoundedRetry()
    rules: ConfigPath = Field(
        SHIPPED_RULES, description="The form's service words (aishandong.yaml); the shipped file if absent."
    )

    _endpoints = field_validator("endpoints")(http_urls)


def payments_endpoint(task_endpoint: str) -> str:
    """The default payments endpoint of a utility: its task endpoint's origin + ``/v1/payments``."""
    return on_origin(task_endpoint, PAYMENTS_PATH)
