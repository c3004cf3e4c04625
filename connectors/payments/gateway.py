"""爱山东 payments, pushed: the app POSTs each payment (缴费), signed, to ubridge's ``POST /v1/payments``.

The signature, replay cache, charsets and answers are the application gateway's
(:mod:`connectors.aishandong.gateway`); the body is one payment in the app's format (:mod:`routing.payments`).
202 ``{"accepted": 1, "payment_id": …}`` once the payment is on ``ubridge.payments.v1`` (Avro ``Payment``,
keyed by payment id); 422 ``{"error", "field"}`` for a payment that fails validation (a zero or negative amount,
more than 2 decimals, a bad period, an unknown channel or service…), nothing stored. Reasons never quote the payer.

Example:
    >>> intake = build_payment_gateway(settings.payments.gateway, kafka=settings.kafka,
    ...                                topic=settings.topic("payments"), metrics=metrics, stop=stop)
    >>> intake.run()  # until stop is set
"""

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr
from typing_extensions import Unpack

from connectors.aishandong.rules import load_application_rules
from connectors.payments.settings import PAYMENTS_PATH, PaymentGatewaySettings
from connectors.runtime.http_intake import HttpIntake, IntakeRoute
from connectors.runtime.metrics import Metrics
from connectors.runtime.signed_records import PushOptions, RecordPath, SignedRecordPush, serve_signed, signed_refusals
from connectors.settings import KafkaSettings
from routing.payments import parse_payment
from routing.records import Service
from routing.user_category import CategoryTable, shipped_categories


class PaymentBody(RootModel[dict[str, Any]]):
    """One 爱山东 payment in the app's format (see ``routing.payments``)."""


class PaymentAccepted(BaseModel):
    """The payment is on the payments topic."""

    accepted: int = Field(description="Always 1.")
    payment_id: str = Field(description="The payment's id (jfbh).")


ROUTE: Final = IntakeRoute(
    path=PAYMENTS_PATH,
    summary="Push a signed 爱山东 payment (缴费)",
    body=PaymentBody,
    accepted=PaymentAccepted,
    refusals=signed_refusals("The payment fails validation (field: the app's field)."),
)


class PaymentGateway(SignedRecordPush):
    """Answers ``POST /v1/payments``: verifies, decodes and validates, then hands over one record.

    Args:
        name: Stage name; also the ``ubridge.source`` header.
        secret: The HMAC key shared with the 爱山东 platform.
        topic: The payments topic (with the prefix).
        service_names: The form's service words.
        categories: The user categories and their words.
        options: Replay bounds, shared replays and clock (:class:`SignedRecordPush`).
    """

    def __init__(
        self,
        *,
        name: str,
        secret: SecretStr,
        topic: str,
        service_names: Mapping[str, Service],
        categories: CategoryTable | None = None,
        **options: Unpack[PushOptions],
    ) -> None:
        table = categories or shipped_categories()
        path = RecordPath(
            PAYMENTS_PATH,
            topic,
            "Payment",
            "payment_id",
            "one payment",
            lambda raw, ingested: parse_payment(
                raw, ingested_at=ingested, service_names=service_names, categories=table
            ),
        )
        super().__init__(name=name, secret=secret, routes=(ROUTE,), paths=(path,), **options)


def build_payment_gateway(
    settings: PaymentGatewaySettings,
    *,
    kafka: KafkaSettings,
    topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The payment intake, ready to :meth:`~HttpIntake.run` (arguments as ``build_gateway``'s)."""
    service_names = load_application_rules(settings.rules).vocabulary.service_names
    return serve_signed(
        settings,
        lambda options: PaymentGateway(
            name=settings.name, secret=settings.secret, topic=topic, service_names=service_names, **options
        ),
        kafka=kafka,
        metrics=metrics,
        stop=stop,
        signatures_topic=signatures_topic,
        producer=producer,
        clock=clock,
    )
