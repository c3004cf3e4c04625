"""The payment sides of the simulators: the utility posts each payment once; 爱山东 records each receipt once."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.aishandong.rules import load_application_rules
from connectors.aishandong.settings import SHIPPED_RULES
from routing.payments import parse_payment
from routing.user_category import shipped_categories
from simulators.aishandong import RECEIPTS_PATH, PaymentPlatform, make_payments
from simulators.utility import UtilitySimulator

TOKEN = "water-bearer"


@pytest.fixture
def water() -> Iterator[tuple[UtilitySimulator, httpx.Client]]:
    simulator = UtilitySimulator("yantai-water", token=TOKEN, seed=3)
    url = simulator.start()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield simulator, client
    simulator.stop()


def payment(**changes: Any) -> dict[str, Any]:
    body = {"payment_id": "JF1", "utility_id": "yantai-water", "account_no": "0102003456", "amount": "128.50"}
    return body | changes


def post(client: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return client.post("/v1/payments", json=body, headers={"Idempotency-Key": key or body["payment_id"]})


def test_a_payment_is_posted_once_and_its_repeat_gets_the_same_receipt(
    water: tuple[UtilitySimulator, httpx.Client],
) -> None:
    """201 with a receipt number, then 200 duplicate with the same number; one posting."""
    simulator, client = water
    first, again = post(client, payment()), post(client, payment())
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["receipt_no"] == again.json()["receipt_no"] == "RC-yantai-water-000001"
    assert again.json()["status"] == "duplicate"
    assert [p.payment_id for p in simulator.payments.payments()] == ["JF1"]
    assert (simulator.payments.stats().posted, simulator.payments.stats().repeats) == (1, 1)


@pytest.mark.parametrize(
    ("body", "key", "status"),
    [
        (payment(amount="99.00"), None, 409),
        (payment(utility_id="yantai-gas"), None, 422),
        (payment(amount="1.005"), None, 400),
        (payment(amount="-1"), None, 400),
        (payment(), "JF2", 400),
        ({"payment_id": "JF1"}, None, 400),
    ],
)
def test_refusals(
    water: tuple[UtilitySimulator, httpx.Client], body: dict[str, Any], key: str | None, status: int
) -> None:
    """A reused id with another body, another utility's payment, sub-fen or negative amounts, a wrong key."""
    _, client = water
    assert post(client, payment()).status_code == 201
    assert post(client, body, key).status_code == status


def test_faults_strike_payments_not_tasks(water: tuple[UtilitySimulator, httpx.Client]) -> None:
    """A payment outage answers 503 with Retry-After and posts nothing; a bad token is 401."""
    simulator, client = water
    simulator.payments.set_faults(outage_s=30, retry_after_s=2)
    answer = post(client, payment())
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "2")
    assert simulator.payments.payments() == []
    simulator.payments.set_faults()
    refused = client.post(
        "/v1/payments", json=payment(), headers={"Idempotency-Key": "JF1", "Authorization": "Bearer x"}
    )
    assert refused.status_code == 401


def test_receipts_are_recorded_once() -> None:
    """The app records a receipt, takes its repeat as a duplicate, refuses another receipt for the same payment."""
    platform = PaymentPlatform(token="r")
    url = platform.start()
    try:
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer r"}) as client:
            receipt = {"payment_id": "JF1", "utility_id": "yantai-water", "receipt_no": "RC-1"}
            statuses = [client.post(RECEIPTS_PATH, json=body).status_code for body in (receipt, receipt)]
            clash = client.post(RECEIPTS_PATH, json={**receipt, "receipt_no": "RC-2"}).status_code
            missing = client.post(RECEIPTS_PATH, json={"payment_id": "JF2"}).status_code
        assert (statuses, clash, missing) == ([201, 200], 409, 400)
        assert [(r.payment_id, r.receipt_no) for r in platform.receipts()] == [("JF1", "RC-1")]
    finally:
        platform.stop()


def test_generated_payments_are_valid_and_reproducible() -> None:
    """Every generated payment passes ubridge's validation; the same seed gives the same payments."""
    words = load_application_rules(SHIPPED_RULES).vocabulary.service_names
    payments = make_payments(300, seed=4, regions=["370602", "371502"])
    now = datetime(2026, 12, 5, tzinfo=UTC)
    parsed = [parse_payment(p, ingested_at=now, service_names=words, categories=shipped_categories()) for p in payments]
    assert len({p["payment_id"] for p in parsed}) == 300
    assert {p["channel"] for p in parsed} == {"WECHAT", "ALIPAY", "UNIONPAY", "AISHANDONG"}
    assert any(p["user_category"] is None for p in parsed) and any(p["user_category"] for p in parsed)
    assert make_payments(300, seed=4, regions=["370602", "371502"]) == payments
