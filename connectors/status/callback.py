"""Status callbacks: utilities report a task's progress with ``POST /v1/tasks/{task_id}/status``.

Each accepted report becomes one Avro ``TaskStatus`` (reporter ``callback``) on the task-status topic, keyed by
task id, and is durable in Kafka before the utility gets its 202 (see :mod:`connectors.runtime.http_intake`).
``GET /openapi.json`` serves the OpenAPI description, generated from :mod:`connectors.status.models`.

Answers: 202 accepted (and durable: the ledger applies it) · 400 body not a JSON object or bad task id · 401
missing or unknown token · 403 the body names another utility, or the task was delivered to another utility
· 404 no such task was delivered (after waiting for the view to catch up: :mod:`.task_view`), or unknown path
· 405 wrong method (with ``Allow``) · 408 the request did not arrive in time (the server) · 409 the ledger
would refuse the report (dated before the task was created, after it was CLOSED or REJECTED, …: the reason
says which) · 413 body too large · 415 not JSON · 422 a field is missing, unknown or invalid, or the JSON
holds a lone surrogate, an integer beyond 64 bits or a number beyond a double (``{"error", "field"}``) · 503
Kafka unavailable, retry.
"""

import codecs
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import structlog

from connectors.runtime.http_intake import IntakeRequest, IntakeResponse, IntakeRoute, reject
from connectors.runtime.interface import Output
from connectors.runtime.strict_json import JsonRefused, loads
from connectors.runtime.utility_intake import content_type, declared_charset
from connectors.status.mapping import check_task_id, claimed_utility, parse_status
from connectors.status.models import StatusAccepted, StatusReport
from connectors.status.task_view import TaskView
from routing.errors import DataError
from routing.records import TaskStatus
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE = "status-callbacks"
ROUTE = IntakeRoute(
    path="/v1/tasks/{task_id}/status",
    summary="Report a task's progress (a utility's status callback)",
    body=StatusReport,
    accepted=StatusAccepted,
    refusals={
        400: "The body is not a JSON object, or the task id is malformed.",
        401: "Missing or unknown bearer token.",
        403: "The body names another utility, or the task was delivered to another utility.",
        404: "No such task was delivered to a utility (after the task view caught up with the topic).",
        409: "The ledger would refuse the report: dated before the task was created, after it ended, ...",
        413: "Body larger than max_body_bytes.",
        415: "Not application/json, or an unknown charset.",
        422: "A field is missing, unknown or invalid (field names it).",
        503: "Kafka unavailable; retry after Retry-After.",
    },
)
_STATUS_PATH = re.compile(r"/v1/tasks/([^/]+)/status")
_JSON_TYPES = frozenset({"application/json"})


def _now() -> datetime:
    return datetime.now(UTC)


class StatusCallbackHandler:
    r"""Turns a utility's status callback into a ``TaskStatus`` record; an :class:`IntakeHandler`.

    Each bearer token belongs to exactly one utility, and a utility may report only as itself.

    Example:
        >>> handler = StatusCallbackHandler(tokens={"s3cret": "yantai-water"}, topic="ubridge.task-status.v1")
        >>> intake = HttpIntake(handler, host="0.0.0.0", port=8090, producer=make_producer(kafka),
        ...                     metrics=metrics, stop=stop, max_body_bytes=65536)
        >>> intake.run()

        and from the utility's side::

            curl -X POST http://ubridge:8090/v1/tasks/7f3a9c/status \
                 -H 'Authorization: Bearer s3cret' -H 'Content-Type: application/json' \
                 -d '{"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00", "pipe_length_m": 42.5}'
            → 202 {"accepted": true, "task_id": "7f3a9c"}

    Args:
        tokens: Bearer token → the utility id it authenticates.
        topic: The task-status topic.
        codec: Avro codec (the process-wide one by default).
        clock: Gives ``reported_at`` (UTC).
        view: The delivered tasks; None accepts reports of any task (no 404, 403 or 409).
    """

    stage = STAGE
    routes = (ROUTE,)

    def __init__(
        self,
        *,
        tokens: Mapping[str, str],
        topic: str,
        codec: Codec | None = None,
        clock: Callable[[], datetime] = _now,
        view: TaskView | None = None,
    ) -> None:
        if any(not token.strip() for token in tokens):
            message = "a status-callback token must not be empty"
            raise ValueError(message)
        # Looked up by digest: no early-exit string comparison against the secrets themselves.
        self._utilities = {_digest(token): utility for token, utility in tokens.items()}
        self._topic = topic
        self._codec = codec or Codec.default()
        self._clock = clock
        self._view = view
        self._tickets: dict[int, int] = {}  # id of a request in flight → its pending report's ticket
        self._next_ticket = itertools.count()
        self._tickets_lock = threading.Lock()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        match = _STATUS_PATH.fullmatch(request.path)
        if match is None:
            return reject(404, f"no such resource: {request.path[:200]}")
        return _only("POST", request) or self._report(request, unquote(match.group(1)))

    def _report(self, request: IntakeRequest, raw_task_id: str) -> IntakeResponse:
        utility = self._authenticate(request.headers.get("authorization", ""))
        if utility is None:
            return IntakeResponse(
                401, {"error": "missing or unknown bearer token"}, headers=(("WWW-Authenticate", "Bearer"),)
            )
        payload = _json_object(request)
        if isinstance(payload, IntakeResponse):
            return payload
        try:
            task_id = check_task_id(raw_task_id)
        except DataError as exc:
            return reject(400, str(exc), field=exc.field)
        return self._status(request, utility, task_id, payload)

    def _status(self, request: IntakeRequest, utility: str, task_id: str, payload: dict[str, Any]) -> IntakeResponse:
        try:
            claimed = claimed_utility(payload)
            if claimed is not None and claimed != utility:
                return reject(
                    403, f"utility_id: the token reports for {utility!r}, not {claimed!r}", field="utility_id"
                )
            status = parse_status(
                payload, task_id=task_id, utility_id=utility, reporter="callback", reported_at=self._clock()
            )
        except DataError as exc:
            return reject(422, str(exc), field=exc.field)
        refused = self._refused_by_view(request, status)
        if refused is not None:
            return refused
        value = self._codec.encode("TaskStatus", dict(status))
        headers = (("ubridge.source", STAGE.encode()), ("ubridge.utility", utility.encode()))
        log.info("status_accepted", stage=STAGE, utility=utility, task_id=task_id, status=status["stage"])
        return IntakeResponse(
            202,
            {"accepted": True, "task_id": task_id},
            outputs=(Output(self._topic, task_id.encode(), value, headers),),
        )

    def _refused_by_view(self, request: IntakeRequest, status: TaskStatus) -> IntakeResponse | None:
        """The 404, 403 or 409 answer when the delivered tasks say the report cannot be taken."""
        if self._view is None:
            return None
        with self._tickets_lock:
            ticket = self._tickets[id(request)] = next(self._next_ticket)
        refusal = self._view.decide(status, ticket=ticket)
        if refusal is None:
            return None
        self.settle(request)
        log.info(
            "status_refused",
            stage=STAGE,
            utility=status["utility_id"],
            task_id=status["task_id"],
            status=refusal.status,
        )
        answer = reject(refusal.status, refusal.reason, field=refusal.field)
        if refusal.status == 503:  # noqa: PLR2004 - the view cannot become current: Kafka is unreachable
            return IntakeResponse(503, answer.body, headers=(("Retry-After", "5"),))
        return answer

    def settle(self, request: IntakeRequest) -> None:
        """The answer to ``request`` is sent: its report, if accepted, stays pending until read back."""
        with self._tickets_lock:
            self._tickets.pop(id(request), None)

    def release(self, request: IntakeRequest) -> None:
        """The report of ``request`` was not stored: it no longer counts for the task."""
        with self._tickets_lock:
            ticket = self._tickets.pop(id(request), None)
        if ticket is not None and self._view is not None:
            self._view.forget(ticket)

    def _authenticate(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._utilities.get(_digest(token.strip()))


def _only(method: str, request: IntakeRequest) -> IntakeResponse | None:
    """None when ``request`` uses ``method``, else the 405 answer."""
    if request.method == method:
        return None
    return IntakeResponse(405, {"error": f"use {method}"}, headers=(("Allow", method),))


def _json_object(request: IntakeRequest) -> dict[str, Any] | IntakeResponse:
    """The body as a JSON object in its declared charset, or the 415/400 answer explaining why not."""
    if content_type(request) not in _JSON_TYPES:
        return reject(415, "Content-Type must be application/json")
    charset = declared_charset(request)
    try:
        text = request.body.decode(codecs.lookup(charset).name)
    except LookupError:
        return reject(415, f"unsupported charset {charset[:40]!r}")
    except UnicodeDecodeError:
        return reject(400, f"the body is not valid {charset}")
    try:
        payload = loads(text)
    except JsonRefused as exc:
        return reject(exc.status, exc.reason) if exc.field is None else reject(exc.status, exc.reason, field=exc.field)
    if not isinstance(payload, dict):
        return reject(400, "the body must be a JSON object")
    return payload


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
