"""Shared plumbing of the simulators: a threaded JSON HTTP server and a seeded fault plan.

A simulator is a plain object that owns its state and hands one function ``Request -> Response`` to a
`JsonHttpServer`; the server only moves bytes. `FaultPlan` decides, per business request, whether to
delay it and whether to answer an injected error instead, so every simulator misbehaves the same way.

Example:
    >>> server = JsonHttpServer(lambda request: json_response(200, {"ok": True}), host="127.0.0.1", port=0)
    >>> url = server.start()
    >>> server.stop()
"""

from __future__ import annotations

import hmac
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_JSON = "application/json; charset=utf-8"
_BACKPRESSURE_STATUSES = frozenset({429, 503})
_POLL_S = 0.05  # how often serve_forever checks for shutdown, so stop() returns promptly


@dataclass(frozen=True)
class Request:
    """One HTTP request as the simulator sees it.

    Attributes:
        method: HTTP method, upper case.
        path: URL path without the query string.
        query: query parameters; the last value wins when a name repeats.
        headers: header values keyed by lower-case name.
        body: raw request body.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def bearer_matches(self, token: str) -> bool:
        """Tell whether the request carries ``Authorization: Bearer <token>``, compared in constant time."""
        given = self.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {token}".encode())

    def json_object(self) -> dict[str, Any]:
        """Decode the body as a JSON object.

        Raises:
            ValueError: the body is not JSON or not an object.
        """
        payload = json.loads(self.body)
        if not isinstance(payload, dict):
            message = "body is not a JSON object"
            raise ValueError(message)
        return payload


@dataclass(frozen=True)
class Response:
    """One HTTP answer: status, body bytes and extra headers."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


NO_CONTENT = Response(204)


def json_response(status: int, payload: Any, *, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Answer ``payload`` as UTF-8 JSON (Chinese text stays readable, not escaped)."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, body, (("Content-Type", _JSON), *headers))


def error_response(status: int, message: str, *, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Answer ``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message}, headers=headers)


def unauthorized() -> Response:
    """Answer 401 the way a bearer-protected API does."""
    return error_response(401, "missing or wrong bearer token", headers=(("WWW-Authenticate", "Bearer"),))


Route = Callable[[Request], Response]


def dispatch(routes: Mapping[tuple[str, str], Route], request: Request) -> Response:
    """Call the route for ``(method, path)``; 405 when only the method is wrong, else 404."""
    route = routes.get((request.method, request.path))
    if route is not None:
        return route(request)
    allowed = sorted(method for method, path in routes if path == request.path)
    if allowed:
        return error_response(405, f"use {', '.join(allowed)}", headers=(("Allow", ", ".join(allowed)),))
    return error_response(404, f"no such resource: {request.path}")


def _seconds_text(seconds: float) -> str:
    """Format a ``Retry-After`` value: whole seconds as an integer, otherwise a decimal (for fast tests)."""
    return f"{seconds:g}"


class FaultPlan:
    """Thread-safe plan of injected faults, drawn from a seeded random generator.

    The plan is replaced as a whole by `configure`, so calling it with no arguments clears every fault.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._error_rate = 0.0
        self._error_status = 503
        self._latency_s = 0.0
        self._outage_until = 0.0
        self._retry_after_s = 1.0
        self._after_store_rate = 0.0

    def configure(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 503,
        latency_ms: int = 0,
        outage_s: float = 0.0,
        retry_after_s: float | None = None,
        fail_after_store_rate: float = 0.0,
    ) -> None:
        """Replace the plan.

        Args:
            error_rate: probability in [0, 1] that a request is answered ``error_status``.
            error_status: the injected status, 400..599.
            latency_ms: delay added to every business response.
            outage_s: every business request fails with 503 for this many seconds from now.
            retry_after_s: ``Retry-After`` sent with 429 and 503 answers; None means 1 second.
            fail_after_store_rate: probability that a stored write is answered 503 (lost acknowledgement).

        Raises:
            ValueError: a value out of range.
        """
        rates = (float(error_rate), float(fail_after_store_rate))
        delays = (float(latency_ms), float(outage_s), 1.0 if retry_after_s is None else float(retry_after_s))
        if not all(0.0 <= rate <= 1.0 for rate in rates) or min(delays) < 0:
            message = "rates must lie in [0, 1] and delays must not be negative"
            raise ValueError(message)
        if not 400 <= int(error_status) <= 599:  # noqa: PLR2004 - the HTTP error range
            message = f"error_status must be an HTTP error status, not {error_status}"
            raise ValueError(message)
        with self._lock:
            self._error_rate, self._after_store_rate = rates
            self._error_status = int(error_status)
            self._latency_s = delays[0] / 1000
            self._outage_until = time.monotonic() + delays[1]
            self._retry_after_s = delays[2]

    def intercept(self) -> Response | None:
        """Wait the configured latency, then return the injected failure for this request, if any."""
        with self._lock:
            latency_s = self._latency_s
            in_outage = time.monotonic() < self._outage_until
            drawn = self._rng.random() < self._error_rate
        if latency_s:
            time.sleep(latency_s)
        if in_outage:
            return self._failure(503, "simulated outage")
        if drawn:
            return self._failure(self._error_status, "simulated fault")
        return None

    def lost_acknowledgement(self) -> Response | None:
        """Return a 503 for a write that was stored but whose answer is lost, if the plan draws one."""
        with self._lock:
            drawn = self._rng.random() < self._after_store_rate
        return self._failure(503, "simulated failure after the write was stored") if drawn else None

    def _failure(self, status: int, message: str) -> Response:
        with self._lock:
            retry_after = _seconds_text(self._retry_after_s)
        headers = (("Retry-After", retry_after),) if status in _BACKPRESSURE_STATUSES else ()
        return error_response(status, message, headers=headers)


class JsonHttpServer:
    """A `ThreadingHTTPServer` in a daemon thread that hands every request to one function."""

    def __init__(self, app: Route, *, host: str, port: int) -> None:
        self._app = app
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._server is None:
            message = "the simulator is not started"
            raise RuntimeError(message)
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Bind (port 0 picks a free one), serve in a daemon thread and return the base URL."""
        if self._server is None:
            self._server = _Server(self._address, self._app)
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(_POLL_S,), name="simulator", daemon=True
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, drop kept-alive connections and release the port; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        # Kept-alive connections would otherwise go on being served after stop().
        server.close_connections()
        server.server_close()
        thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses connections when many clients burst at once

    def __init__(self, address: tuple[str, int], app: Route) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler thread

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        # Clients hanging up mid-answer (timeouts during injected latency) are expected, not bugs.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add 40 ms to each answer.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, *args: Any) -> None:
        """Stay quiet: tests and benchmarks would drown in access logs."""

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(error_response(400, "bad Content-Length"))
            self.close_connection = True
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length > 0 else b"",
        )
        try:
            response = self.server.app(request)
        except Exception as exc:  # a simulator bug must still answer, not leave the client hanging
            response = error_response(500, f"simulator error: {exc!r}")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status != 204:  # noqa: PLR2004 - a 204 must not announce a body length
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)
