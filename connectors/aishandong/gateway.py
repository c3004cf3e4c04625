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
from collections.abc import Callable
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr
from typing_extensions import Unpack

from connectors.aishandong.rules import load_application_rules
from connectors.aishandong.settings import SHIPPED_RULES, AishandongGatewaySettings
from connectors.runtime.http_intake import HttpIntake, IntakeRoute
from connectors.runtime.metrics import Metrics
from connectors.runtime.signed_records import (
    PushOptions,
    RecordPath,
    SignedRecordPush,
    serve_signed,
    signed_refusals,
)
from connectors.settings import KafkaSettings
from routing.aishandong import Vocabulary, parse_application

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
    refusals=signed_refusals("The application fails validation (field: the gateway's field)."),
)
STAGE: Final = "aishandong-gateway"


class AishandongGateway(SignedRecordPush):
    """Answers ``POST /v1/applications``: verifies, decodes and validates, then hands over one record.

    Args:
        secret: The HMAC key shared with the 爱山东 platform.
        topic: The applications topic (with the prefix).
        vocabulary: The form's words (the shipped ``aishandong.yaml``'s by default).
        name: Stage name; also the ``ubridge.source`` header.
        options: Replay bounds, shared replays and clock (:class:`SignedRecordPush`).
    """

    def __init__(
        self,
        *,
        secret: SecretStr,
        topic: str,
        vocabulary: Vocabulary | None = None,
        name: str = STAGE,
        **options: Unpack[PushOptions],
    ) -> None:
        words = vocabulary or load_application_rules(SHIPPED_RULES).vocabulary
        path = RecordPath(
            GATEWAY_PATH,
            topic,
            "ConnectionApplication",
            "application_id",
            "one application",
            lambda raw, ingested: parse_application(raw, ingested_at=ingested, vocabulary=words),
        )
        super().__init__(name=name, secret=secret, routes=(ROUTE,), paths=(path,), **options)


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
    vocabulary = load_application_rules(settings.rules).vocabulary
    return serve_signed(
        settings,
        lambda options: AishandongGateway(
            name=settings.name, secret=settings.secret, topic=topic, vocabulary=vocabulary, **options
        ),
        kafka=kafka,
        metrics=metrics,
        stop=stop,
        signatures_topic=signatures_topic,
        producer=producer,
        clock=clock,
    )
