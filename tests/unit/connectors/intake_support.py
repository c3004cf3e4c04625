"""Helpers for the HTTP intake tests: fake Kafka producers, raw-socket HTTP, a running intake."""

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from connectors.runtime import http_intake, replay_log, web_app, web_server
from connectors.runtime.http_intake import HttpIntake, IntakeLimits
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.status.callback import StatusCallbackHandler


class Future:
    """A send's acknowledgement: at once, an error, or never (get waits out its timeout like kafka-python)."""

    def __init__(self, error: Exception | None = None, *, never: bool = False) -> None:
        self.error = error
        self.never = never

    def get(self, timeout: float | None = None) -> None:
        if self.never:
            time.sleep(timeout or 0)
            message = "Timeout waiting for future"
            raise KafkaTimeoutError(message)
        if self.error is not None:
            raise self.error


class Producer:
    """Stands in for KafkaProducer; ``behaviour`` decides each send's future (or raises, as send may)."""

    def __init__(self, behaviour: Callable[[], Future] = Future) -> None:
        self.behaviour = behaviour
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.lock = threading.Lock()

    def send(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
    ) -> Future:
        future = self.behaviour()
        with self.lock:
            self.sent.append((topic, key, value))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Nothing to close."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def json_logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Configure JSON logging into a buffer, and point the intake modules' loggers at it.

    configure_logging caches each logger on first use, so a module logger used by an earlier test would
    still write to that test's stream: the intake modules get fresh ones.
    """
    buffer = io.StringIO()
    configure_logging(json=True, level="debug", stream=buffer)
    for module in (web_server, web_app, http_intake, replay_log):
        monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
    return buffer


def assert_json_lines(text: str) -> None:
    """Every line of ``text`` is one JSON object."""
    for line in text.splitlines():
        assert isinstance(json.loads(line), dict), line


def parse_answer(raw: bytes, *, head_only: bool = False) -> Answer | None:
    """The first final HTTP response in ``raw``, or None when there is none (a dropped connection)."""
    while raw.startswith(b"HTTP/1.1 100 "):  # an interim answer to Expect: 100-continue
        raw = raw.partition(b"\r\n\r\n")[2]
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    return Answer(int(parts[1]), headers, rest[:length])


def exchange(port: int, raw: bytes, *, timeout_s: float = 10.0, close_write: bool = True) -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it (or ``timeout_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(raw)
            if close_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything (413)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def http_request(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if "Content-Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


@contextmanager
def serving(run: Callable[[], None], stop: threading.Event) -> Iterator[None]:
    """Run an intake's ``run`` in a thread for the block, then stop it and wait for it."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def callback_intake(producer: Producer, stop: threading.Event, *, token: str, **limits: Any) -> HttpIntake:
    """The status-callback intake on a free port, utility yantai-water calling with ``token``."""
    return HttpIntake(
        StatusCallbackHandler(tokens={token: "yantai-water"}, topic="status"),
        host="127.0.0.1",
        port=0,
        producer=producer,  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        max_body_bytes=65536,
        limits=IntakeLimits(**limits),
    )
