"""Signed pushes: what every push intake (the 工改 webhook, the 爱山东 gateway) checks before reading a body.

Signature scheme (DESIGN §4.2)::

    X-Ubridge-Timestamp: 1795573860                     unix seconds when the sender signed
    X-Ubridge-Signature: sha256=<hex>                   HMAC-SHA256(secret, "<timestamp>." + raw body bytes)

The HMAC covers the timestamp and the exact bytes sent, compared in constant time. A timestamp more than the
window away from our clock is a replay, and so is a signature already accepted within the window (a bounded
cache; when it is full the sender is asked to slow down with 429). With :class:`SharedReplays` the accepted
signatures are also written to Kafka with the request's records, so every process of the installation, and
every later start, refuses them too. Bodies are decoded in their declared charset (UTF-8, GBK and its
GB2312/CP936 labels, GB18030) and parsed as strict JSON (:mod:`connectors.runtime.strict_json`).
:class:`ReleasingIntake` forgets a signature when the request's records were not stored (503), so the sender
may resend it unchanged.
"""

import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from pydantic import SecretStr

from connectors.runtime.http_intake import HttpIntake, IntakeHandler, IntakeRequest, IntakeResponse, reject
from connectors.runtime.interface import Output
from connectors.runtime.replay_log import ReplayCache, SharedReplays
from connectors.runtime.strict_json import JsonRefused, loads

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Refused",
    "ReleasingIntake",
    "ReplayCache",
    "SharedReplays",
    "SignatureCheck",
    "SignedHandler",
    "json_body",
]

TIMESTAMP_HEADER: Final = "x-ubridge-timestamp"
SIGNATURE_HEADER: Final = "x-ubridge-signature"

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
_CATCH_UP_TIMEOUT_S: Final = 60.0


class Refused(Exception):
    """Bad input: answer ``response`` and store nothing."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.response = reject(status, reason, **extra)


class SignatureCheck:
    """Verifies signed requests and remembers accepted signatures within the window.

    Args:
        secret: The HMAC key shared with the sender.
        window_s: Largest accepted distance between the sender's timestamp and our clock.
        max_entries: Most signatures remembered at once.
        shared: Where every process of the installation keeps the accepted signatures (None: this one only).
    """

    def __init__(
        self, *, secret: SecretStr, window_s: int, max_entries: int, shared: SharedReplays | None = None
    ) -> None:
        self._key = secret.get_secret_value().encode()
        self._window_s = window_s
        self._shared = shared
        self._replays = ReplayCache(max_entries=max_entries) if shared is None else shared.cache

    def verify(self, request: IntakeRequest, now: float) -> tuple[int, str]:
        """The request's timestamp and signature, once both check out.

        Raises:
            Refused: 401 for a missing, malformed or wrong signature, a stale timestamp or a replay.
        """
        stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        if _TIMESTAMP.fullmatch(stamp) is None:
            raise Refused(401, f"{TIMESTAMP_HEADER} must be the signing time in unix seconds")
        match = _SIGNATURE.fullmatch(request.headers.get(SIGNATURE_HEADER, "").strip())
        if match is None:
            raise Refused(401, f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
        given = match.group(1).lower()
        expected = hmac.new(self._key, stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise Refused(401, "signature does not match: HMAC-SHA256(secret, timestamp + '.' + body)")
        timestamp = int(stamp)
        skew = now - timestamp
        if abs(skew) > self._window_s:
            side = "old" if skew > 0 else "in the future"
            reason = f"replay refused: timestamp is {abs(skew):.0f} s {side}; the window is ±{self._window_s} s"
            raise Refused(401, reason)
        if self._replays.seen(given, now):
            raise Refused(401, "replayed request: this signature was already accepted")
        return timestamp, given

    def accept(self, timestamp: int, signature: str, now: float) -> IntakeResponse | None:
        """Remember an accepted signature; the answer to give instead when it cannot be (replay, cache full)."""
        outcome = self._replays.add(signature, expires_at=timestamp + self._window_s, now=now)
        if outcome == "seen":
            return reject(401, "replayed request: this signature was already accepted")
        if outcome == "full":
            reason = "too many requests within the replay window"
            return IntakeResponse(429, {"error": reason}, headers=(("Retry-After", _FULL_RETRY_AFTER_S),))
        return None

    def records(self, timestamp: int, signature: str) -> tuple[Output, ...]:
        """What to write with an accepted request's records so that every process refuses its replay."""
        if self._shared is None:
            return ()
        return (self._shared.record(signature, timestamp + self._window_s),)

    def release(self, request: IntakeRequest) -> None:
        """Forget the signature of a request whose records were not stored, so the sender may resend it."""
        match = _SIGNATURE.fullmatch(request.headers.get(SIGNATURE_HEADER, "").strip())
        if match is not None:
            self._replays.discard(match.group(1).lower())
            if self._shared is not None:
                self._shared.release(match.group(1).lower())


def json_body(request: IntakeRequest) -> Any:
    """The body as strict JSON, decoded in the declared charset.

    Raises:
        Refused: 415 for another content type or charset, 400 for undecodable bytes or bad JSON, 400 or 422
            for JSON the intakes cannot carry (see :func:`connectors.runtime.strict_json.loads`).
    """
    media_type, params = _content_type(request.headers.get("content-type", "application/json"))
    if _JSON_TYPES.fullmatch(media_type) is None:
        raise Refused(415, f"content type {media_type!r} is not application/json")
    declared = params.get("charset", "utf-8")
    codec = _CHARSETS.get(declared.lower())
    if codec is None:
        raise Refused(415, f"charset {declared!r} is not supported; use UTF-8 or GBK")
    try:
        text = request.body.decode(codec)
    except UnicodeDecodeError as exc:
        raise Refused(400, f"body is not valid {declared} at byte {exc.start}") from exc
    try:
        return loads(text)
    except JsonRefused as exc:
        extra = {} if exc.field is None else {"field": exc.field}
        raise Refused(exc.status, exc.reason, **extra) from exc


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    media_type, *rest = value.split(";")
    params = {}
    for param in rest:
        name, _, param_value = param.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"')
    return media_type.strip().lower(), params


class SignedHandler(IntakeHandler, Protocol):
    """A push handler that can forget a request's signature."""

    def release(self, request: IntakeRequest) -> None:
        """Forget the request's signature."""
        ...


class ReleasingIntake(HttpIntake):
    """A signed-push intake: forgets a request's signature when its records were not stored (503).

    With ``replays`` it reads the shared signatures to their end before it listens, and follows them while
    it serves.
    """

    def __init__(self, handler: SignedHandler, *, replays: SharedReplays | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._release: Callable[[IntakeRequest], None] = handler.release
        self._replays = replays

    def run(self) -> None:
        """As :meth:`HttpIntake.run`, caught up with and following the shared signatures."""
        if self._replays is None:
            super().run()
            return
        self._replays.catch_up(_CATCH_UP_TIMEOUT_S)
        follower = threading.Thread(
            target=self._replays.follow, args=(self._stop,), name=f"{self.stage}-replays", daemon=True
        )
        follower.start()
        try:
            super().run()
        finally:
            follower.join()
            self._replays.close()

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """As :meth:`HttpIntake.answer`; a request that was not stored may be sent again unchanged."""
        try:
            return super().answer(request)
        except BaseException:
            self._release(request)
            raise

    def not_stored(self, request: IntakeRequest) -> None:
        """Forget the request's signature: its sender may resend it unchanged."""
        self._release(request)
