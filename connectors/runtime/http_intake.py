"""HTTP intakes: push endpoints (webhooks, status callbacks) that write to Kafka before they answer.

An :class:`IntakeHandler` turns one request into a response and the records to produce. The intake produces
those records and waits for Kafka's acknowledgement *before* answering 2xx, so a sender that got 2xx can
forget the message: it is durable. Every answer is JSON, ``{"error": reason, ...}`` when it is not 2xx:

* 4xx: the sender must change the request (the handler's refusals; 413 also for a record larger than Kafka
  takes, which no retry can fix);
* 503 with ``Retry-After``: Kafka did not take the records within ``kafka_timeout_s`` (the producer never
  blocks longer than half of it on one send), so the answer comes within 1.5 times that; the sender retries
  and duplicates are absorbed downstream by deterministic ids;
* 500 with an ``error_id``: a fault of ubridge (logged with its traceback under that id); nothing was stored.

Each intake serves its :meth:`HttpIntake.router` on its own port through the ASGI layer
(:mod:`connectors.runtime.web_app`); the wire (timeouts, concurrency, malformed requests) is
:mod:`connectors.runtime.web_server`'s.

Example:
    >>> intake = HttpIntake(handler, host="0.0.0.0", port=8090, producer=intake_producer(kafka, limits),
    ...                     metrics=metrics, stop=stop, max_body_bytes=1_048_576, limits=limits)
    >>> intake.run()  # until stop is set
"""

import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

import structlog
from fastapi import APIRouter, Request, Response
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError, RecordListTooLargeError
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.runtime.intake_settings import IntakeLimits
from connectors.runtime.interface import Output, StageState
from connectors.runtime.kafka import make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.record_headers import described
from connectors.runtime.trace_context import TRACEPARENT, child, of_headers, traced
from connectors.runtime.web_app import InternalProblem, Problem, build_app, read_body
from connectors.runtime.web_server import WebLimits, WebServer
from connectors.settings import KafkaSettings
from routing.privacy import mask_text
from schemas import Codec

__all__ = [
    "HttpIntake",
    "IntakeHandler",
    "IntakeLimits",
    "IntakeRequest",
    "IntakeResponse",
    "IntakeRoute",
    "intake_producer",
    "reject",
]

log = structlog.get_logger(__name__)

MAX_RECORD_BYTES: Final = 1_048_576  # the producer's max_request_size (kafka-python's default, set explicitly)
_RECORD_OVERHEAD_BYTES: Final = 512  # batch and record framing around key, value and headers
_RETRY_AFTER_S: Final = "5"
_LINGER_SLACK_MS: Final = 100  # kafka-python wants delivery_timeout_ms >= request_timeout_ms + linger_ms
_CLOSE_SLACK_S: Final = 2.0
_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordListTooLargeError)


@dataclass(frozen=True)
class IntakeRequest:
    """One HTTP request; header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class IntakeResponse:
    """The answer, and the records that must be durable before it is sent."""

    status: int
    body: Mapping[str, Any]
    outputs: Sequence[Output] = ()
    headers: tuple[tuple[str, str], ...] = field(default=())


def reject(status: int, reason: str, **extra: Any) -> IntakeResponse:
    """A 4xx answer with a JSON reason."""
    return IntakeResponse(status, {"error": reason, **extra})


@dataclass(frozen=True, kw_only=True)
class IntakeRoute:
    """One operation an intake serves, as the OpenAPI document describes it.

    Args:
        path: The path, FastAPI style (``/v1/tasks/{task_id}/status``).
        method: The one method served; others are answered 405.
        summary: One line for the document.
        body: The request body's model (documentation: the handler itself decodes the bytes, in any charset).
        accepted: The body of the success answer.
        status: The success status.
        refusals: Status → when it is answered (bodies are :class:`~connectors.runtime.web_app.Problem`).
    """

    path: str
    method: str = "POST"
    summary: str
    body: type[BaseModel]
    accepted: type[BaseModel]
    status: int = 202
    refusals: Mapping[int, str]


def render(response: IntakeResponse) -> bytes:
    """The JSON body of ``response``; text that is not valid Unicode is escaped rather than fail the answer."""
    try:
        return json.dumps(response.body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(response.body).encode()


class IntakeHandler(Protocol):
    """Decides what a request means. Never raises for bad input: it answers 4xx instead."""

    stage: str

    @property
    def routes(self) -> Sequence[IntakeRoute]:
        """The operations it serves."""
        ...

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request."""
        ...


def intake_producer(kafka: KafkaSettings, limits: IntakeLimits) -> KafkaProducer:
    """A producer bounded by ``limits.kafka_timeout_s``.

    A send blocks at most half of it (kafka-python's default is 60 s), and a record not acknowledged within
    it is abandoned soon after (its sender got 503 and will resend), so records from an outage neither land
    minutes later nor keep :meth:`KafkaProducer.close` waiting.
    """
    timeout_ms = int(limits.kafka_timeout_s * 1000)
    return make_producer(
        kafka,
        max_block_ms=timeout_ms // 2,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms + _LINGER_SLACK_MS,
        max_request_size=MAX_RECORD_BYTES,
    )


class HttpIntake:
    """Serves one handler until ``stop`` is set.

    Args:
        handler: What the requests mean.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        producer: Writes the handler's outputs (see :func:`intake_producer`).
        metrics: Process metrics.
        stop: Set to stop serving.
        max_body_bytes: Larger bodies are refused with 413, before they are read when ``Content-Length`` says
            so, else as soon as the streamed body passes the limit.
        limits: Read deadline, Kafka wait and concurrency.
        state: The stage's state, shared with the health endpoint.
    """

    def __init__(
        self,
        handler: IntakeHandler,
        *,
        host: str,
        port: int,
        producer: KafkaProducer,
        metrics: Metrics,
        stop: threading.Event,
        max_body_bytes: int,
        limits: IntakeLimits | None = None,
        state: StageState | None = None,
    ) -> None:
        self.stage = handler.stage
        self.state = state or StageState()
        limits = limits or IntakeLimits()
        self._handler = handler
        self._producer = producer
        self._metrics = metrics
        self._stop = stop
        self._kafka_timeout_s = limits.kafka_timeout_s
        self._max_body_bytes = max_body_bytes
        web_limits = WebLimits(
            read_timeout_s=limits.read_timeout_s,
            max_connections=limits.max_concurrent_requests,
            graceful_s=limits.kafka_timeout_s * 1.5 + _CLOSE_SLACK_S,
        )
        app = build_app([self.router()], description=f"ubridge {self.stage}")
        self._server = WebServer(
            self._counted(app), host=host, port=port, name=self.stage, limits=web_limits, on_answer=self._count
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    def router(self) -> APIRouter:
        """The intake's operations, each answered by :meth:`answer` in a worker thread."""
        return intake_router(self.stage, self._handler.routes, self._endpoint)

    def close(self) -> None:
        """Free the port and the producer of an intake that was built but never run."""
        self._server.stop()
        self._producer.close(timeout=0)

    def run(self) -> None:
        """Serve until stopped, then drain the requests in flight and close the socket and the producer."""
        self._server.start()
        self.state.started = self.state.ready = True
        self._metrics.stage_up.labels(self.stage).set(1)
        log.info("intake_listening", stage=self.stage, port=self.port)
        try:
            self._stop.wait()
        finally:
            self.state.ready = False
            self._server.stop()
            try:
                self._producer.close(timeout=self._kafka_timeout_s + _CLOSE_SLACK_S)
            except KafkaError as exc:  # records still pending: their senders got 503 and will resend
                log.warning("intake_producer_close_failed", stage=self.stage, error=str(exc))
            self._metrics.stage_up.labels(self.stage).set(0)
            log.info("intake_stopped", stage=self.stage)

    async def _endpoint(self, request: Request) -> Response:
        body = await read_body(request, self._max_body_bytes)
        intake_request = IntakeRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
        )
        response = await run_in_threadpool(self.answer, intake_request)
        if response.status >= 400:  # noqa: PLR2004 - HTTP classes
            reason = mask_text(str(response.body.get("error", "")))
            log.warning("request_rejected", stage=self.stage, status=response.status, reason=reason)
        headers = dict(response.headers)
        return Response(render(response), response.status, headers, media_type="application/json; charset=utf-8")

    def _counted(self, app: ASGIApp) -> ASGIApp:
        """``app``, counting every answer it starts by status."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            async def counting(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self._count(int(message["status"]))
                await send(message)

            await app(scope, receive, counting)

        return counted

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """Handle a request and make its outputs durable: 413 when one is too large for Kafka, 503 when Kafka fails."""
        self._metrics.records_in.labels(self.stage).inc()
        response = self._handler.handle(request)
        if response.status >= 300 or not response.outputs:  # noqa: PLR2004 - HTTP classes
            return response
        # the caller's W3C trace continues here when its request carries one; else the record starts a trace
        traceparent = child(request.headers.get(TRACEPARENT))
        refusal = self._store(response.outputs, traceparent)
        if refusal is not None:
            self.not_stored(request)
            return refusal
        self._metrics.records_out.labels(self.stage).inc(len(response.outputs))
        return response

    def not_stored(self, request: IntakeRequest) -> None:
        """Called when a request the handler accepted was answered without its records stored."""

    def _store(self, outputs: Sequence[Output], traceparent: str) -> IntakeResponse | None:
        """Produce ``outputs`` and wait for their acknowledgement; the answer to give instead when that fails."""
        outputs = [o if of_headers(o.headers) else replace(o, headers=traced(o.headers, traceparent)) for o in outputs]
        outputs = [described(output, Codec.default()) for output in outputs]
        for output in outputs:
            size = len(output.key or b"") + len(output.value or b"") + sum(len(k) + len(v) for k, v in output.headers)
            if size + _RECORD_OVERHEAD_BYTES > MAX_RECORD_BYTES:
                return reject(413, f"a record of {size} bytes is larger than Kafka takes ({MAX_RECORD_BYTES})")
        deadline = time.monotonic() + self._kafka_timeout_s
        try:
            futures = []
            for output in outputs:
                if time.monotonic() >= deadline:
                    message = f"Kafka took no record within {self._kafka_timeout_s:g} s"
                    raise KafkaTimeoutError(message)
                headers = list(output.headers)
                futures.append(self._producer.send(output.topic, key=output.key, value=output.value, headers=headers))
            for future in futures:
                future.get(timeout=max(deadline - time.monotonic(), 0.001))
        except _TOO_LARGE as exc:
            log.warning("intake_record_too_large", stage=self.stage, error=str(exc))
            return reject(413, "a record of this request is larger than Kafka takes")
        except KafkaError as exc:
            log.error("intake_write_failed", stage=self.stage, error=str(exc))
            reason = "temporarily unable to store the message"
            return IntakeResponse(503, {"error": reason}, headers=(("Retry-After", _RETRY_AFTER_S),))
        return None

    def _count(self, status: int) -> None:
        self._metrics.intake_requests.labels(self.stage, str(status)).inc()


def intake_router(
    stage: str, routes: Sequence[IntakeRoute], endpoint: Callable[[Request], Awaitable[Response]]
) -> APIRouter:
    """A router serving ``routes`` with ``endpoint``, documented from their models."""
    router = APIRouter(tags=[stage])
    for route in routes:
        router.add_api_route(
            route.path,
            endpoint,
            methods=[route.method],
            summary=route.summary,
            operation_id=f"{stage}-{route.method.lower()}",
            status_code=route.status,
            responses=_documented(route),
            openapi_extra=_request_body(route),
        )
    return router


def _documented(route: IntakeRoute) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {route.status: {"model": route.accepted, "description": "Accepted."}}
    for status, when in sorted(route.refusals.items()):
        answers[status] = {"model": Problem, "description": when}
    answers[500] = {"model": InternalProblem, "description": "A fault of ubridge; nothing was stored. Quote error_id."}
    return answers


def _request_body(route: IntakeRoute) -> dict[str, Any]:
    """The request body's schema, inlined: the handler reads the bytes itself (GBK and GB18030 too)."""
    schema = route.body.model_json_schema()
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}]+)}", route.path)
    ]
    extra: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    if parameters:
        extra["parameters"] = parameters
    return extra
