"""One signed record a push: the shape the 爱山东 gateway, its payment intake and the 12345 push share.

Each path takes one JSON object in the sender's format, signed and decoded as every signed push is
(:mod:`connectors.runtime.signed_push`). The path's parser turns it into one Avro record on the path's topic,
keyed by the record's id, with headers ``ubridge.source`` and ``ubridge.ingested_at``. 202
``{"accepted": 1, <id field>: …}`` once the record is durable in Kafka; 422 ``{"error", "field"}`` for a body
that fails validation, its reason masked (never a mobile or ID number in clear), nothing stored; the other
refusals are the signed push's. :func:`serve_signed` builds any signed intake (these and the 工改 webhook) from
its settings.

Example:
    >>> push = SignedRecordPush(name="payments", secret=secret, routes=(ROUTE,),
    ...                         paths=(RecordPath("/v1/payments", topic, "Payment", "payment_id", "payment", parse),))
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from kafka import KafkaProducer
from pydantic import SecretStr

from connectors.runtime.http_intake import (
    HttpIntake,
    IntakeRequest,
    IntakeResponse,
    IntakeRoute,
    intake_producer,
    reject,
)
from connectors.runtime.intake_settings import SignedPushLimits
from connectors.runtime.interface import Output
from connectors.runtime.metrics import Metrics
from connectors.runtime.replay_log import shared_replays
from connectors.runtime.signed_push import (
    Refused,
    ReleasingIntake,
    SharedReplays,
    SignatureCheck,
    SignedHandler,
    json_body,
)
from connectors.settings import KafkaSettings
from routing.errors import DataError
from routing.privacy import mask_text
from schemas import Codec

Parse = Callable[[Mapping[str, Any], datetime], Mapping[str, Any]]


def signed_refusals(invalid: str) -> dict[int, str]:
    """The refusals of a signed push, as the interface description lists them; ``invalid`` is the 422's."""
    return {
        400: "The body is not JSON, not decodable in its declared charset, or not an object.",
        401: "Missing, malformed or wrong signature; timestamp outside the window; replayed signature.",
        413: "Body larger than max_body_bytes, or larger than a Kafka record may be.",
        415: "Not application/json, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030.",
        422: invalid,
        429: "Replay cache full; retry after Retry-After.",
        503: "Kafka unavailable; retry after Retry-After.",
    }


@dataclass(frozen=True)
class RecordPath:
    """One push path: the Avro record its body becomes, the topic it goes to, and how the body is read.

    Attributes:
        path: The URL path.
        topic: The topic (with the prefix).
        record: The Avro record's name.
        id_field: The record's field that keys it and names it in the answer.
        what: The body in words, for the 400 ("one payment").
        parse: The sender's object and the ingestion instant → the record (raises ``DataError``).
    """

    path: str
    topic: str
    record: str
    id_field: str
    what: str
    parse: Parse


class PushOptions(TypedDict, total=False):
    """What every signed push takes besides its paths."""

    replay_window_s: int
    replay_cache_max_entries: int
    replays: SharedReplays | None
    clock: Callable[[], float]


class SignedRecordPush:
    """Answers its paths' POSTs: verifies, decodes and validates, then hands over one record.

    Args:
        name: Stage name; also the ``ubridge.source`` header.
        secret: The HMAC key shared with the sender.
        routes: The paths as the interface description lists them.
        paths: What each path's body becomes.
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
        routes: tuple[IntakeRoute, ...],
        paths: Sequence[RecordPath],
        replay_window_s: int = 300,
        replay_cache_max_entries: int = 100_000,
        replays: SharedReplays | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = name
        self.routes = routes
        self._signatures = SignatureCheck(
            secret=secret, window_s=replay_window_s, max_entries=replay_cache_max_entries, shared=replays
        )
        self._paths = {path.path: path for path in paths}
        self._codec = Codec.default()
        self._clock = clock
        self._source = name.encode()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        path = self._paths.get(request.path)
        if path is None:
            known = " or ".join(self._paths)
            return reject(404, f"no such resource: {request.path}; push to POST {known}")
        if request.method != "POST":
            return IntakeResponse(405, {"error": f"use POST {request.path}"}, headers=(("Allow", "POST"),))
        now = self._clock()
        try:
            timestamp, signature = self._signatures.verify(request, now)
            body = json_body(request)
            if not isinstance(body, dict):
                raise Refused(400, f"body must be {path.what}, a JSON object")
            output, record_id = self._output(path, body, now)
        except Refused as refused:
            return refused.response
        refusal = self._signatures.accept(timestamp, signature, now)
        records = (output, *self._signatures.records(timestamp, signature))
        return refusal or IntakeResponse(202, {"accepted": 1, path.id_field: record_id}, outputs=records)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose record was not stored, so the sender may resend it."""
        self._signatures.release(request)

    def _output(self, path: RecordPath, raw: Mapping[str, Any], now: float) -> tuple[Output, str]:
        ingested = datetime.fromtimestamp(now, UTC)
        try:
            record = path.parse(raw, ingested)
        except DataError as exc:
            raise Refused(422, mask_text(exc.reason), field=exc.field) from exc
        except OverflowError as exc:  # a time such as year 1 that leaves the calendar when moved to UTC
            raise Refused(422, f"a date or number is out of range: {exc}") from exc
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", ingested.isoformat(timespec="milliseconds").encode()),
        )
        record_id = str(record[path.id_field])
        value = self._codec.encode(path.record, dict(record))
        return Output(path.topic, record_id.encode(), value, headers), record_id


def serve_signed(
    settings: SignedPushLimits,
    handler: Callable[[PushOptions], SignedHandler],
    *,
    kafka: KafkaSettings,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """A signed intake ready to :meth:`~HttpIntake.run`: ``handler`` made with the settings' replay options.

    ``signatures_topic`` shares the accepted signatures with every process (None: this one only);
    ``producer`` replaces the one made from ``kafka`` (tests); ``clock`` gives unix time.
    """
    producer = intake_producer(kafka, settings) if producer is None else producer
    replays = shared_replays(kafka, settings, producer=producer, topic=signatures_topic)
    options: PushOptions = {
        "replay_window_s": settings.replay_window_s,
        "replay_cache_max_entries": settings.replay_cache_max_entries,
        "replays": replays,
        "clock": clock,
    }
    return ReleasingIntake(
        handler(options),
        replays=replays,
        host=settings.host,
        port=settings.port,
        producer=producer,
        metrics=metrics,
        stop=stop,
        max_body_bytes=settings.max_body_bytes,
        limits=settings,
    )
