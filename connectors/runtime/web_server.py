"""Serving an ASGI application with uvicorn in a thread, bounded, every answer JSON, every event through structlog.

:class:`WebServer` binds its port when it is made (so ``port=0`` is known at once), serves on its own event
loop in a daemon thread from :meth:`start`, and drains in-flight requests on :meth:`stop` (uvicorn's graceful
shutdown, at most ``graceful_s``). uvicorn's h11 protocol is kept, with what it lacks for a public intake:

* more than ``max_connections`` connections at once → 503 with ``Retry-After``, answered as the connection is
  accepted (uvicorn's ``limit_concurrency`` stays set above it, a backstop for requests still running after
  their client left);
* a request, headers and body included, that does not arrive within ``read_timeout_s`` → 408 and close (the
  deadline covers the whole request, so a sender trickling bytes cannot hold the connection longer); a new
  connection that sends nothing is closed after ``read_timeout_s``, an idle keep-alive one after
  ``keep_alive_s``;
* a malformed request line or header, a bad ``Content-Length``, a connection that ends before its request
  did → 400; all of them in JSON, where uvicorn answers in text.

The application itself is wrapped by :func:`connectors.runtime.web_app.shielded`: no traceback leaves it.

Example:
    >>> server = WebServer(build_app([health_router(...)]), host="127.0.0.1", port=0, name="health",
    ...                    limits=WebLimits(read_timeout_s=10))
    >>> server.start()
    >>> server.stop()
"""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from connectors.runtime.web_app import shielded
from routing.privacy import mask_text

log = structlog.get_logger(__name__)

_BUSY_RETRY_AFTER_S: Final = "1"
_START_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, kw_only=True)
class WebLimits:
    """What clients may ask of one server.

    Args:
        read_timeout_s: A whole request (line, headers, body) must arrive within this time, else 408.
        max_connections: Connections served at once; more are answered 503 with ``Retry-After``.
        backlog: Connections the kernel queues before they are accepted.
        keep_alive_s: An idle keep-alive connection is closed after this time.
        graceful_s: At stop, in-flight requests get this long to finish.
    """

    read_timeout_s: float = 10.0
    max_connections: int = 64
    backlog: int = 128
    keep_alive_s: int = 5
    graceful_s: float = 5.0


AnswerHook = Callable[[int], None]


def _raw_answer(status: int, reason: str, *, retry_after: str | None = None) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, for refusals made below the application."""
    body = json.dumps({"error": reason}).encode()
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _BoundedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap, a per-request deadline and JSON refusals."""

    name: str = ""
    limits: WebLimits = WebLimits()
    on_answer: AnswerHook = staticmethod(lambda _status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._peer_closed = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Answered from the event loop at once: no request is read, so the count of requests stays bounded.
            self._refused = True
            self.transport = transport
            self._refuse(503, "too many concurrent requests; retry shortly", retry_after=_BUSY_RETRY_AFTER_S)
            log.warning("request_refused_busy", server=self.name)
            return
        super().connection_made(transport)
        # A connection that never sends a byte must not hold its slot either: it is closed at the deadline.
        self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        super().data_received(data)
        self._follow_deadline()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's contract: True keeps it open
        if self._refused:
            return None
        if self._request_read():  # the sender half-closed after its request: answer it, then close
            self._peer_closed = True
            return True
        if self._partial():
            self._abandon(400, self._ended_early())
        return None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._peer_closed and not self.transport.is_closing():
            self.transport.close()
        self._follow_deadline()

    def send_400_response(self, msg: str) -> None:
        self._abandon(400, "malformed HTTP request: check the request line, the headers and Content-Length")

    def _request_read(self) -> bool:
        """A request is fully read and its answer is not complete yet."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body

    def _partial(self) -> bool:
        """Part of a request has arrived, and the rest is awaited."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return cycle.more_body
        return bool(self.conn.trailing_data[0])

    def _follow_deadline(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._cancel_deadline()
        elif self._partial():
            if self._deadline is None:
                self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._timed_out)
        else:
            self._cancel_deadline()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self._partial():
            self._abandon(408, f"the request did not arrive within {self.limits.read_timeout_s:g} s")
        elif self.cycle is None and not self.transport.is_closing():  # connected, and silent ever since
            self.transport.close()

    def _ended_early(self) -> str:
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            return "the connection ended before the body did"
        return "the connection ended before the request was complete"

    def _abandon(self, status: int, reason: str) -> None:
        """Answer a request that will never reach (or finish reaching) the application, and close."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self.transport.close()  # the application is answering: nothing else can be said
                return
            cycle.disconnected = True  # the application, if reading, sees the client gone
            cycle.message_event.set()
        self._refuse(status, reason)

    def _refuse(self, status: int, reason: str, *, retry_after: str | None = None) -> None:
        self._cancel_deadline()
        try:
            self.conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:
            pass  # h11 is mid-request: the raw answer below closes the connection anyway
        self.transport.write(_raw_answer(status, reason, retry_after=retry_after))
        self.transport.close()
        self.on_answer(status)
        if status != 503:  # noqa: PLR2004 - busy refusals have their own event
            log.warning("request_rejected", server=self.name, status=status, reason=mask_text(reason))


class WebServer:
    """One port, one ASGI application, served by uvicorn in a thread.

    Args:
        app: The application (see :func:`connectors.runtime.web_app.build_app`).
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        name: Names the server in logs and its thread.
        limits: Connections, deadlines and the graceful-stop wait.
        on_answer: Told the status of every refusal made below the application (metrics).
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        name: str,
        limits: WebLimits | None = None,
        on_answer: AnswerHook | None = None,
    ) -> None:
        self.name = name
        limits = limits or WebLimits()
        protocol = type(
            "BoundedProtocol",
            (_BoundedProtocol,),
            {"name": name, "limits": limits, "on_answer": staticmethod(on_answer or (lambda _status: None))},
        )
        self._config = uvicorn.Config(
            shielded(app, name=name),
            http=protocol,
            lifespan="off",
            loop="asyncio",
            log_config=None,  # uvicorn's records reach structlog through the root handler (connectors.runtime.logs)
            access_log=False,  # the application logs what matters about a request as events
            limit_concurrency=limits.max_connections * 2,
            backlog=limits.backlog,
            timeout_keep_alive=limits.keep_alive_s,
            timeout_graceful_shutdown=max(1, round(limits.graceful_s)),
            server_header=False,
        )
        self._server = uvicorn.Server(self._config)
        self._socket = socket.create_server((host, port), backlog=limits.backlog, reuse_port=False)
        self._thread = threading.Thread(target=self._serve, name=f"http-{name}", daemon=True)
        self._graceful_s = limits.graceful_s

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        """Begin serving; returns once the server accepts connections (or failed to start)."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (at most ``graceful_s``), and free the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(self._graceful_s + 5.0)
        self._socket.close()

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException:  # the server thread must not die with a traceback on stderr
            log.exception("http_server_failed", server=self.name)
