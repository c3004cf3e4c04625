"""工改系统 data interface, pushed: the approval system POSTs signed project events to ubridge.

``POST /v1/project-events`` takes one event (a JSON object) or a batch ``{"events": [...]}`` in the vendor's
format. It is answered only after the events are durable in Kafka (see :mod:`connectors.runtime.http_intake`).

Signature scheme (DESIGN §4.2)::

    X-Ubridge-Timestamp: 1795573860                     unix seconds when the sender signed
    X-Ubridge-Signature: sha256=<hex>                   HMAC-SHA256(secret, "<timestamp>." + raw body bytes)

The HMAC covers the timestamp and the exact bytes sent (before any charset decoding), and is compared in
constant time. A timestamp more than ``replay_window_s`` (default 300) from ubridge's clock is refused as a
replay, and so is a signature already accepted within the window (a bounded cache; when it is full the
sender is asked to slow down with 429). A sender signs every attempt afresh; one whose request got 503
(Kafka did not take the events) may also resend it unchanged.

Answers, each ``{"error": reason, ...}`` unless 202:

=====  ==========================================================================================
202    ``{"accepted": n}``: every event is on the raw topic
400    the body is not JSON, not decodable in its declared charset, or not an event or batch
401    missing, malformed or wrong signature; timestamp outside the window; replayed signature
404    another path; 405 another method
413    body larger than ``max_body_bytes`` (refused by the intake before it is read)
415    not ``application/json``, or a charset other than UTF-8, GBK (GB2312, CP936) or GB18030
422    an event fails the vendor mapping or validation: ``field`` is the vendor's path, ``index`` the event
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

import hashlib
import heapq
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kafka import KafkaProducer
from pydantic import SecretStr

from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import HttpIntake, IntakeRequest, IntakeResponse, reject
from connectors.runtime.interface import Output
from connectors.runtime.kafka import make_producer
from connectors.runtime.metrics import Metrics
from connectors.settings import ConfigError, KafkaSettings
from routing.errors import DataError
from routing.gonggai import normalise
from routing.mapping import VendorMapping, apply_mapping, load_mapping

WEBHOOK_PATH: Final = "/v1/project-events"
TIMESTAMP_HEADER: Final = "x-ubridge-timestamp"
SIGNATURE_HEADER: Final = "x-ubridge-signature"
DEFAULT_FORMAT: Final = b"default"

_SIGNATURE: Final = re.compile(r"sha256=([0-9a-fA-F]{64})")
_TIMESTAMP: Final = re.compile(r"\d{1,12}")
_CHARSETS: Final = {
    "utf-8": "utf-8-sig",  # a UTF-8 byte-order mark is tolerated
    "utf8": "utf-8-sig",
    "gbk": "gbk",
    "cp936": "gbk",
    "gb2312": "gbk",  # senders label GBK text GB2312 often enough; GBK is its superset
    "gb18030": "gb18030",
}
_JSON_TYPES: Final = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)
_FULL_RETRY_AFTER_S: Final = "1"

CacheOutcome = Literal["added", "seen", "full"]


class ReplayCache:
    """Signatures accepted within the replay window; bounded and safe to share between request threads."""

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, signature: str, now: float) -> bool:
        """Tell whether ``signature`` was accepted and has not expired yet."""
        with self._lock:
            return self._expiry.get(signature, -1.0) >= now

    def add(self, signature: str, *, expires_at: float, now: float) -> CacheOutcome:
        """Record ``signature`` until ``expires_at`` unless already there; ``full`` leaves it unrecorded."""
        with self._lock:
            self._prune(now)
            if signature in self._expiry:
                return "seen"
            if len(self._expiry) >= self._max_entries:
                return "full"
            self._expiry[signature] = expires_at
            heapq.heappush(self._heap, (expires_at, signature))
            return "added"

    def discard(self, signature: str) -> None:
        """Forget ``signature`` (its request was not stored after all, so it may be sent again)."""
        with self._lock:
            self._expiry.pop(signature, None)

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            expires_at, signature = heapq.heappop(self._heap)
            if self._expiry.get(signature) == expires_at:
                del self._expiry[signature]


class GonggaiWebhook:
    """Answers ``POST /v1/project-events``: verifies, decodes, maps and validates, then hands over the records.

    Args:
        name: Stage name; also the ``ubridge.source`` header (and so part of every event id).
        secret: The HMAC key shared with the sender.
        mapping: The sender's vendor mapping.
        raw_topic: Where the events go (``ubridge.raw.gonggai.v1`` with the prefix).
        replay_window_s: Largest accepted distance between the sender's timestamp and our clock.
        replay_cache_max_entries: Most signatures remembered at once.
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = name
        self._key = secret.get_secret_value().encode()
        self._mapping = mapping
        self._raw_topic = raw_topic
        self._window_s = replay_window_s
        self._replays = ReplayCache(max_entries=replay_cache_max_entries)
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
            timestamp, signature = self._verify(request, now)
            outputs = self._outputs(_events(request), now)
        except _Refused as refused:
            return refused.response
        outcome = self._replays.add(signature, expires_at=timestamp + self._window_s, now=now)
        if outcome == "seen":
            return reject(401, "replayed request: this signature was already accepted")
        if outcome == "full":
            reason = "too many requests within the replay window"
            return IntakeResponse(429, {"error": reason}, headers=(("Retry-After", _FULL_RETRY_AFTER_S),))
        return IntakeResponse(202, {"accepted": len(outputs)}, outputs=outputs)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose records were not stored, so the sender may resend it."""
        match = _SIGNATURE.fullmatch(request.headers.get(SIGNATURE_HEADER, "").strip())
        if match is not None:
            self._replays.discard(match.group(1).lower())

    def _verify(self, request: IntakeRequest, now: float) -> tuple[int, str]:
        stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        if _TIMESTAMP.fullmatch(stamp) is None:
            raise _Refused(401, f"{TIMESTAMP_HEADER} must be the signing time in unix seconds")
        match = _SIGNATURE.fullmatch(request.headers.get(SIGNATURE_HEADER, "").strip())
        if match is None:
            raise _Refused(401, f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
        given = match.group(1).lower()
        expected = hmac.new(self._key, stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise _Refused(401, "signature does not match: HMAC-SHA256(secret, timestamp + '.' + body)")
        timestamp = int(stamp)
        skew = now - timestamp
        if abs(skew) > self._window_s:
            side = "old" if skew > 0 else "in the future"
            reason = f"replay refused: timestamp is {abs(skew):.0f} s {side}; the window is ±{self._window_s} s"
            raise _Refused(401, reason)
        if self._replays.seen(given, now):
            raise _Refused(401, "replayed request: this signature was already accepted")
        return timestamp, given

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
                raise _Refused(422, error.reason, field=error.field, index=index) from exc
            value = json.dumps(mapped, ensure_ascii=False).encode()
            outputs.append(Output(self._raw_topic, event["project_code"].encode(), value, headers))
        return outputs


class _Refused(Exception):
    """Bad input: answer ``response`` and store nothing."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.response = reject(status, reason, **extra)


def _events(request: IntakeRequest) -> list[Any]:
    """The events of the body: decoded in the declared charset, one object or ``{"events": [...]}``."""
    media_type, params = _content_type(request.headers.get("content-type", "application/json"))
    if _JSON_TYPES.fullmatch(media_type) is None:
        raise _Refused(415, f"content type {media_type!r} is not application/json")
    declared = params.get("charset", "utf-8")
    codec = _CHARSETS.get(declared.lower())
    if codec is None:
        raise _Refused(415, f"charset {declared!r} is not supported; use UTF-8 or GBK")
    try:
        text = request.body.decode(codec)
    except UnicodeDecodeError as exc:
        raise _Refused(400, f"body is not valid {declared} at byte {exc.start}") from exc
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Refused(400, f"body is not JSON: {exc}") from exc
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return list(body["events"])
    if isinstance(body, dict):
        return [body]
    raise _Refused(400, 'body must be an event object or {"events": [...]}')


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    media_type, *rest = value.split(";")
    params = {}
    for param in rest:
        name, _, param_value = param.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"')
    return media_type.strip().lower(), params


class _WebhookIntake(HttpIntake):
    """An intake that forgets a request's signature when Kafka did not take its records (503)."""

    def __init__(self, webhook: GonggaiWebhook, **kwargs: Any) -> None:
        super().__init__(webhook, **kwargs)
        self._webhook = webhook

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """As :meth:`HttpIntake.answer`; a request that was not stored may be sent again unchanged."""
        try:
            response = super().answer(request)
        except BaseException:
            self._webhook.release(request)
            raise
        if response.status >= 500:  # noqa: PLR2004 - HTTP classes
            self._webhook.release(request)
        return response


def build_webhook(
    settings: GonggaiWebhookSettings,
    *,
    kafka: KafkaSettings,
    raw_topic: str,
    metrics: Metrics,
    stop: threading.Event,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The webhook's intake, ready to :meth:`~HttpIntake.run`.

    ``producer`` replaces the one made from ``kafka`` (tests); ``clock`` gives unix time.

    Raises:
        ConfigError: the mapping file cannot be read or is invalid (the message names file and key).
    """
    try:
        mapping = load_mapping(settings.mapping)
    except ValueError as exc:
        message = f"sources.gonggai_webhook.mapping: {exc}"
        raise ConfigError(message) from exc
    webhook = GonggaiWebhook(
        name=settings.name,
        secret=settings.secret,
        mapping=mapping,
        raw_topic=raw_topic,
        replay_window_s=settings.replay_window_s,
        replay_cache_max_entries=settings.replay_cache_max_entries,
        clock=clock,
    )
    return _WebhookIntake(
        webhook,
        host=settings.host,
        port=settings.port,
        producer=make_producer(kafka) if producer is None else producer,
        metrics=metrics,
        stop=stop,
        max_body_bytes=settings.max_body_bytes,
    )
