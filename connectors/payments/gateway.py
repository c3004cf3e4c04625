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
from datetime import UTC, datetime
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr

from connectors.aishandong.rules import load_application_rules
from connectors.payments.settings import PAYMENTS_PATH, PaymentGatewaySettings
from connectors.runtime.http_intake import (
    HttpIntake,
    IntakeRequest,
    IntakeResponse,
    IntakeRoute,
    intake_producer,
    reject,
)
from connectors.runtime.interface import Output
from connectors.runtime.metrics import Metrics
from connectors.runtime.replay_log import shared_replays
from connectors.runtime.signed_push import Refused, ReleasingIntake, SharedReplays, SignatureCheck, json_body
from connectors.settings import KafkaSettings
from routing.errors import DataError
from routing.payments import parse_payment
from routing.privacy import mask_text
from routing.records import Service
from routing.user_category import CategoryTable, shipped_categories
from schemas import Codec


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
    refusals={
        400: "The body is not JSON, not decodable in its declared charset, or not an object.",
        401: "Missing, malformed or wrong signature; timestamp outside the window; replayed signature.",
        413: "Body larger than max_body_bytes, or larger than a Kafka record may be.",
        415: "Not application/json, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030.",
        422: "The payment fails validation (field: the app's field).",
        429: "Replay cache full; retry after Retry-After.",
        503: "Kafka unavailable; retry after Retry-After.",
    },
)


class PaymentGateway:
    """Answers ``POST /v1/payments``: verifies, decodes and validates, then hands over one record.

    Args:
        name: Stage name; also the ``ubridge.source`` header.
        secret: The HMAC key shared with the 爱山东 platform.
        topic: The payments topic (with the prefix).
        service_names: The form's service words.
        categories: The user categories and their words.
        replay_window_s: Largest accepted distance between the sender's timestamp and our clock.
        replay_cache_max_entries: Most signatures remembered at once.
        replays: The signatures every process shares (None: this process's only).
        codec: Avro codec (the process-wide one by default).
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        *,
        name: str,
        secret: SecretStr,
        topic: str,
        service_names: Mapping[str, Service],
        categories: CategoryTable | None = None,
        replay_window_s: int = 300,
        replay_cache_max_entries: int = 100_000,
        replays: SharedReplays | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = name
        self.routes = (ROUTE,)
        self._signatures = SignatureCheck(
            secret=secret, window_s=replay_window_s, max_entries=replay_cache_max_entries, shared=replays
        )
        self._topic = topic
        self._service_names = service_names
        self._categories = categories or shipped_categories()
        self._codec = codec or Codec.default()
        self._clock = clock
        self._source = name.encode()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        if request.path != PAYMENTS_PATH:
            return reject(404, f"no such resource: {request.path}; payments go to POST {PAYMENTS_PATH}")
        if request.method != "POST":
            return IntakeResponse(405, {"error": f"use POST {PAYMENTS_PATH}"}, headers=(("Allow", "POST"),))
        now = self._clock()
        try:
            timestamp, signature = self._signatures.verify(request, now)
            body = json_body(request)
            if not isinstance(body, dict):
                raise Refused(400, "body must be one payment, a JSON object")
            output, payment_id = self._output(body, now)
        except Refused as refused:
            return refused.response
        refusal = self._signatures.accept(timestamp, signature, now)
        records = (output, *self._signatures.records(timestamp, signature))
        return refusal or IntakeResponse(202, {"accepted": 1, "payment_id": payment_id}, outputs=records)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose record was not stored, so the sender may resend it."""
        self._signatures.release(request)

    def _output(self, raw: Mapping[str, Any], now: float) -> tuple[Output, str]:
        ingested = datetime.fromtimestamp(now, UTC)
        try:
            payment = parse_payment(
                raw, ingested_at=ingested, service_names=self._service_names, categories=self._categories
            )
        except DataError as exc:
            raise Refused(422, mask_text(exc.reason), field=exc.field) from exc
        except OverflowError as exc:  # a time such as year 1 that leaves the calendar when moved to UTC
            raise Refused(422, f"a time is out of range: {exc}") from exc
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", ingested.isoformat(timespec="milliseconds").encode()),
        )
        payment_id = payment["payment_id"]
        value = self._codec.encode("Payment", payment)
        return Output(self._topic, payment_id.encode(), value, headers), payment_id


def build_payment_gateway(
    settings: PaymentGatewaySettings,
    *,
    kafka: KafkaSettings,
    topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
) -> HttpIntake:
    """The payment intake, ready to :meth:`~HttpIntake.run` (arguments as ``build_gateway``'s)."""
    producer = intake_producer(kafka, settings) if producer is None else producer
    replays = shared_replays(kafka, settings, producer=producer, topic=signatures_topic)
    gateway = PaymentGateway(
        name=settings.name,
        secret=settings.secret,
        topic=topic,
        service_names=load_application_rules(settings.rules).vocabulary.service_names,
        replay_window_s=settings.replay_window_s,
        replay_cache_max_entries=settings.replay_cache_max_entries,
        replays=replays,
    )
    return ReleasingIntake(
        gateway,
        replays=replays,
        host=settings.host,
        port=settings.port,
        producer=producer,
        metrics=metrics,
        stop=stop,
        max_body_bytes=settings.max_body_bytes,
        limits=settings,
    )
