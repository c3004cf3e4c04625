"""The HTTP intakes on real sockets: every request answered in JSON, promptly, whatever it holds or does."""

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import MessageSizeTooLargeError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.aishandong.gateway import GATEWAY_PATH, build_gateway
from connectors.aishandong.settings import AishandongGatewaySettings
from connectors.gonggai.webhook import WEBHOOK_PATH, build_webhook
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import HttpIntake, IntakeRequest, IntakeResponse
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from connectors.status.callback import ROUTE as CALLBACK_ROUTE
from simulators.approval.generator import EventGenerator
from simulators.approval.push import sign
from tests.support import wait_until
from tests.unit.connectors.intake_support import (
    Future,
    Producer,
    assert_json_lines,
    callback_intake,
    exchange,
    http_request,
    json_logs,
    parse_answer,
    serving,
)

MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
SECRET = "intake-secret-0123456789"


def webhook(producer: Producer, stop: threading.Event, **limits: Any) -> HttpIntake:
    settings = GonggaiWebhookSettings(
        secret=SecretStr(SECRET), port=0, mapping=MAPPINGS / "default.yaml", max_body_bytes=4 << 20, **limits
    )
    return build_webhook(
        settings,
        kafka=KafkaSettings(),
        raw_topic="raw",
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )


def gateway(producer: Producer, stop: threading.Event) -> HttpIntake:
    return build_gateway(
        AishandongGatewaySettings(secret=SecretStr(SECRET), port=0),
        kafka=KafkaSettings(),
        topic="applications",
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )


def callbacks(producer: Producer, stop: threading.Event, **limits: Any) -> HttpIntake:
    return callback_intake(producer, stop, token="water-token", **limits)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """JSON logging into a buffer, as in production."""
    return json_logs(monkeypatch)


def signed_post(path: str, body: bytes, *, method: str = "POST") -> bytes:
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Ubridge-Timestamp": str(stamp),
        "X-Ubridge-Signature": sign(SECRET, stamp, body),
    }
    return http_request(method, path, headers, body)


def callback_post(body: bytes, *, task: str = "t-1") -> bytes:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer water-token"}
    return http_request("POST", f"/v1/tasks/{task}/status", headers, body)


def answer_of(port: int, raw: bytes, **options: Any) -> Any:
    answer = parse_answer(exchange(port, raw, **options))
    assert answer is not None, "no HTTP answer"
    assert answer.headers["content-type"].startswith("application/json")
    return answer


def event(**changes: Any) -> dict[str, Any]:
    return {**EventGenerator(seed=3).generate(1)[0], **changes}


@pytest.fixture
def running_webhook() -> Iterator[tuple[HttpIntake, Producer]]:
    """The webhook on a free port with a producer that acknowledges at once."""
    producer, stop = Producer(), threading.Event()
    intake = webhook(producer, stop, read_timeout_s=0.5)
    with serving(intake.run, stop):
        yield intake, producer


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_other_methods_get_405_in_json_with_allow(running_webhook: tuple[HttpIntake, Producer], method: str) -> None:
    """A method other than GET/POST gets 405 with Allow and a JSON reason, not http.server's HTML 501."""
    intake, _ = running_webhook
    answer = answer_of(intake.port, signed_post(WEBHOOK_PATH, b"{}", method=method))
    assert (answer.status, answer.headers["allow"]) == (405, "POST")
    assert "use POST" in answer.json()["error"]


def test_head_gets_headers_without_a_body(running_webhook: tuple[HttpIntake, Producer]) -> None:
    """A HEAD request is answered 405 with a JSON content type and no body bytes."""
    intake, _ = running_webhook
    raw = exchange(intake.port, http_request("HEAD", WEBHOOK_PATH, {}, b""))
    answer = parse_answer(raw, head_only=True)
    assert answer is not None and answer.status == 405
    assert raw.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"POST /v1/project-events HTTP/2.0\r\n\r\n",
        b"POST /v1/project-events HTTP/x.y\r\n\r\n",
        b"GET /\r\n\r\n",
        b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
        b"POST /v1/project-events HTTP/1.1\r\n\r\n",
        b"GET " + b"/a" * 40_000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=["empty", "garbage", "http2", "bad-version", "http09", "bad-header", "negative-length", "two-lengths",
         "short-body", "no-host", "long-line"],
)  # fmt: skip
def test_malformed_requests_get_4xx_in_json(running_webhook: tuple[HttpIntake, Producer], raw: bytes) -> None:
    """Malformed request lines, versions, headers and lengths get a 4xx JSON answer, never HTML or silence."""
    intake, producer = running_webhook
    answer = answer_of(intake.port, raw)
    assert 400 <= answer.status < 500
    assert answer.json()["error"]
    assert producer.sent == []


def test_chunked_body_is_read_and_bounded_while_it_streams() -> None:
    """A chunked body is accepted (HTTP/1.1), and refused with 413 as soon as it streams past max_body_bytes."""
    producer, stop = Producer(), threading.Event()
    intake = callbacks(producer, stop)
    report = b'{"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}'
    head = (
        b"POST /v1/tasks/t-1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer water-token\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"
    with serving(intake.run, stop):
        small = answer_of(intake.port, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(report), report))
        began = time.monotonic()
        big = answer_of(intake.port, head + chunk * 5, close_write=False, timeout_s=5)  # the end never comes
        elapsed = time.monotonic() - began
    assert small.status == 202
    assert (big.status, big.json()["error"]) == (413, "body exceeds the limit of 65536")
    assert elapsed < 1.0  # refused while streaming, not at the read deadline
    assert len(producer.sent) == 1


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"xmmc": "\\ud800"}', 422, "lone surrogate"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "nests deeper"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, 400, "nests deeper"),
        (b'{"ztze": ' + b"9" * 5000 + b"}", 422, "out of range"),
        (b'{"ztze": 1e999}', 422, "out of range"),
        (b'{"ztze": NaN}', 400, "not a JSON number"),
    ],
    ids=["surrogate", "deep", "nested-100", "huge-int", "huge-float", "nan"],
)
def test_odd_json_gets_4xx(running_webhook: tuple[HttpIntake, Producer], body: bytes, status: int, reason: str) -> None:
    """Lone surrogates, deep nesting, huge numbers and NaN get 400/422, not a dropped connection."""
    intake, producer = running_webhook
    answer = answer_of(intake.port, signed_post(WEBHOOK_PATH, body))
    assert answer.status == status
    assert reason in answer.json()["error"]
    assert producer.sent == []


def test_lone_surrogate_in_an_event_field_is_refused(running_webhook: tuple[HttpIntake, Producer]) -> None:
    """A signed event whose project name is a lone surrogate is 422 naming the field (it used to crash)."""
    intake, _ = running_webhook
    body = json.dumps(event(xmmc="\ud800 工程")).encode()
    answer = answer_of(intake.port, signed_post(WEBHOOK_PATH, body))
    assert (answer.status, answer.json()["field"]) == (422, "xmmc")


def test_year_one_application_is_422() -> None:
    """An application filed in year 0001 is 422 at the gateway (the conversion to UTC used to crash)."""
    producer, stop = Producer(), threading.Event()
    intake = gateway(producer, stop)
    app = {"sqbh": "AS1", "sqlx": "报装", "fwlx": ["供水"], "sqrlx": "个人", "sqrxm": "张伟",
           "sfzhm": "11010519491231002X", "lxdh": "13912345678", "xzqhdm": "370602", "dz": "芝罘区幸福南路18号",
           "sqsj": "0001-01-01 00:00:00"}  # fmt: skip
    with serving(intake.run, stop):
        answer = answer_of(intake.port, signed_post(GATEWAY_PATH, json.dumps(app, ensure_ascii=False).encode()))
    assert answer.status == 422
    assert "0001" in answer.json()["error"] or "out of range" in answer.json()["error"]


def test_status_callback_with_a_surrogate_or_deep_body_is_4xx() -> None:
    """The status callbacks refuse a lone surrogate (422) and deep nesting (400) instead of crashing."""
    producer, stop = Producer(), threading.Event()
    intake = callbacks(producer, stop)
    with serving(intake.run, stop):
        surrogate = b'{"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00", "detail": "\\udc00"}'
        assert answer_of(intake.port, callback_post(surrogate)).status == 422
        assert answer_of(intake.port, callback_post(b"[" * 3000 + b"]" * 3000)).status == 400
    assert producer.sent == []


def test_record_too_large_for_kafka_is_413_not_503() -> None:
    """A record over Kafka's size limit is 413 (non-retriable): refused before any record is sent."""
    producer, stop = Producer(), threading.Event()
    intake = webhook(producer, stop)
    big = json.dumps({"events": [event(), event(xmmc="工程" * 400_000)]}, ensure_ascii=False).encode()
    with serving(intake.run, stop):
        answer = answer_of(intake.port, signed_post(WEBHOOK_PATH, big))
    assert answer.status == 413
    assert "larger than Kafka takes" in answer.json()["error"]
    assert producer.sent == []


def test_broker_refusing_a_record_as_too_large_is_413() -> None:
    """MessageSizeTooLargeError from the producer or the broker is 413, and the signature is released."""
    producer, stop = Producer(lambda: Future(MessageSizeTooLargeError("too large"))), threading.Event()
    intake = webhook(producer, stop)
    request = signed_post(WEBHOOK_PATH, json.dumps(event()).encode())
    with serving(intake.run, stop):
        first = answer_of(intake.port, request)
        producer.behaviour = Future
        second = answer_of(intake.port, request)
    assert (first.status, second.status) == (413, 202)
    assert "Retry-After".lower() not in first.headers


def test_unacknowledged_records_get_503_within_the_kafka_timeout() -> None:
    """When Kafka never acknowledges, the answer is 503 + Retry-After within kafka_timeout_s, not 15 s."""
    producer, stop = Producer(lambda: Future(never=True)), threading.Event()
    intake = webhook(producer, stop, kafka_timeout_s=1.0)
    with serving(intake.run, stop):
        began = time.monotonic()
        answer = answer_of(intake.port, signed_post(WEBHOOK_PATH, json.dumps(event()).encode()))
        elapsed = time.monotonic() - began
    assert (answer.status, answer.headers["retry-after"]) == (503, "5")
    assert elapsed < 2.0


def test_stalled_body_gets_408_within_the_read_timeout(running_webhook: tuple[HttpIntake, Producer]) -> None:
    """Headers promising 100 bytes followed by silence get 408 and a closed connection after read_timeout_s."""
    intake, _ = running_webhook
    raw = (
        b"POST /v1/project-events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    began = time.monotonic()
    answer = answer_of(intake.port, raw, close_write=False, timeout_s=5)
    assert answer.status == 408
    assert time.monotonic() - began < 2.0


def test_a_trickling_client_cannot_extend_the_deadline(running_webhook: tuple[HttpIntake, Producer]) -> None:
    """A byte every 0.1 s does not keep the request alive past read_timeout_s: the deadline is per request."""
    intake, _ = running_webhook
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/project-events HTTP/1.1\r\n")
        try:
            for _ in range(40):
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.1)
        except OSError:
            pass  # the server gave up on us, as it should
        answer = parse_answer(sock.recv(65536))
    assert answer is not None and answer.status == 408
    assert time.monotonic() - began < 2.0


def test_connections_over_the_limit_get_503_with_retry_after() -> None:
    """With max_concurrent_requests busy, another connection gets 503 + Retry-After at once, in JSON."""
    producer, stop = Producer(), threading.Event()
    intake = callbacks(producer, stop, max_concurrent_requests=2, read_timeout_s=3)
    with serving(intake.run, stop):
        held = [socket.create_connection(("127.0.0.1", intake.port)) for _ in range(2)]
        try:
            for sock in held:
                sock.sendall(b"POST /v1/tasks/t-1/status HTTP/1.1\r\n")
            time.sleep(0.2)
            answer = answer_of(intake.port, b"GET /openapi.json HTTP/1.1\r\n\r\n")
        finally:
            for sock in held:
                sock.close()
    assert (answer.status, answer.headers["retry-after"]) == (503, "1")
    assert "too many concurrent requests" in answer.json()["error"]


def test_disconnects_and_garbage_leave_only_json_log_lines(
    logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """Clients that reset, vanish mid-answer or send garbage leave JSON log lines only, on no other stream."""
    producer, stop = Producer(lambda: Future(never=True)), threading.Event()
    intake = webhook(producer, stop, kafka_timeout_s=0.3, read_timeout_s=0.5)
    with serving(intake.run, stop):
        request = signed_post(WEBHOOK_PATH, json.dumps(event()).encode())
        for _ in range(3):  # the answer comes after the client reset the connection: a broken pipe
            sock = socket.create_connection(("127.0.0.1", intake.port))
            sock.sendall(request)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        exchange(intake.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)))
        exchange(intake.port, b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", close_write=True)
        time.sleep(1.0)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert_json_lines(logs.getvalue())
    assert "request_rejected" in logs.getvalue()


class _Broken:
    """A handler with a bug: every request raises."""

    stage = "broken"
    routes = (CALLBACK_ROUTE,)

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        message = "a bug with a phone 13912345678 in its message"
        raise RuntimeError(message)


def test_a_bug_is_a_json_500_with_an_error_id_and_one_log_event(
    logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler that raises: 500 with an error id and no traceback to the client; the log has one JSON event."""
    producer, stop = Producer(), threading.Event()
    intake = HttpIntake(
        _Broken(), host="127.0.0.1", port=0, producer=producer,  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()), stop=stop, max_body_bytes=65536,
    )  # fmt: skip
    with serving(intake.run, stop):
        answer = answer_of(intake.port, callback_post(b"{}"))
    body = answer.json()
    assert (answer.status, body["error"], len(body["error_id"])) == (500, "internal error", 32)
    assert b"Traceback" not in answer.body and b"bug" not in answer.body
    assert capsys.readouterr() == ("", "")
    assert_json_lines(logs.getvalue())
    [event] = [json.loads(line) for line in logs.getvalue().splitlines() if "request_crashed" in line]
    assert event["error_id"] == body["error_id"]
    assert "RuntimeError" in event["exception"] and "13912345678" not in event["exception"]
    assert producer.sent == []


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent() -> None:
    """Content-Length over max_body_bytes is answered 413 at once, without waiting for the body, and closed."""
    producer, stop = Producer(), threading.Event()
    intake = callbacks(producer, stop)
    head = (
        b"POST /v1/tasks/t-1/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer water-token\r\nContent-Length: 10000000\r\n\r\n"
    )
    with serving(intake.run, stop):
        began = time.monotonic()
        raw = exchange(intake.port, head, close_write=False, timeout_s=5)  # the body never comes
        elapsed = time.monotonic() - began
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 413
    assert (answer.json()["error"], answer.headers["connection"]) == (
        "body of 10000000 bytes exceeds the limit of 65536",
        "close",
    )
    assert elapsed < 1.0
    assert producer.sent == []


def test_stopping_lets_the_request_in_flight_finish() -> None:
    """Stop while a report waits for Kafka's acknowledgement: it still gets its 202, then the port is closed."""

    class Slow(Future):
        def get(self, timeout: float | None = None) -> None:
            time.sleep(1.0)

    producer, stop = Producer(Slow), threading.Event()
    intake = callbacks(producer, stop)
    body = b'{"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}'
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    wait_until(lambda: intake.state.ready, timeout_s=10, what="the intake listening")
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(answer_of(intake.port, callback_post(body))))
    sender.start()
    time.sleep(0.3)  # the request is in flight, waiting for the acknowledgement
    stop.set()
    sender.join(timeout=10)
    thread.join(timeout=10)
    assert [answer.status for answer in answers] == [202]
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", intake.port), timeout=1).close()


def test_a_silent_connection_is_closed_at_the_read_deadline(running_webhook: tuple[HttpIntake, Producer]) -> None:
    """A connection that never sends a byte is closed after read_timeout_s without an answer: no slot is held."""
    intake, _ = running_webhook
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
        assert sock.recv(100) == b""
    assert 0.4 <= time.monotonic() - began < 2.0
