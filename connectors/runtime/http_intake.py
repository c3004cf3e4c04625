"""HTTP intakes: push endpoints (webhooks, status callbacks) that write to Kafka before they answer.

An :class:`IntakeHandler` turns one request into a response and the records to produce. The server produces
those records and waits for Kafka's acknowledgement *before* answering 2xx, so a sender that got 2xx can
forget the message: it is durable. If Kafka does not acknowledge, the sender gets 503 with ``Retry-After``
and tries again (duplicates are absorbed downstream by deterministic ids). Bad input gets a 4xx with a JSON
reason and nothing enters Kafka.

Example:
    >>> intake = HttpIntake(handler, host="0.0.0.0", port=8090, producer=make_producer(kafka),
    ...                     metrics=metrics, stop=stop, max_body_bytes=1_048_576)
    >>> intake.run()  # until stop is set
"""

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.runtime.interface import Output, StageState
from connectors.runtime.metrics import Metrics
from routing.privacy import mask_text

log = structlog.get_logger(__name__)

_ACK_TIMEOUT_S = 15.0


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


class IntakeHandler(Protocol):
    """Decides what a request means. Never raises for bad input: it answers 4xx instead."""

    stage: str

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request."""
        ...


class HttpIntake:
    """Serves one handler until ``stop`` is set.

    Args:
        handler: What the requests mean.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        producer: Writes the handler's outputs.
        metrics: Process metrics.
        stop: Set to stop serving.
        max_body_bytes: Larger bodies are refused with 413 before they are read.
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
        state: StageState | None = None,
    ) -> None:
        self.stage = handler.stage
        self.state = state or StageState()
        self._handler = handler
        self._producer = producer
        self._metrics = metrics
        self._stop = stop
        self._max_body_bytes = max_body_bytes
        self._server = _Server((host, port), self._request_class())

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def run(self) -> None:
        """Serve until stopped, then close the socket and the producer."""
        thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name=self.stage, daemon=True)
        thread.start()
        self.state.started = self.state.ready = True
        self._metrics.stage_up.labels(self.stage).set(1)
        log.info("intake_listening", stage=self.stage, port=self.port)
        try:
            self._stop.wait()
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._producer.close()
            self._metrics.stage_up.labels(self.stage).set(0)
            log.info("intake_stopped", stage=self.stage)

    def answer(self, request: IntakeRequest) -> IntakeResponse:
        """Handle a request and make its outputs durable; 503 when Kafka cannot take them."""
        response = self._handler.handle(request)
        if response.status >= 300 or not response.outputs:  # noqa: PLR2004 - HTTP classes
            return response
        try:
            futures = [
                self._producer.send(o.topic, key=o.key, value=o.value, headers=list(o.headers))
                for o in response.outputs
            ]
            for future in futures:
                future.get(timeout=_ACK_TIMEOUT_S)
        except KafkaError as exc:
            log.error("intake_write_failed", stage=self.stage, error=str(exc))
            return IntakeResponse(
                503, {"error": "temporarily unable to store the message"}, headers=(("Retry-After", "5"),)
            )
        self._metrics.records_out.labels(self.stage).inc(len(response.outputs))
        return response

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        intake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def _serve(self, method: str) -> None:
                length = self.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else 0
                if size > intake._max_body_bytes:
                    self.close_connection = True
                    self._send(reject(413, f"body of {size} bytes exceeds the limit of {intake._max_body_bytes}"))
                    return
                url = urlsplit(self.path)
                request = IntakeRequest(
                    method=method,
                    path=url.path,
                    query=dict(parse_qsl(url.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(size) if size else b"",
                )
                intake._metrics.records_in.labels(intake.stage).inc()
                self._send(intake.answer(request))

            def _send(self, response: IntakeResponse) -> None:
                intake._metrics.intake_requests.labels(intake.stage, str(response.status)).inc()
                if response.status >= 400:  # noqa: PLR2004 - HTTP classes
                    reason = mask_text(str(response.body.get("error", "")))
                    log.warning("request_rejected", stage=intake.stage, status=response.status, reason=reason)
                body = json.dumps(response.body, ensure_ascii=False).encode()
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Requests are logged as events by the intake, not by http.server."""

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses connections when many senders burst at once
