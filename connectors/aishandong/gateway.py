"""爱山东 application gateway, pushed: the 爱山东 platform POSTs signed applications to ubridge.

``POST /v1/applications`` takes one application (a JSON object, the gateway's format: see
:mod:`routing.aishandong`). It is answered only after the application is durable in Kafka (see
:mod:`connectors.runtime.http_intake`). The signature scheme is the 工改 webhook's (DESIGN §4.2), and so are
its replay cache, shared signatures and charsets (:mod:`connectors.runtime.signed_push`)::

    X-Ubridge-Timestamp: 1795573860                     unix seconds when the sender signed
    X-Ubridge-Signature: sha256=<hex>                   HMAC-SHA256(secret, "<timestamp>." + raw body bytes)

Answers, each ``{"error": reason, ...}`` unless 202:

=====  ==========================================================================================
202    ``{"accepted": 1, "application_id": …}``: the application is on the applications topic
400    the body is not JSON, not decodable in its declared charset, or not an object
401    missing, malformed or wrong signature; timestamp outside the window; replayed signature (in any
       process of the installation, when the signatures are shared)
404    another path; 405 another method (with ``Allow``)
408    the request did not arrive within ``read_timeout_s``
413    body larger than ``max_body_bytes`` (refused by the intake before it is read), or larger than a
       Kafka record may be
415    not ``application/json``, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030
422    the application fails validation: ``field`` is the gateway's field (``sfzhm``, ``cl.0.sha256``);
       or a date out of range, a lone surrogate, an integer beyond 64 bits, a number beyond a double
429    replay cache full; 503 Kafka unavailable (both with ``Retry-After``)
=====  ==========================================================================================

A valid application becomes one Avro ``ConnectionApplication`` on ``ubridge.canonical.applications.v1``,
keyed by application id, with headers ``ubridge.source`` (the gateway's name) and ``ubridge.ingested_at``.
Reasons never quote an ID or mobile number in clear.

Example:
    >>> intake = build_gateway(settings.sources.aishandong_gateway, kafka=settings.kafka,
    ...                        topic=settings.topic("applications"), metrics=metrics, stop=stop)
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
from connectors.aishandong.settings import SHIPPED_RULES, AishandongGatewaySettings
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
from routing.aishandong import Vocabulary, parse_application
from routing.errors import DataError
from routing.privacy import mask_text
from schemas import Codec

GATEWAY_PATH: Final = "/v1/applications"


class ApplicationBody(RootModel[dict[str, Any]]):
    """One 爱山东 application in the gateway's format (see ``routing.aishandong``)."""


class ApplicationAccepted(BaseModel):
    """The application is on the applications topic."""

    accepted: int = Field(description="Always 1.")
    application_id: str = Field(description="The application's id (sqbh).")


ROUTE: Final = IntakeRoute(
    path=GATEWAY_PATH,
    summary="Push a signed 爱山东 connection application",
    body=ApplicationBody,
    accepted=ApplicationAccepted,
    refusals={
        400: "The body is not JSON, not decodable in its declared charset, or not an object.",
        401: "Missing, malformed or wrong signature; timestamp outside the window; replayed signature.",
        413: "Body larger than max_body_bytes, or larger than a Kafka record may be.",
        415: "Not application/json, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030.",
        422: "The application fails validation (field: the gateway's field).",
        429: "Replay cache full; retry after Retry-After.",
        503: "Kafka unavailable; retry after Retry-After.",
    },
)
STAGE: Final = "aishandong-gateway"


class AishandongGateway:
    """Answers ``POST /v1/applications``: verifies, decodes and validates, then hands over one record.

    Args:
        name: Stage name; also the ``ubridge.source`` header.
        secret: The HMAC key shared with the 爱山东 platform.
        topic: The applications topic (with the prefix).
        vocabulary: The form's words (the shipped ``aishandong.yaml``'s by default).
        replay_window_s: Largest accepted distance between the sender's timestamp and our clock.
        replay_cache_max_entries: Most signatures remembered at once.
        replays: The signatures every process shares (None: this process's only).
        codec: Avro codec (the process-wide one by default).
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        *,
        secret: SecretStr,
        topic: str,
        vocabulary: Vocabulary | None = None,
        name: str = STAGE,
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
        self._vocabulary = vocabulary or load_application_rules(SHIPPED_RULES).vocabulary
        self._codec = codec or Codec.default()
        self._clock = clock
        self._source = name.encode()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        if request.path != GATEWAY_PATH:
            return reject(404, f"no such resource: {request.path}; applications go to POST {GATEWAY_PATH}")
        if request.method != "POST":
            return IntakeResponse(405, {"error": f"use POST {GATEWAY_PATH}"}, headers=(("Allow", "POST"),))
        now = self._clock()
        try:
            timestamp, signature = self._signatures.verify(request, now)
            raw = _decode(request)
            output, application_id = self._output(raw, now)
        except Refused as refused:
            return refused.response
        refusal = self._signatures.accept(timestamp, signature, now)
        accepted = {"accepted": 1, "application_id": application_id}
        records = (output, *self._signatures.records(timestamp, signature))
        return refusal or IntakeResponse(202, accepted, outputs=records)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose record was not stored, so the sender may resend it."""
        self._signatures.release(request)

    def _output(self, raw: Mapping[str, Any], now: float) -> tuple[Output, str]:
        ingested = datetime.fromtimestamp(now, UTC)
        try:
            application = parse_application(raw, ingested_at=ingested, vocabulary=self._vocabulary)
        except DataError as exc:
            raise Refused(422, mask_text(exc.reason), field=exc.field) from exc
        except OverflowError as exc:  # a date such as year 1 that leaves the calendar when moved to UTC
            raise Refused(422, f"a date or number is out of range: {exc}") from exc
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", ingested.isoformat(timespec="milliseconds").encode()),
        )
        value = self._codec.encode("ConnectionApplication", application)
        application_id = application["application_id"]
        return Output(self._topic, application_id.encode(), value, headers), application_id


def _decode(request: IntakeRequest) -> Mapping[str, Any]:
    """The application of the body, decoded in the declared charset."""
    body = json_body(request)
    if not isinstance(body, dict):
        raise Refused(400, "body must be one application, a JSON object")
    return body


def build_gateway(
    settings: AishandongGatewaySettings,
    *,
    kafka: KafkaSettings,
    topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The gateway's intake, ready to :meth:`~HttpIntake.run`.

    ``signatures_topic`` shares the accepted signatures with every process (None: this one only);
    ``producer`` replaces the one made from ``kafka`` (tests); ``clock`` gives unix time.
    """
    producer = intake_producer(kafka, settings) if producer is None else producer
    replays = shared_replays(kafka, settings, producer=producer, topic=signatures_topic)
    gateway = AishandongGateway(
        name=settings.name,
        secret=settings.secret,
        topic=topic,
        vocabulary=load_application_rules(settings.rules).vocabulary,
        replay_window_s=settings.replay_window_s,
        replay_cache_max_entries=settings.replay_cache_max_entries,
        replays=replays,
        clock=clock,
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
