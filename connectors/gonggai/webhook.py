"""工改系统 data interface, pushed: the approval system POSTs signed project events to ubridge.

``POST /v1/project-events`` takes one event (a JSON object) or a batch ``{"events": [...]}`` in the vendor's
format. It is answered only after the events are durable in Kafka (see :mod:`connectors.runtime.http_intake`).

Requests are signed, replay-checked and charset-decoded as :mod:`connectors.runtime.signed_push` describes.

Answers, each ``{"error": reason, ...}`` unless 202:

=====  ==========================================================================================
202    ``{"accepted": n}``: every event is on the raw topic
400    the body is not JSON, not decodable in its declared charset, or not an event or batch
401    missing, malformed or wrong signature; timestamp outside the window; replayed signature (in any
       process of the installation, when the signatures are shared)
404    another path; 405 another method (with ``Allow``)
408    the request did not arrive within ``read_timeout_s`` (the server)
413    body larger than ``max_body_bytes`` (refused by the intake before it is read), or an event larger
       than a Kafka record may be
415    not ``application/json``, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030
422    an event fails the vendor mapping or validation: ``field`` is the vendor's path, ``index`` the event;
       or the JSON holds a lone surrogate, an integer beyond 64 bits or a number beyond a double
429    replay cache full; 503 Kafka unavailable (both with ``Retry-After``)
=====  ==========================================================================================

A batch is all or nothing: one bad event refuses it whole, and nothing enters Kafka. Good events are
mapped to the default format (:mod:`routing.mapping`), validated with :func:`routing.gonggai.normalise`
and written, in the default format, to the raw topic the pull source also writes, keyed by project code,
with headers ``ubridge.source`` (the webhook's name), ``ubridge.ingested_at``, ``ubridge.vendor`` (the
sender's vendor) and ``ubridge.format: default`` (so the normaliser does not map them again).

Example:
    >>> intake = build_webhook(settings.sources.gonggai_webhook, kafka=settings.kafka,
    ...                        raw_topic=settings.topic("raw_gonggai"), metrics=metrics, stop=stop)
    >>> intake.run()  # until stop is set
"""

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr

from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import (
    HttpIntake,
    IntakeRequest,
    IntakeResponse,
    IntakeRoute,
    reject,
)
from connectors.runtime.interface import Output
from connectors.runtime.metrics import Metrics
from connectors.runtime.signed_push import Refused, SharedReplays, SignatureCheck, json_body
from connectors.runtime.signed_records import serve_signed
from connectors.settings import ConfigError, KafkaSettings
from routing.errors import DataError
from routing.gonggai import normalise
from routing.mapping import VendorMapping, apply_mapping, load_mapping

WEBHOOK_PATH: Final = "/v1/project-events"
DEFAULT_FORMAT: Final = b"default"


class ProjectEvents(RootModel[dict[str, Any]]):
    """One project event in the sender's vendor format, or a batch ``{"events": [event, ...]}``."""


class EventsAccepted(BaseModel):
    """Every event of the request is on the raw topic."""

    accepted: int = Field(description="How many events were stored.")


ROUTE: Final = IntakeRoute(
    path=WEBHOOK_PATH,
    summary="Push signed project events of the approval system (工改系统)",
    body=ProjectEvents,
    accepted=EventsAccepted,
    refusals={
        400: "The body is not JSON, not decodable in its declared charset, or not an event or batch.",
        401: "Missing, malformed or wrong signature; timestamp outside the window; replayed signature.",
        413: "Body larger than max_body_bytes, or an event larger than a Kafka record may be.",
        415: "Not application/json, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030.",
        422: "An event fails the vendor mapping or validation (field: the vendor's path; index: the event).",
        429: "Replay cache full; retry after Retry-After.",
        503: "Kafka unavailable; retry after Retry-After.",
    },
)


class GonggaiWebhook:
    """Answers ``POST /v1/project-events``: verifies, decodes, maps and validates, then hands over the records.

    Args:
        name: Stage name; also the ``ubridge.source`` header (and so part of every event id).
        secret: The HMAC key shared with the sender.
        mapping: The sender's vendor mapping.
        raw_topic: Where the events go (``ubridge.raw.gonggai.v1`` with the prefix).
        replay_window_s: Largest accepted distance between the sender's timestamp and our clock.
        replay_cache_max_entries: Most signatures remembered at once.
        replays: The signatures every process shares (None: this process's only).
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        *,
        name: str,
        secret: SecretStr,
        mapping: VendorMapping,
        raw_topic: str,
        replay_window_s: int = 300,
        replay_cache_max_entries: int = 100_000,
        replays: SharedReplays | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = name
        self.routes = (ROUTE,)
        self._signatures = SignatureCheck(
            secret=secret, window_s=replay_window_s, max_entries=replay_cache_max_entries, shared=replays
        )
        self._mapping = mapping
        self._raw_topic = raw_topic
        self._clock = clock
        self._vendor = mapping.vendor.encode()
        self._source = name.encode()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        if request.path != WEBHOOK_PATH:
            return reject(404, f"no such resource: {request.path}; events go to POST {WEBHOOK_PATH}")
        if request.method != "POST":
            return IntakeResponse(405, {"error": f"use POST {WEBHOOK_PATH}"}, headers=(("Allow", "POST"),))
        now = self._clock()
        try:
            timestamp, signature = self._signatures.verify(request, now)
            outputs = self._outputs(_events(request), now)
        except Refused as refused:
            return refused.response
        refusal = self._signatures.accept(timestamp, signature, now)
        records = [*outputs, *self._signatures.records(timestamp, signature)]
        return refusal or IntakeResponse(202, {"accepted": len(outputs)}, outputs=records)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose records were not stored, so the sender may resend it."""
        self._signatures.release(request)

    def _outputs(self, events: Sequence[Any], now: float) -> list[Output]:
        ingested = datetime.fromtimestamp(now, UTC)
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", ingested.isoformat(timespec="milliseconds").encode()),
            ("ubridge.vendor", self._vendor),
            ("ubridge.format", DEFAULT_FORMAT),
        )
        outputs = []
        for index, vendor_event in enumerate(events):
            try:
                mapped = apply_mapping(self._mapping, vendor_event)
                event = normalise(mapped, source=self.stage, ingested_at=ingested)
            except DataError as exc:
                error = self._mapping.vendor_error(exc)
                raise Refused(422, error.reason, field=error.field, index=index) from exc
            value = json.dumps(mapped, ensure_ascii=False).encode()
            outputs.append(Output(self._raw_topic, event["project_code"].encode(), value, headers))
        return outputs


def _events(request: IntakeRequest) -> list[Any]:
    """The events of the body: decoded in the declared charset, one object or ``{"events": [...]}``."""
    body = json_body(request)
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return list(body["events"])
    if isinstance(body, dict):
        return [body]
    raise Refused(400, 'body must be an event object or {"events": [...]}')


def build_webhook(
    settings: GonggaiWebhookSettings,
    *,
    kafka: KafkaSettings,
    raw_topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The webhook's intake, ready to :meth:`~HttpIntake.run`.

    ``signatures_topic`` shares the accepted signatures with every process (None: this one only);
    ``producer`` replaces the one made from ``kafka`` (tests); ``clock`` gives unix time.

    Raises:
        ConfigError: the mapping file cannot be read or is invalid (the message names file and key).
    """
    try:
        mapping = load_mapping(settings.mapping)
    except ValueError as exc:
        message = f"sources.gonggai_webhook.mapping: {exc}"
        raise ConfigError(message) from exc
    return serve_signed(
        settings,
        lambda options: GonggaiWebhook(
            name=settings.name, secret=settings.secret, mapping=mapping, raw_topic=raw_topic, **options
        ),
        kafka=kafka,
        metrics=metrics,
        stop=stop,
        signatures_topic=signatures_topic,
        producer=producer,
        clock=clock,
    )
