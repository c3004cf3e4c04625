"""Configuration of 爱山东 payments (``payments`` in ``ubridge.yaml``).

Example::

    payments:
      gateway: {port: 8096, secret: "${AISHANDONG_PAYMENTS_SECRET}"}      # the app pushes POST /v1/payments
      acknowledgement: {url: "https://aishandong.example/v1/payment-receipts", token: "${AISHANDONG_RECEIPT_TOKEN}"}
      endpoints: {yantai-water: "https://water.example/billing/v1/payments"}   # else <task endpoint origin>/v1/payments
      retry: {max_attempts: 8}
"""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.aishandong.settings import SHIPPED_RULES, AishandongGatewaySettings
from connectors.config_paths import ConfigPath

PAYMENTS_PATH = "/v1/payments"


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        message = f"must be an http(s) URL, not {url!r}"
        raise ValueError(message)
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaymentGatewaySettings(AishandongGatewaySettings):
    """The 爱山东 platform pushes signed payments to ``POST /v1/payments`` (the application gateway's scheme)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-payments"
    port: Annotated[int, Field(ge=0, le=65535)] = 8096
    max_body_bytes: Annotated[int, Field(ge=1)] = 16_384


class PaymentRetry(_Strict):
    """Bounded retries: a payment whose peer stays down goes to the dead-letter topic, never holding the others."""

    initial_backoff_s: Annotated[float, Field(gt=0)] = 0.2
    max_backoff_s: Annotated[float, Field(gt=0)] = 30.0
    max_retry_after_s: Annotated[float, Field(gt=0)] = 60.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="Attempts per peer (utility, then 爱山东) before the payment is dead-lettered with the reason."
    )


class AcknowledgementSettings(_Strict):
    """爱山东's endpoint for the utility's receipts (入账回执): ``POST`` with a bearer token."""

    url: str
    token: SecretStr
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    _url = field_validator("url")(_http_url)


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
    retry: PaymentRetry = PaymentRetry()
    rules: ConfigPath = Field(
        SHIPPED_RULES, description="The form's service words (aishandong.yaml); the shipped file if absent."
    )

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, endpoints: dict[str, str]) -> dict[str, str]:
        for utility, url in endpoints.items():
            try:
                _http_url(url)
            except ValueError as exc:
                message = f"{utility}: {exc}"
                raise ValueError(message) from exc
        return endpoints


def payments_endpoint(task_endpoint: str) -> str:
    """The default payments endpoint of a utility: its task endpoint's origin + ``/v1/payments``."""
    parts = urlsplit(task_endpoint)
    return f"{parts.scheme}://{parts.netloc}{PAYMENTS_PATH}"
