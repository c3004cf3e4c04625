"""爱山东 payments, the I/O edges: settings, the bounded poster, the push intake, the delivery stage's bodies."""

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.aishandong.rules import load_application_rules
from connectors.payments.gateway import PaymentGateway
from connectors.payments.pull_source import PaymentPullSource
from connectors.payments.settings import PAYMENTS_PATH, payments_endpoint
from connectors.payments.stage import receipt_body, utility_body
from connectors.runtime.dlq import error_context
from connectors.runtime.errors import StopRequested
from connectors.runtime.http_intake import IntakeRequest
from connectors.runtime.interface import SourceBatch
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import BoundedRetry, PeerPoster
from connectors.settings import ConfigError, PaymentPullSettings, parse_settings
from routing.errors import DataError
from routing.payments import Payment
from schemas import Codec
from simulators.aishandong import PaymentPlatform, make_payments
from simulators.approval.push import sign

CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"
SECRET = "payments-secret-0123456789"
NOW = 1_795_573_860.0  # 2026-11-25 02:31 UTC
TOPIC = "t.ubridge.payments.v1"
RETRY = BoundedRetry(initial_backoff_s=0.001, max_backoff_s=0.01, max_retry_after_s=0.01, max_attempts=3)
Handler = Callable[[httpx.Request], httpx.Response]


def document(**payments: Any) -> dict[str, Any]:
    return {
        "routing": {"service_areas": str(CONFIG / "service-areas.yaml")},
        "utilities": [
            {
                "id": "yantai-water",
                "endpoint": "https://w.example/api/v1/tasks",
                "auth": {"type": "bearer", "token": "t"},
            }
        ],
        "payments": {"acknowledgement": {"url": "https://ais.example/v1/payment-receipts", "token": "a"}, **payments},
    }


def test_payments_settings_take_defaults() -> None:
    """A payments section needs only the acknowledgement; retries are bounded by default."""
    payments = parse_settings(document()).payments
    assert payments is not None and payments.gateway is None and payments.retry.max_attempts == 8


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"retry": {"max_attempts": 0}}, "payments.retry.max_attempts"),
        ({"endpoints": {"yantai-water": "ftp://x"}}, "payments.endpoints"),
        ({"acknowledgement": {"url": "not a url", "token": "a"}}, "payments.acknowledgement.url"),
        ({"gateway": {"secret": "short"}}, "payments.gateway.secret"),
        ({"max_in_flight": 0}, "payments.max_in_flight"),
        ({"retyr": {}}, "payments.retyr"),
    ],
)
def test_bad_payments_settings_name_the_key(changes: dict[str, Any], key: str) -> None:
    """Each bad value is refused with the dotted key that holds it."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_settings(document(**changes))


def test_an_endpoint_for_an_unknown_utility_is_refused() -> None:
    """payments.endpoints may only name configured utilities."""
    with pytest.raises(ConfigError, match=r"payments\.endpoints names utilities with no utilities\[\] entry: nowhere"):
        parse_settings(document(endpoints={"nowhere": "https://x.example/v1/payments"}))


def test_the_default_endpoint_is_the_task_endpoints_origin() -> None:
    """Without an endpoint of its own, a utility's payments go to its task endpoint's origin + /v1/payments."""
    assert payments_endpoint("https://w.example:8443/api/v1/tasks") == "https://w.example:8443/v1/payments"


def poster(handler: Handler, stop: threading.Event | None = None) -> tuple[PeerPoster, Metrics]:
    metrics = Metrics(CollectorRegistry())
    transport = httpx.MockTransport(handler)
    event = stop or threading.Event()
    return PeerPoster(
        "yantai-water",
        subject="payment",
        token=SecretStr("s3"),
        timeout_s=1,
        retry=RETRY,
        retries=metrics.payment_retries,
        stop=event,
        transport=transport,
    ), metrics


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def test_a_post_carries_the_key_and_token_and_returns_the_answer() -> None:
    """The payment id is the Idempotency-Key; the JSON answer comes back."""
    handler, seen = scripted(httpx.Response(201, json={"receipt_no": "RC-1"}))
    client, _ = poster(handler)
    assert client.post("http://w/v1/payments", {"a": "甲"}, key="JF1") == {"receipt_no": "RC-1"}
    assert (seen[0].headers["Idempotency-Key"], seen[0].headers["Authorization"]) == ("JF1", "Bearer s3")
    assert json.loads(seen[0].content) == {"a": "甲"}


def test_failures_are_retried_with_the_same_key_then_succeed() -> None:
    """503, a transport error and 429 are retried; every attempt carries the same key."""
    handler, seen = scripted(
        httpx.Response(503),
        httpx.ConnectError("down"),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200),
    )
    client, metrics = poster(handler)
    with pytest.raises(DataError, match="still failing after 3 attempts"):
        client.post("http://w/v1/payments", {}, key="JF1")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["JF1"] * 3
    assert (
        metrics.registry.get_sample_value(
            "ubridge_payment_retries_total", {"peer": "yantai-water", "reason": "failure"}
        )
        == 2
    )


def test_a_refusal_is_a_data_error_without_retry() -> None:
    """A 409 (the id posted with another body) is final, with the peer's reason."""
    handler, seen = scripted(httpx.Response(409, json={"error": "this payment id was posted with a different body"}))
    client, _ = poster(handler)
    with pytest.raises(DataError, match=r"yantai-water refused the payment with 409: .*different body"):
        client.post("http://w/v1/payments", {}, key="JF1")
    assert len(seen) == 1


def test_shutdown_interrupts_the_retries() -> None:
    """With the stop event set, a failing post gives up as StopRequested, never as a dead letter."""
    stop = threading.Event()
    stop.set()
    handler, _ = scripted(httpx.Response(503))
    client, _ = poster(handler, stop)
    with pytest.raises(StopRequested):
        client.post("http://w/v1/payments", {}, key="JF1")


PAYMENT = Payment(
    payment_id="JF1",
    account_no="0102003456",
    service="WATER",
    region_code="370602",
    amount_fen=12850,
    period="2026-11",
    channel="ALIPAY",
    payer_name="张伟",
    paid_at=datetime(2026, 11, 25, 1, 30, tzinfo=UTC),
    user_category="ENTERPRISE",
    source="aishandong",
    ingested_at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
)


def test_the_utility_receives_yuan_and_the_category() -> None:
    """The body sent to the utility carries the amount in yuan (2 decimals) and fen, and the category."""
    body = utility_body(PAYMENT, "yantai-water")
    assert (body["amount"], body["amount_fen"], body["user_category"]) == ("128.50", 12850, "ENTERPRISE")
    assert body["utility_id"] == "yantai-water" and "ingested_at" not in body


def test_a_receipt_needs_the_utilitys_number() -> None:
    """A 2xx without receipt_no cannot be receipted back: a DataError naming the utility."""
    receipt = receipt_body(PAYMENT, "yantai-water", {"receipt_no": "RC-9", "posted_at": "2026-11-25T02:00:00+00:00"})
    assert (receipt["receipt_no"], receipt["amount"], receipt["utility_id"]) == ("RC-9", "128.50", "yantai-water")
    with pytest.raises(DataError, match="yantai-water accepted the payment without a receipt_no"):
        receipt_body(PAYMENT, "yantai-water", {"status": "posted"})


def intake() -> PaymentGateway:
    words = load_application_rules(CONFIG / "aishandong.yaml").vocabulary.service_names
    return PaymentGateway(
        name="aishandong-payments", secret=SecretStr(SECRET), topic=TOPIC, service_names=words, clock=lambda: NOW
    )


def request(payment: dict[str, Any], *, path: str = PAYMENTS_PATH, secret: str = SECRET) -> IntakeRequest:
    body = json.dumps(payment, ensure_ascii=False).encode()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "x-ubridge-timestamp": str(int(NOW)),
        "x-ubridge-signature": sign(secret, int(NOW), body),
    }
    return IntakeRequest(method="POST", path=path, query={}, headers=headers, body=body)


RAW = {
    "jfbh": "JF1",
    "hh": "0102003456",
    "fwlx": "燃气",
    "xzqhdm": "370602",
    "je": "99.90",
    "zq": "2026-11",
    "qd": "银联",
    "jfsj": "2026-11-25 09:30:00",
}


def test_a_signed_payment_becomes_one_avro_record() -> None:
    """202 with the payment id; one Payment keyed by payment id on the payments topic."""
    response = intake().handle(request(RAW))
    assert (response.status, response.body) == (202, {"accepted": 1, "payment_id": "JF1"})
    output = response.outputs[0]
    assert (output.topic, output.key) == (TOPIC, b"JF1")
    name, record = Codec.default().decode(output.value)
    assert (name, record["service"], record["amount_fen"], record["channel"]) == ("Payment", "GAS", 9990, "UNIONPAY")


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"je": "-1"}, "je"), ({"je": "1.001"}, "je"), ({"zq": "2026-13"}, "zq"), ({"qd": "现金"}, "qd")],
)
def test_an_invalid_payment_is_422_naming_the_field(changes: dict[str, Any], field: str) -> None:
    """Nothing is stored for a payment that fails validation; the answer names the app's field."""
    response = intake().handle(request({**RAW, **changes}))
    assert (response.status, response.body["field"], response.outputs) == (422, field, ())


def test_forged_and_misdirected_requests_are_refused() -> None:
    """A wrong signature is 401; another path is 404."""
    assert intake().handle(request(RAW, secret="another-secret-0123456789")).status == 401
    assert intake().handle(request(RAW, path="/v1/applications")).status == 404


@pytest.fixture
def feed() -> Iterator[tuple[PaymentPlatform, str]]:
    platform = PaymentPlatform(token="feed-token")
    url = platform.start()
    yield platform, url
    platform.stop()


def pull(url: str, cursor: str | None) -> SourceBatch:
    source = PaymentPullSource(
        PaymentPullSettings(base_url=url, token=SecretStr("feed-token"), page_size=3), topic=TOPIC, dlq_topic="dlq"
    )
    try:
        return source.poll(cursor)
    finally:
        source.close()


def test_pulled_payments_become_avro_records_and_bad_ones_dead_letters(feed: tuple[PaymentPlatform, str]) -> None:
    """The feed's payments are paged by cursor; an invalid one is a dead letter with its reason, the rest pass."""
    platform, url = feed
    good = make_payments(3, seed=2, regions=["370602"])
    platform.add([good[0], {**good[1], "je": "-3.00"}, good[2], {**good[0], "jfbh": "JF-X", "qd": "现金"}])
    first = pull(url, None)
    second = pull(url, first.cursor)
    assert (first.cursor, first.has_more, second.cursor, second.has_more) == ("3", True, "4", False)
    records = [*first.records, *second.records]
    assert [r.topic for r in records] == [TOPIC, "dlq", TOPIC, "dlq"]
    assert [r.key for r in records[:3]] == [p["jfbh"].encode() for p in good]
    assert Codec.default().decode(records[0].value)[0] == "Payment"
    letter = error_context(records[1].headers)
    assert (letter["field"], letter["offset"], letter["stage"]) == ("je", "2", "aishandong-payments-pull")
    assert "positive" in letter["message"]
    assert (records[3].key, error_context(records[3].headers)["field"]) == (b"JF-X", "qd")
