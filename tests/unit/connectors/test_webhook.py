"""The 工改 push webhook: signature, replay window, charsets, mapping and validation, called directly."""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from connectors.gonggai.webhook import WEBHOOK_PATH, GonggaiWebhook, build_webhook
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import HttpIntake, IntakeRequest, IntakeResponse
from connectors.runtime.metrics import Metrics
from connectors.runtime.signed_push import ReplayCache
from connectors.settings import ConfigError, KafkaSettings
from routing.mapping import load_mapping
from simulators.approval.generator import EventGenerator
from simulators.approval.push import sign, to_vendor

MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
SECRET = "webhook-secret-0123456789"
NOW = 1_795_573_860.0
TOPIC = "t.ubridge.raw.gonggai.v1"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def webhook(vendor_file: str = "default.yaml", clock: Clock | None = None, **options: Any) -> GonggaiWebhook:
    return GonggaiWebhook(
        name="gonggai-webhook",
        secret=SecretStr(SECRET),
        mapping=load_mapping(MAPPINGS / vendor_file),
        raw_topic=TOPIC,
        clock=clock or Clock(),
        **options,
    )


def signed(
    body: bytes,
    *,
    timestamp: int = int(NOW),
    secret: str = SECRET,
    content_type: str = "application/json; charset=utf-8",
    path: str = WEBHOOK_PATH,
    method: str = "POST",
) -> IntakeRequest:
    headers = {
        "content-type": content_type,
        "x-ubridge-timestamp": str(timestamp),
        "x-ubridge-signature": sign(secret, timestamp, body),
    }
    return IntakeRequest(method=method, path=path, query={}, headers=headers, body=body)


def batch(events: list[dict[str, Any]], charset: str = "utf-8") -> bytes:
    return json.dumps({"events": events}, ensure_ascii=False).encode(charset)


def events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    return EventGenerator(seed=seed).generate(n)


def assert_refused(response: IntakeResponse, status: int, reason: str) -> None:
    assert response.status == status, response.body
    assert reason in response.body["error"]
    assert not response.outputs


def test_signed_batch_is_accepted_as_raw_records() -> None:
    """A correctly signed batch answers 202 with the count, one raw record per event, keyed and stamped."""
    sent = events(3)
    response = webhook().handle(signed(batch(sent)))
    assert (response.status, response.body) == (202, {"accepted": 3})
    assert [json.loads(o.value) for o in response.outputs] == sent
    assert [o.key for o in response.outputs] == [e["xmdm"].encode() for e in sent]
    for output in response.outputs:
        headers = dict(output.headers)
        assert output.topic == TOPIC
        assert headers["ubridge.source"] == b"gonggai-webhook"
        assert headers["ubridge.ingested_at"] == b"2026-11-25T02:31:00.000+00:00"
        assert (headers["ubridge.vendor"], headers["ubridge.format"]) == (b"default", b"default")


def test_single_event_is_accepted() -> None:
    """A body that is one event object, not a batch, is one record."""
    event = events(1)[0]
    response = webhook().handle(signed(json.dumps(event).encode()))
    assert (response.status, response.body) == (202, {"accepted": 1})
    assert json.loads(response.outputs[0].value) == event


def test_vendor_events_are_stored_in_the_default_format() -> None:
    """A Liaocheng batch is written mapped to the default format, with the vendor named in a header."""
    sent = events(5)
    body = batch([to_vendor(e, "liaocheng") for e in sent])
    response = webhook("vendor-liaocheng.yaml").handle(signed(body))
    assert response.status == 202
    assert [json.loads(o.value) for o in response.outputs] == sent
    assert dict(response.outputs[0].headers)["ubridge.vendor"] == b"liaocheng"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "x-ubridge-timestamp must be"),
        ({"x-ubridge-timestamp": "yesterday"}, "x-ubridge-timestamp must be"),
        ({"x-ubridge-timestamp": str(int(NOW))}, "x-ubridge-signature must be sha256="),
        ({"x-ubridge-timestamp": str(int(NOW)), "x-ubridge-signature": "md5=abc"}, "x-ubridge-signature must be"),
    ],
)
def test_missing_or_malformed_signature_headers_are_refused(headers: dict[str, str], reason: str) -> None:
    """Without a unix timestamp and a sha256= signature the request is refused with 401."""
    request = IntakeRequest("POST", WEBHOOK_PATH, {}, headers, batch(events(1)))
    assert_refused(webhook().handle(request), 401, reason)


def test_wrong_signature_is_refused() -> None:
    """A signature made with another secret, or over other bytes, is refused with 401."""
    body = batch(events(2))
    assert_refused(webhook().handle(signed(body, secret="another-secret-987654321")), 401, "signature does not match")
    tampered = signed(body)
    tampered = IntakeRequest("POST", WEBHOOK_PATH, {}, tampered.headers, body.replace(b"1", b"2", 1))
    assert_refused(webhook().handle(tampered), 401, "signature does not match")


def test_signature_signs_the_timestamp_too() -> None:
    """Moving the timestamp header of a signed request breaks the signature."""
    request = signed(batch(events(1)))
    moved = {**request.headers, "x-ubridge-timestamp": str(int(NOW) + 1)}
    response = webhook().handle(IntakeRequest("POST", WEBHOOK_PATH, {}, moved, request.body))
    assert_refused(response, 401, "signature does not match")


@pytest.mark.parametrize(("offset_s", "side"), [(-301, "old"), (301, "in the future"), (-3600, "old")])
def test_timestamp_outside_the_window_is_a_replay(offset_s: int, side: str) -> None:
    """A correctly signed request whose timestamp is more than 300 s away is refused as a replay."""
    response = webhook().handle(signed(batch(events(1)), timestamp=int(NOW) + offset_s))
    assert_refused(response, 401, "replay refused")
    assert side in response.body["error"]


def test_timestamp_at_the_edge_of_the_window_is_accepted() -> None:
    """Exactly 300 s of skew is still inside the window."""
    assert webhook().handle(signed(batch(events(1)), timestamp=int(NOW) - 300)).status == 202


def test_replayed_signature_is_refused_within_the_window() -> None:
    """The same signed request a second time is refused, even though the first was accepted."""
    handler = webhook()
    request = signed(batch(events(2)))
    assert handler.handle(request).status == 202
    assert_refused(handler.handle(request), 401, "replayed request")


def test_replay_cache_forgets_expired_signatures_and_is_bounded() -> None:
    """Signatures expire with the window, and a full cache answers 429 rather than forget one too early."""
    clock = Clock()
    handler = webhook(clock=clock, replay_cache_max_entries=2)
    assert handler.handle(signed(batch(events(1, seed=1)))).status == 202
    assert handler.handle(signed(batch(events(1, seed=2)))).status == 202
    full = handler.handle(signed(batch(events(1, seed=3))))
    assert_refused(full, 429, "too many requests")
    assert ("Retry-After", "1") in full.headers
    clock.now += 301  # the first two signatures have expired: room again
    assert handler.handle(signed(batch(events(1, seed=3)), timestamp=int(clock.now))).status == 202


def test_replay_cache_drops_only_expired_entries() -> None:
    """The cache keeps a signature until its expiry and no longer."""
    cache = ReplayCache(max_entries=10)
    assert cache.add("a", expires_at=100.0, now=0.0) == "added"
    assert cache.add("a", expires_at=100.0, now=50.0) == "seen"
    assert cache.seen("a", 100.0)
    assert not cache.seen("a", 100.5)
    assert cache.add("b", expires_at=300.0, now=101.0) == "added"
    assert len(cache) == 1
    cache.discard("b")
    assert cache.add("b", expires_at=300.0, now=102.0) == "added"


def test_gbk_body_with_gbk_charset_is_decoded() -> None:
    """A GBK-encoded body declared ``charset=GBK`` is decoded, and the Chinese text stored as UTF-8 JSON."""
    sent = events(4)
    body = batch(sent, "gbk")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    response = webhook().handle(signed(body, content_type="application/json; charset=GBK"))
    assert response.status == 202
    stored = [json.loads(o.value.decode("utf-8")) for o in response.outputs]
    assert stored == sent
    assert "区" in stored[0]["xmmc"]


def test_utf8_body_declared_gbk_is_a_bad_request() -> None:
    """UTF-8 bytes labelled GBK do not decode and are refused with 400."""
    body = json.dumps({"xmmc": "芝罘区"}, ensure_ascii=False).encode("utf-8")
    response = webhook().handle(signed(body, content_type="application/json; charset=gbk"))
    assert_refused(response, 400, "body is not valid gbk")


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("application/json; charset=big5", "charset 'big5' is not supported"),
        ("application/json; charset=utf-16", "charset 'utf-16' is not supported"),
        ("text/plain; charset=utf-8", "content type 'text/plain' is not application/json"),
    ],
)
def test_unsupported_content_type_or_charset_is_415(content_type: str, reason: str) -> None:
    """A charset other than UTF-8/GBK, or a body that is not JSON by type, is refused with 415."""
    assert_refused(webhook().handle(signed(batch(events(1)), content_type=content_type)), 415, reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body must be an event object"),
        (b"[" * 100_000 + b"]" * 100_000, "body nests deeper than 64 levels"),
    ],
)
def test_body_that_is_not_an_event_is_a_bad_request(body: bytes, reason: str) -> None:
    """A body that is not JSON, or not an event or batch, is refused with 400."""
    assert_refused(webhook().handle(signed(body)), 400, reason)


def test_invalid_event_is_422_naming_the_field() -> None:
    """An event that fails validation is refused with 422, its field and its index; nothing is written."""
    sent = events(3)
    del sent[1]["xmmc"]
    response = webhook().handle(signed(batch(sent)))
    assert_refused(response, 422, "project_name is required")
    assert (response.body["field"], response.body["index"]) == ("xmmc", 1)


def test_vendor_mapping_errors_name_the_vendor_field() -> None:
    """A vendor code outside the mapping's table, or a vendor value that fails validation, names the vendor path."""
    rendered = [to_vendor(e, "yantai") for e in events(2)]
    rendered[0]["statusCode"] = "77"
    response = webhook("vendor-yantai.yaml").handle(signed(batch(rendered)))
    assert_refused(response, 422, "'77' is not a known blzt value")
    assert (response.body["field"], response.body["index"]) == ("statusCode", 0)
    rendered[0]["statusCode"] = "09"
    rendered[1]["projectCode"] = "2026-370602"
    response = webhook("vendor-yantai.yaml").handle(signed(batch(rendered)))
    assert response.status == 422
    assert (response.body["field"], response.body["index"]) == ("projectCode", 1)


def test_a_refused_request_can_be_fixed_and_resent() -> None:
    """A 422 does not burn the fixed request's signature: the corrected batch, newly signed, is accepted."""
    handler = webhook()
    sent = events(2)
    broken = [sent[0], {**sent[1], "blsj": "待定"}]
    assert handler.handle(signed(batch(broken))).status == 422
    assert handler.handle(signed(batch(sent))).status == 202


@pytest.mark.parametrize(("method", "path", "status"), [("POST", "/v1/other", 404), ("GET", WEBHOOK_PATH, 405)])
def test_other_paths_and_methods_are_refused(method: str, path: str, status: int) -> None:
    """Only POST /v1/project-events is served."""
    assert webhook().handle(signed(batch(events(1)), method=method, path=path)).status == status


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    """Stands in for KafkaProducer: records sends, or fails them while ``failing`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.failing = False

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        if self.failing:
            return FakeFuture(KafkaTimeoutError("no broker"))
        self.sent.append((topic, key, value))
        return FakeFuture(None)

    def close(self, timeout: float | None = None) -> None:
        """Nothing to close."""


def settings(**changes: Any) -> GonggaiWebhookSettings:
    values: dict[str, Any] = {"secret": SECRET, "port": 0, "mapping": MAPPINGS / "default.yaml", **changes}
    return GonggaiWebhookSettings(**values)


@pytest.fixture
def running() -> Iterator[tuple[HttpIntake, FakeProducer, str]]:
    """The webhook built by build_webhook, serving on a free port, writing to a fake producer."""
    producer = FakeProducer()
    stop = threading.Event()
    intake = build_webhook(
        settings(max_body_bytes=2048),
        kafka=KafkaSettings(),
        raw_topic=TOPIC,
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    yield intake, producer, f"http://127.0.0.1:{intake.port}{WEBHOOK_PATH}"
    stop.set()
    thread.join(timeout=5)


def post(url: str, body: bytes, *, timestamp: int | None = None) -> httpx.Response:
    stamp = int(NOW) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Ubridge-Timestamp": str(stamp),
        "X-Ubridge-Signature": sign(SECRET, stamp, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=5)


def test_oversized_body_is_refused_by_the_intake(running: tuple[HttpIntake, FakeProducer, str]) -> None:
    """A body above max_body_bytes is answered 413 before it is read, and nothing is produced."""
    _, producer, url = running
    body = batch(events(40))
    assert len(body) > 2048
    response = post(url, body, timestamp=int(time.time()))
    assert response.status_code == 413
    assert "exceeds the limit of 2048" in response.json()["error"]
    assert producer.sent == []


def test_request_kafka_did_not_take_may_be_resent_unchanged(running: tuple[HttpIntake, FakeProducer, str]) -> None:
    """After a 503 (Kafka unavailable) the very same signed request is accepted once Kafka is back."""
    _, producer, url = running
    body = batch(events(2))
    stamp = int(time.time())
    producer.failing = True
    first = post(url, body, timestamp=stamp)
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "5"
    producer.failing = False
    again = post(url, body, timestamp=stamp)
    assert (again.status_code, again.json()) == (202, {"accepted": 2})
    assert len(producer.sent) == 2
    assert post(url, body, timestamp=stamp).status_code == 401  # and now it is a replay


def test_build_webhook_refuses_a_bad_mapping_file(tmp_path: Path) -> None:
    """A mapping file that does not parse stops start-up with a ConfigError naming the key and the file."""
    bad = tmp_path / "vendor-bad.yaml"
    bad.write_text("vendor: bad\nfields: {xmdm: {path: a, scale: 0}}\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"sources\.gonggai_webhook\.mapping: .*vendor-bad\.yaml: fields\.xmdm\.scale"
    ):
        build_webhook(
            settings(mapping=bad),
            kafka=KafkaSettings(),
            raw_topic=TOPIC,
            metrics=Metrics(CollectorRegistry()),
            stop=threading.Event(),
            producer=FakeProducer(),  # type: ignore[arg-type]
        )


def test_settings_refuse_weak_secrets_and_unknown_keys() -> None:
    """The secret must be at least 16 characters, and unknown keys are refused."""
    with pytest.raises(ValidationError, match="at least 16 characters"):
        settings(secret="short")
    with pytest.raises(ValidationError, match="extra"):
        settings(replay_window=60)
    assert settings().replay_window_s == 300
    assert "webhook-secret" not in repr(settings())
