"""What the intakes utilities call with JSON (permits, survey replies) share: who is calling, the body, refusals.

A utility authenticates with its bearer token (its status-callback token; one token names one utility, kept as
digests). A body is a JSON object in the charset its Content-Type declares (UTF-8 when none; GBK is common). A
refused request is answered 4xx with ``{"error", "field"?}`` and its body goes, as it came, to the stage's
dead-letter topic with the reason (:class:`RefusalLetters` makes the letter durable before the answer), so
nothing a utility sent is lost from sight.
"""

import codecs
import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from email.message import Message
from typing import Any

from connectors.runtime.dlq import source_dead_letter
from connectors.runtime.http_intake import HttpIntake, IntakeRequest, IntakeResponse, reject
from connectors.runtime.metrics import Metrics
from connectors.runtime.strict_json import JsonRefused, loads
from connectors.runtime.trace_context import TRACEPARENT, child
from routing.errors import DataError


class UtilityJsonHandler:
    """The shared half of a utility's JSON intake handler: the caller, the body, the refusal with its letter.

    Args:
        stage: The intake's stage name (dead letters and logs).
        tokens: Bearer token → the utility id it authenticates.
        dlq_topic: Where refused bodies go, with their reason.
        clock: Now (UTC), for the letters.
    """

    def __init__(self, *, stage: str, tokens: Mapping[str, str], dlq_topic: str, clock: Callable[[], datetime]) -> None:
        if any(not token.strip() for token in tokens):
            message = f"a {stage} token must not be empty"
            raise ValueError(message)
        self._stage = stage
        self._utilities = {_digest(token): utility for token, utility in tokens.items()}
        self._dlq_topic = dlq_topic
        self._clock = clock

    def read(self, request: IntakeRequest) -> tuple[str, dict[str, Any]] | IntakeResponse:
        """The calling utility and its body (a ``utility_id`` in it, if any, taken out), or the answer refusing them.

        A body naming another utility than the token's is a 403.
        """
        utility = self.caller(request)
        if isinstance(utility, IntakeResponse):
            return utility
        payload = self.json_object(request, utility)
        if isinstance(payload, IntakeResponse):
            return payload
        claimed = payload.pop("utility_id", utility)
        if claimed != utility:
            reason = f"utility_id: the token is {utility!r}'s, not {str(claimed)[:40]!r}'s"
            return reject(403, reason, field="utility_id")
        return utility, payload

    def caller(self, request: IntakeRequest) -> str | IntakeResponse:
        """The utility the request's token authenticates, or the 405/401/415 answer."""
        if request.method != "POST":
            return IntakeResponse(405, {"error": "use POST"}, headers=(("Allow", "POST"),))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        utility = self._utilities.get(_digest(token.strip())) if scheme.lower() == "bearer" else None
        if utility is None:
            return IntakeResponse(
                401, {"error": "missing or unknown bearer token"}, headers=(("WWW-Authenticate", "Bearer"),)
            )
        if content_type(request) != "application/json":
            return reject(415, "Content-Type must be application/json")
        return utility

    def json_object(self, request: IntakeRequest, utility: str) -> dict[str, Any] | IntakeResponse:
        """The body as a JSON object, or the refusal (with its dead letter) saying why not."""
        charset = declared_charset(request)
        try:
            payload = loads(request.body.decode(codecs.lookup(charset).name))
        except LookupError:
            return self.refuse(request, utility, DataError("", f"unsupported charset {charset[:40]!r}"), 415)
        except UnicodeDecodeError:
            return self.refuse(request, utility, DataError("", f"the body is not valid {charset[:40]}"), 400)
        except JsonRefused as exc:
            return self.refuse(request, utility, DataError(exc.field or "", exc.reason), exc.status)
        if not isinstance(payload, dict):
            return self.refuse(request, utility, DataError("", "the body must be a JSON object"), 400)
        return payload

    def refuse(self, request: IntakeRequest, utility: str, error: DataError, status: int) -> IntakeResponse:
        """The 4xx answer, carrying the body's dead letter for the intake to store."""
        letter = source_dead_letter(
            error,
            stage=self._stage,
            topic=self._dlq_topic,
            key=utility.encode(),
            value=request.body,
            where=utility,
            now=self._clock(),
        )
        extra: dict[str, Any] = {"field": error.field} if error.field else {}
        return IntakeResponse(status, {"error": str(error), **extra}, outputs=(letter,))


class RefusalLetters(HttpIntake):
    """An :class:`HttpIntake` that also stores the dead letters of the requests it refuses."""

    def __init__(self, handler: Any, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(handler, metrics=metrics, **kwargs)
        self._letters_metrics = metrics

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """As :meth:`HttpIntake.answer`; a refusal's dead letter is made durable before the 4xx is sent."""
        response = super().answer(request)
        if response.status < 400 or not response.outputs:  # noqa: PLR2004 - HTTP classes
            return response
        failed = self._store(response.outputs, child(request.headers.get(TRACEPARENT)))
        if failed is not None:  # the sender retries; its request is not lost from sight
            return failed
        self._letters_metrics.records_dead_lettered.labels(self.stage, "DataError").inc(len(response.outputs))
        return IntakeResponse(response.status, response.body, headers=response.headers)


def content_type(request: IntakeRequest) -> str:
    """The request's media type, lower-case, without its parameters."""
    return _content_header(request).get_content_type()


def declared_charset(request: IntakeRequest) -> str:
    """The charset the request's Content-Type declares (a utility's system may send GBK); UTF-8 when none."""
    return str(_content_header(request).get_content_charset("utf-8"))


def _content_header(request: IntakeRequest) -> Message:
    header = Message()
    header["content-type"] = request.headers.get("content-type", "")
    return header


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
