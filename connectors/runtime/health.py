"""The HTTP side of observability: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while every check of ``live`` passes; ``/readyz`` while every check of ``ready``
does (the application decides what they mean: see :mod:`connectors.app`). Both bodies are JSON: ``ok``, the
checks, and the application's ``detail`` (each stage's state, the Kafka connection, the causes of a 503).
"""

import json
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)

Checks = Callable[[], Mapping[str, bool]]
Detail = Callable[[], Mapping[str, Any]]


class HealthServer:
    """Serves metrics and health in a daemon thread.

    Args:
        registry: The metrics to expose.
        live: Returns each stage's liveness.
        ready: Returns each stage's readiness.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        detail: More to say in both bodies (``detail``), such as why a check fails.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        live: Checks,
        ready: Checks,
        host: str,
        port: int,
        *,
        detail: Detail | None = None,
    ) -> None:
        handler = _handler(registry, live, ready, detail or dict)
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Begin serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, live: Checks, ready: Checks, detail: Detail) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif self.path in ("/healthz", "/readyz"):
                checks = dict((live if self.path == "/healthz" else ready)())
                ok = bool(checks) and all(checks.values())
                body = json.dumps({"ok": ok, "stages": checks, "detail": dict(detail())}).encode()
                self._send(200 if ok else 503, "application/json", body)
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            """Scrapes every few seconds would drown the logs; stay quiet."""

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # The standard library prints a traceback to stderr (a scraper that hung up mid-answer, say); the log
        # must stay one JSON object per line.
        error = sys.exc_info()[1]
        log.warning("health_request_failed", client=client_address[0], error=type(error).__name__)
