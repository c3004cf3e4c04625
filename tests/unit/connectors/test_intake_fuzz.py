"""Fuzzing the three HTTP intakes over real sockets: every mutated request gets a JSON answer, never a 5xx.

Each intake gets ``UBRIDGE_FUZZ_REQUESTS`` requests (2,000 by default; ``make fuzz`` sends 50,000): valid
signed requests mutated at every layer (request line, method, path, version, headers, lengths, charset,
signature, JSON values such as lone surrogates, deep nesting, huge numbers and year-0001 dates, raw bytes).
Kafka is a fake that always acknowledges, so any 5xx, 503 included, is a bug of the intake.
"""

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.aishandong.gateway import GATEWAY_PATH, build_gateway
from connectors.aishandong.settings import AishandongGatewaySettings
from connectors.gonggai.webhook import WEBHOOK_PATH, build_webhook
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import HttpIntake
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from simulators.approval.generator import EventGenerator
from simulators.approval.push import sign
from tests.unit.connectors.intake_support import (
    Producer,
    assert_json_lines,
    callback_intake,
    exchange,
    json_logs,
    parse_answer,
)

REQUESTS = int(os.environ.get("UBRIDGE_FUZZ_REQUESTS", "2000"))
MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
SECRET = "fuzz-secret-0123456789"
TOKEN = "fuzz-callback-token"
LIMITS = {"read_timeout_s": 2.0, "kafka_timeout_s": 1.0}


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    payload: dict[str, Any]
    signed: bool
    build: Callable[[Producer, threading.Event], HttpIntake]


def _webhook(producer: Producer, stop: threading.Event) -> HttpIntake:
    settings = GonggaiWebhookSettings(
        secret=SecretStr(SECRET), port=0, mapping=MAPPINGS / "default.yaml", max_body_bytes=65536, **LIMITS
    )
    metrics = Metrics(CollectorRegistry())
    return build_webhook(
        settings,
        kafka=KafkaSettings(),
        raw_topic="raw",
        metrics=metrics,
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )


def _gateway(producer: Producer, stop: threading.Event) -> HttpIntake:
    settings = AishandongGatewaySettings(secret=SecretStr(SECRET), port=0, max_body_bytes=65536, **LIMITS)
    metrics = Metrics(CollectorRegistry())
    return build_gateway(
        settings,
        kafka=KafkaSettings(),
        topic="apps",
        metrics=metrics,
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )


def _callbacks(producer: Producer, stop: threading.Event) -> HttpIntake:
    return callback_intake(producer, stop, token=TOKEN, **LIMITS)


APPLICATION = {
    "sqbh": "AS2026112500001", "sqlx": "报装", "fwlx": ["供水", "供气"], "sqrlx": "个人", "sqrxm": "张伟",
    "sfzhm": "11010519491231002X", "lxdh": "13912345678", "xzqhdm": "370602", "dz": "芝罘区幸福南路18号",
    "sqsj": "2026-11-25 09:00:00",
}  # fmt: skip
REPORT = {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00", "pipe_length_m": 42.5}
TARGETS = [
    Target("gonggai-webhook", WEBHOOK_PATH, EventGenerator(seed=9).generate(1)[0], True, _webhook),
    Target("aishandong-gateway", GATEWAY_PATH, APPLICATION, True, _gateway),
    Target("status-callbacks", "/v1/tasks/t-1/status", REPORT, False, _callbacks),
]

_NASTY = st.sampled_from(
    [
        "\ud800", "a\udfffb", "\udc80\ud800", "", " ", "\x00", "\u202e", "😀" * 50, "工" * 2000,
        "0001-01-01 00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "9999-12-31 23:59:59",
        "2026-02-30 10:00:00", "1970-01-01T00:00:00Z", "20261125103100", 2**63, -(2**63) - 1, 2**64, 10**30,
        -1, 0, 1.5e308, 5e-324, -0.0, True, None, [], {}, [[[[[]]]]],
    ]
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | _NASTY,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_RAW_NUMBERS = st.sampled_from([b"9" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity", b"1" + b"0" * 25])
_METHODS = st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW", "P0ST"])
_VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.x", "HTTX/1.1", ""])
_CHARSETS = st.sampled_from(["gbk", "GB18030", "gb2312", "latin-1", "utf-16", "big5", "x-nonsense", "utf-8"])
_HEADER_BYTES = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_ODD_HEADERS = st.sampled_from(
    ["Expect: 100-continue", "Transfer-Encoding: chunked", "Connection: close", "Connection: keep-alive",
     "Content-Length: abc", "Content-Length: 99999999999999999999", "no-colon", ": empty-name",
     " folded continuation", "X-Long: " + "a" * 70_000, "Content-Length: 1", "Content-Length: +5"]
)  # fmt: skip
_PATHS = st.sampled_from(
    ["/", "*", "/v1/../etc", "http://x/y", "/%ff%fe?%00=1", "/v1/tasks/%ED%A0%80/status", "/openapi.json", "//"]
)


_LAYERS = (
    "json",
    "nesting",
    "numbers",
    "encoding",
    "charset",
    "signature",
    "bytes",
    "length",
    "headers",
    "line",
    "raw",
)


def _body(draw: st.DrawFn, target: Target, layers: set[str]) -> bytes:
    payload: Any = {**target.payload, "seq": draw(st.integers(1, 2**40))} if "seq" in target.payload else target.payload
    if "json" in layers:
        payload = dict(payload)
        for _ in range(draw(st.integers(1, 3))):
            payload[draw(st.sampled_from([*target.payload, "extra", "events"]))] = draw(_JSON)
        payload = draw(st.sampled_from([payload, {"events": [payload, payload]}, [payload], payload.get("xmdm")]))
    depth = draw(st.sampled_from([1, 40, 63, 64, 65, 200, 5000])) if "nesting" in layers else 0
    text = "[" * depth + json.dumps(payload, ensure_ascii=draw(st.booleans())) + "]" * depth
    try:
        body = text.encode(draw(st.sampled_from(["gbk", "GB18030", "utf-16"])) if "encoding" in layers else "utf-8")
    except UnicodeEncodeError:  # lone surrogates, or text GBK cannot hold: bytes no decoder accepts
        body = text.encode("utf-8", "surrogatepass")
    if "numbers" in layers:
        for number in (b"42.5", b"35423.4", b'"370602"', b"1"):
            body = body.replace(number, draw(_RAW_NUMBERS), 1)
    return body


@st.composite
def mutated_requests(draw: st.DrawFn, target: Target) -> bytes:
    """A request to ``target``: valid, or mutated at up to three layers."""
    layers = draw(st.sets(st.sampled_from(_LAYERS), max_size=3))
    body = _body(draw, target, layers)
    charset = draw(_CHARSETS) if "charset" in layers else "utf-8"
    media = (
        draw(st.sampled_from(["text/plain", "application/problem+json", ""]))
        if "charset" in layers
        else "application/json"
    )
    headers = ["Host: 127.0.0.1", f"Content-Type: {media}; charset={charset}"]
    stamp = int(time.time())
    if target.signed:
        signature = sign(SECRET, stamp, body)
        if "signature" in layers:
            stamp += draw(st.sampled_from([-400, 400, 10**12, 0]))
            signature = draw(st.sampled_from([signature, f"sha256={'0' * 64}", "", "md5=1"]))
        headers += [f"X-Ubridge-Timestamp: {stamp}", f"X-Ubridge-Signature: {signature}"]
    else:
        tokens = [f"Bearer {TOKEN}", "Bearer nope", "Basic x", ""]
        headers.append(f"Authorization: {draw(st.sampled_from(tokens)) if 'signature' in layers else tokens[0]}")
    if "bytes" in layers:
        body = _mutate_bytes(draw, body)
    length = draw(st.sampled_from([0, max(len(body) - 3, 0), len(body) + 7, -1])) if "length" in layers else len(body)
    headers += [] if length < 0 else [f"Content-Length: {length}"]
    if "headers" in layers:
        headers += draw(st.lists(_ODD_HEADERS, min_size=1, max_size=2))
    method, version, path = "POST", "HTTP/1.1", target.path
    if "line" in layers:
        method, version, path = draw(_METHODS), draw(_VERSIONS), draw(_PATHS | st.just(target.path))
    head = b"\r\n".join([f"{method} {path} {version}".rstrip().encode("latin-1"), *(h.encode() for h in headers)])
    if "headers" in layers and draw(st.booleans()):
        head += b"\r\n" + draw(_HEADER_BYTES)
    raw = head + b"\r\n\r\n" + body
    return _mutate_bytes(draw, raw) if "raw" in layers else raw


def _mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    if not data:
        return draw(st.binary(max_size=64))
    at = draw(st.integers(0, len(data) - 1))
    kind = draw(st.sampled_from(["flip", "cut", "insert"]))
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if kind == "cut":
        return data[: max(at, 1)]  # an empty connection is no request: there is nothing to answer
    return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]


@pytest.fixture(params=TARGETS, ids=[t.name for t in TARGETS])
def target(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Target, int, io.StringIO]]:
    """One intake, on a free port, writing to a fake Kafka that always acknowledges; its JSON logs."""
    spec: Target = request.param
    logs = json_logs(monkeypatch)  # before the intake's thread logs that it listens
    producer, stop = Producer(), threading.Event()
    intake = spec.build(producer, stop)
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    yield spec, intake.port, logs
    stop.set()
    thread.join(timeout=10)


def test_mutated_requests_always_get_a_json_answer(
    target: tuple[Target, int, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    """Thousands of mutated requests: each gets a JSON answer below 500 on an open socket; logs stay JSON."""
    spec, port, logs = target
    statuses: dict[int, int] = {}

    @settings(
        max_examples=REQUESTS,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(raw=mutated_requests(spec))
    def one_request(raw: bytes) -> None:
        head_only = raw.startswith(b"HEAD ")
        answer = parse_answer(exchange(port, raw, timeout_s=10), head_only=head_only)
        assert answer is not None, f"no answer to {raw[:300]!r}"
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        assert answer.status < 500, (answer, raw[:300])
        assert answer.headers.get("content-type", "").startswith("application/json"), (answer, raw[:300])
        if not head_only:
            body = answer.json()
            assert isinstance(body, dict) and (answer.status < 400 or body["error"]), (answer, raw[:300])

    one_request()
    assert sum(statuses.values()) >= REQUESTS
    assert statuses.get(202, 0) > 0, statuses  # the mutations still leave valid requests among them
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert_json_lines(logs.getvalue())
