"""12345 hotline, pushed: the platform POSTs signed work orders and return visits to ubridge.

``POST /v1/hotline/work-orders`` takes one work order, ``POST /v1/hotline/return-visits`` one return visit (JSON
objects in the platform's format: :mod:`routing.hotline`). Signing, replay refusal, charsets (UTF-8, GBK,
GB18030) and the answers are the 爱山东 gateway's (:mod:`connectors.aishandong.gateway`,
:mod:`connectors.runtime.signed_push`): 202 only once the record is durable in Kafka; 401 a bad or replayed
signature; 415/400 a body in another type or charset, or not JSON; 422 a record that fails validation, with the
platform's ``field``; 429/503 with ``Retry-After``.

A work order becomes an Avro ``HotlineWorkOrder`` on ``ubridge.hotline.work-orders.v1``, a visit a
``ReturnVisit`` on ``ubridge.hotline.return-visits.v1``, both keyed by order id (so an order's visits follow its
order in one partition), with headers ``ubridge.source`` and ``ubridge.ingested_at``. Reasons never quote a
mobile number in clear.
"""

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr

from connectors.hotline.settings import HotlinePushSettings
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
from routing.hotline import PUSH_SOURCE, parse_return_visit, parse_work_order
from routing.privacy import mask_text
from schemas import Codec

WORK_ORDERS_PATH: Final = "/v1/hotline/work-orders"
RETURN_VISITS_PATH: Final = "/v1/hotline/return-visits"
STAGE: Final = "hotline-push"


class HotlineBody(RootModel[dict[str, Any]]):
    """One work order or return visit in the platform's format (see ``routing.hotline``)."""


class HotlineAccepted(BaseModel):
    """The record is on its topic."""

    accepted: int = Field(description="Always 1.")
    order_id: str = Field(description="The work order's number (gdbh).")


_REFUSALS: Final = {
    400: "The body is not JSON, not decodable in its declared charset, or not an object.",
    401: "Missing, malformed or wrong signature; timestamp outside the window; replayed signature.",
    413: "Body larger than max_body_bytes, or larger than a Kafka record may be.",
    415: "Not application/json, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030.",
    422: "The record fails validation (field: the platform's field).",
    429: "Replay cache full; retry after Retry-After.",
    503: "Kafka unavailable; retry after Retry-After.",
}
ROUTES: Final = (
    IntakeRoute(
        path=WORK_ORDERS_PATH,
        summary="Push a signed 12345 work order",
        body=HotlineBody,
        accepted=HotlineAccepted,
        refusals=_REFUSALS,
    ),
    IntakeRoute(
        path=RETURN_VISITS_PATH,
        summary="Push a signed 12345 return visit",
        body=HotlineBody,
        accepted=HotlineAccepted,
        refusals=_REFUSALS,
    ),
)


class HotlinePush:
    """Answers the two push paths: verifies, decodes and validates, then hands over one record.

    Args:
        secret: The HMAC key shared with the platform.
        work_orders_topic: The work-order topic (with the prefix).
        return_visits_topic: The return-visit topic (with the prefix).
        name: Stage name; also the ``ubridge.source`` header.
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
        work_orders_topic: str,
        return_visits_topic: str,
        name: str = STAGE,
        replay_window_s: int = 300,
        replay_cache_max_entries: int = 100_000,
        replays: SharedReplays | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = name
        self.routes = ROUTES
        self._signatures = SignatureCheck(
            secret=secret, window_s=replay_window_s, max_entries=replay_cache_max_entries, shared=replays
        )
        self._topics = {WORK_ORDERS_PATH: work_orders_topic, RETURN_VISITS_PATH: return_visits_topic}
        self._codec = codec or Codec.default()
        self._clock = clock
        self._source = name.encode()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        if request.path not in self._topics:
            paths = " or ".join(self._topics)
            return reject(404, f"no such resource: {request.path}; the platform pushes to POST {paths}")
        if request.method != "POST":
            return IntakeResponse(405, {"error": f"use POST {request.path}"}, headers=(("Allow", "POST"),))
        now = self._clock()
        try:
            timestamp, signature = self._signatures.verify(request, now)
            body = json_body(request)
            if not isinstance(body, dict):
                raise Refused(400, "body must be one record, a JSON object")
            output, order_id = self._output(request.path, body, now)
        except Refused as refused:
            return refused.response
        refusal = self._signatures.accept(timestamp, signature, now)
        records = (output, *self._signatures.records(timestamp, signature))
        return refusal or IntakeResponse(202, {"accepted": 1, "order_id": order_id}, outputs=records)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose record was not stored, so the sender may resend it."""
        self._signatures.release(request)

    def _output(self, path: str, raw: Mapping[str, Any], now: float) -> tuple[Output, str]:
        ingested = datetime.fromtimestamp(now, UTC)
        try:
            if path == WORK_ORDERS_PATH:
                name, record = "HotlineWorkOrder", dict(parse_work_order(raw, ingested_at=ingested, source=PUSH_SOURCE))
            else:
                name, record = "ReturnVisit", dict(parse_return_visit(raw, ingested_at=ingested, source=PUSH_SOURCE))
        except DataError as exc:
            raise Refused(422, mask_text(exc.reason), field=exc.field) from exc
        except OverflowError as exc:  # a time that leaves the calendar when moved to UTC
            raise Refused(422, f"a date or number is out of range: {exc}") from exc
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", ingested.isoformat(timespec="milliseconds").encode()),
        )
        order_id = str(record["order_id"])
        return Output(self._topics[path], order_id.encode(), self._codec.encode(name, record), headers), order_id


def build_push(
    settings: HotlinePushSettings,
    *,
    kafka: KafkaSettings,
    work_orders_topic: str,
    return_visits_topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The push intake, ready to :meth:`~HttpIntake.run`.

    ``signatures_topic`` shares the accepted signatures with every process (None: this one only);
    ``producer`` replaces the one made from ``kafka`` (tests); ``clock`` gives unix time.
    """
    producer = intake_producer(kafka, settings) if producer is None else producer
    replays = shared_replays(kafka, settings, producer=producer, topic=signatures_topic)
    handler = HotlinePush(
        secret=settings.secret,
        work_orders_topic=work_orders_topic,
        return_visits_topic=return_visits_topic,
        name=settings.name,
        replay_window_s=settings.replay_window_s,
        replay_cache_max_entries=settings.replay_cache_max_entries,
        replays=replays,
        clock=clock,
    )
    return ReleasingIntake(
        handler,
        replays=replays,
        host=settings.host,
        port=settings.port,
        producer=producer,
        metrics=metrics,
        stop=stop,
        max_body_bytes=settings.max_body_bytes,
        limits=settings,
    )
