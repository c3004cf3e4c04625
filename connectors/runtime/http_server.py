"""The wire side of the HTTP intakes: a small threaded HTTP/1.1 server that answers every request in JSON.

:class:`IntakeServer` reads one request at a time per connection and hands it to a ``respond`` callable as an
:class:`IntakeRequest`; whatever happens, the client gets an HTTP answer with a JSON body or, when it stops
talking, a closed connection:

* a malformed request line or header, an HTTP version other than 1.x, a bad ``Content-Length``, a body
  shorter than it → 400;
  a chunked body → 411; a body over the limit → 413 (not read); a request line over 64 KiB → 414;
* a request, headers and body included, that does not arrive within ``read_timeout_s`` → 408 and close
  (the deadline covers the whole request, so a sender trickling bytes cannot hold a thread longer either);
* more than ``max_concurrent_requests`` connections at once → 503 with ``Retry-After``, answered by the
  accepting thread, so the number of request threads is bounded;
* any method reaches ``respond`` (which answers 405 with ``Allow`` for the ones it does not serve).

Every event goes through structlog (client disconnects at info, crashes at error with their traceback in
the JSON object); ``http.server`` itself writes nothing.

Example:
    >>> server = IntakeServer(respond, host="127.0.0.1", port=0, stage="gonggai-webhook",
    ...                       limits=ServerLimits(max_body_bytes=65536), on_answer=count)
    >>> threading.Thread(target=server.serve_forever, daemon=True).start()
    >>> server.shutdown()
"""

import io
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import structlog

from connectors.runtime.interface import Output
from routing.privacy import mask_text

log = structlog.get_logger(__name__)

_MAX_REQUEST_LINE: Final = 65_536
_CONTENT_LENGTH: Final = re.compile(r"[0-9]{1,18}")
_BUSY_RETRY_AFTER_S: Final = "1"


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
class ServerLimits:
    """What one client may ask of the server.

    Args:
        max_body_bytes: Larger bodies are refused with 413 before they are read.
        read_timeout_s: The whole request (line, headers, body) must arrive within this time.
        max_concurrent_requests: Connections served at once; more are answered 503 straight away.
    """

    max_body_bytes: int
    read_timeout_s: float = 10.0
    max_concurrent_requests: int = 64


class _Refused(Exception):
    """The request cannot be handed to ``respond``: answer ``response`` and close the connection."""

    def __init__(self, response: IntakeResponse) -> None:
        super().__init__(response.body.get("error"))
        self.response = response


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, every read bounded by what is left of the current request's time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline = math.inf
        self.received = 0

    def start(self, timeout_s: float) -> None:
        """Give the next request ``timeout_s`` to arrive."""
        self._deadline = time.monotonic() + timeout_s
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            message = "the request did not arrive in time"
            raise TimeoutError(message)
        self._sock.settimeout(remaining)
        count = self._sock.recv_into(buffer)
        self.received += count
        return count


def render(response: IntakeResponse) -> bytes:
    """The JSON body of ``response``; text that is not valid Unicode is escaped rather than fail the answer."""
    try:
        return json.dumps(response.body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(response.body).encode()


class IntakeServer:
    """Serves ``respond`` over HTTP/1.1 until :meth:`shutdown`.

    Args:
        respond: Answers one request; must not raise (an exception is logged and answered 503).
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        stage: Names the server in logs.
        limits: Body size, read deadline and concurrency.
        on_answer: Told the status of every answer sent (metrics).
    """

    def __init__(
        self,
        respond: Callable[[IntakeRequest], IntakeResponse],
        *,
        host: str,
        port: int,
        stage: str,
        limits: ServerLimits,
        on_answer: Callable[[IntakeResponse], None],
    ) -> None:
        handler = _handler_class(respond, stage=stage, limits=limits, on_answer=on_answer)
        self._server = _BoundedServer((host, port), handler, stage=stage, limits=limits, on_answer=on_answer)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`."""
        self._server.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Stop accepting, and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()


class _BoundedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 refuses connections when many senders burst at once

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        stage: str,
        limits: ServerLimits,
        on_answer: Callable[[IntakeResponse], None],
    ) -> None:
        super().__init__(address, handler)
        self._stage = stage
        self._slots = threading.BoundedSemaphore(limits.max_concurrent_requests)
        self._on_answer = on_answer

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log what escaped a request thread through structlog; socketserver would print a traceback."""
        log.exception("request_crashed", stage=self._stage)

    def _refuse_busy(self, request: socket.socket) -> None:
        response = IntakeResponse(
            503,
            {"error": "too many concurrent requests; retry shortly"},
            headers=(("Retry-After", _BUSY_RETRY_AFTER_S),),
        )
        body = render(response)
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {_BUSY_RETRY_AFTER_S}\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)  # from the accepting thread: never wait long on one client
            request.sendall(head.encode() + body)
        except OSError:
            log.info("client_disconnected", stage=self._stage)
        finally:
            self.shutdown_request(request)
        self._on_answer(response)
        log.warning("request_refused_busy", stage=self._stage)


def _handler_class(
    respond: Callable[[IntakeRequest], IntakeResponse],
    *,
    stage: str,
    limits: ServerLimits,
    on_answer: Callable[[IntakeResponse], None],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Errors found before the version is parsed must still carry a status line (0.9 answers have none).
        default_request_version = "HTTP/1.0"

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # replaced by a reader that enforces the request deadline; the socket stays open
            self._reader = _DeadlineReader(self.connection)
            self.rfile = io.BufferedReader(self._reader)

        def handle_one_request(self) -> None:
            self._reader.start(limits.read_timeout_s)
            self.close_connection = True
            # http.server sets these while parsing; a timeout before then must still be answerable
            self.command, self.requestline, self.request_version = "", "", self.default_request_version
            try:
                self._handle_one()
            except TimeoutError:
                self.close_connection = True
                if self._reader.received:  # an idle keep-alive connection is just closed
                    self._send(reject(408, f"the request did not arrive within {limits.read_timeout_s:g} s"))
            except ConnectionError:
                self.close_connection = True
                log.info("client_disconnected", stage=stage)

        def _handle_one(self) -> None:
            self.raw_requestline = self.rfile.readline(_MAX_REQUEST_LINE + 1)
            if not self.raw_requestline:
                return  # the client closed an idle connection
            if len(self.raw_requestline) > _MAX_REQUEST_LINE:
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "request line longer than 64 KiB")
            elif self.parse_request():
                self._serve()

        def parse_request(self) -> bool:
            if not self.raw_requestline.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, "empty request line")
                return False
            if not super().parse_request():
                return False
            if not self.request_version.startswith("HTTP/1."):
                self.send_error(HTTPStatus.BAD_REQUEST, f"{self.request_version} is not supported; use HTTP/1.1")
                return False
            return True

        def handle_expect_100(self) -> bool:
            # Ask for the body only when it will be read; otherwise the refusal comes straight away.
            try:
                self._declared_length()
            except _Refused:
                return True
            return super().handle_expect_100()

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own refusals (bad request line, header, version), as JSON; a 505 for HTTP/2.0
            # is the sender's to fix, so it is a 400 like the rest.
            status = code if 400 <= code < 500 else 400  # noqa: PLR2004 - HTTP classes
            reason = message or HTTPStatus(code).phrase
            self.close_connection = True
            self._send(reject(status, reason))

        def _serve(self) -> None:
            try:
                request = self._read()
            except _Refused as refused:
                self.close_connection = True
                self._send(refused.response)
                return
            try:
                response = respond(request)
            except Exception:  # a bug must still get an answer, and its traceback a JSON log line
                log.exception("request_failed", stage=stage)
                response = IntakeResponse(
                    503, {"error": "internal error; nothing was stored"}, headers=(("Retry-After", "5"),)
                )
            self._send(response)

        def _read(self) -> IntakeRequest:
            size = self._declared_length()
            try:
                url = urlsplit(self.path)
            except ValueError as exc:
                raise _Refused(reject(400, f"request target is not a URL: {exc}")) from exc
            body = self.rfile.read(size) if size else b""
            if len(body) < size:  # the client stopped sending: say why, if it still listens
                raise _Refused(reject(400, f"the body ended after {len(body)} of its {size} bytes"))
            return IntakeRequest(
                method=self.command,
                path=url.path,
                query=dict(parse_qsl(url.query)),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )

        def _declared_length(self) -> int:
            if "Transfer-Encoding" in self.headers:
                raise _Refused(reject(411, "send the body with Content-Length; chunked bodies are not accepted"))
            lengths = {value.strip() for value in self.headers.get_all("Content-Length", [])}
            if not lengths:
                return 0
            length = lengths.pop()
            if lengths or _CONTENT_LENGTH.fullmatch(length) is None:
                raise _Refused(reject(400, "Content-Length must be one non-negative integer"))
            size = int(length)
            if size > limits.max_body_bytes:
                reason = f"body of {size} bytes exceeds the limit of {limits.max_body_bytes}"
                raise _Refused(reject(413, reason))
            return size

        def _send(self, response: IntakeResponse) -> None:
            on_answer(response)
            if response.status >= 400:  # noqa: PLR2004 - HTTP classes
                reason = mask_text(str(response.body.get("error", "")))
                log.warning("request_rejected", stage=stage, status=response.status, reason=reason)
            body = render(response)
            if not self.request_version.startswith("HTTP/1."):
                self.request_version = self.default_request_version  # an HTTP/0.9 answer would have no status line
            try:
                self.connection.settimeout(limits.read_timeout_s)
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except OSError:  # the client went away or stopped reading: nobody is left to answer
                self.close_connection = True
                log.info("client_disconnected", stage=stage)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            """Requests are logged as events by the intake, not as text lines by http.server."""

    return Handler
