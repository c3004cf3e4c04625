"""The hotline's push handler and pull source without a broker: answers, charsets, cursor, dead letters."""

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.hotline.pull_source import HotlinePullSource
from connectors.hotline.push import RETURN_VISITS_PATH, WORK_ORDERS_PATH, HotlinePush
from connectors.runtime.errors import RetriableError
from connectors.runtime.http_intake import IntakeRequest
from connectors.settings import HotlinePullSettings
from schemas import Codec
from simulators.approval.push import sign
from simulators.hotline import make_work_orders

SECRET = "hotline-unit-secret-0123456789"
NOW = 1_795_573_860.0
ORDERS, VISITS, DLQ = "t.orders", "t.visits", "t.dlq"
CODEC = Codec.default()


def handler() -> HotlinePush:
    return HotlinePush(
        secret=SecretStr(SECRET), work_orders_topic=ORDERS, return_visits_topic=VISITS, clock=lambda: NOW
    )


def request(
    path: str, record: Any, *, charset: str = "utf-8", secret: str = SECRET, method: str = "POST"
) -> IntakeRequest:
    body = json.dumps(record, ensure_ascii=False).encode(charset)
    headers = {
        "content-type": f"application/json; charset={charset}",
        "x-ubridge-timestamp": str(int(NOW)),
        "x-ubridge-signature": sign(secret, int(NOW), body),
    }
    return IntakeRequest(method=method, path=path, query={}, headers=headers, body=body)


def test_a_gbk_work_order_is_one_avro_record_keyed_by_order() -> None:
    """A GBK-encoded signed order is accepted: one HotlineWorkOrder on the order topic, keyed by its number."""
    order = make_work_orders(1, seed=9)[0]
    response = handler().handle(request(WORK_ORDERS_PATH, order, charset="gbk"))
    assert (response.status, response.body) == (202, {"accepted": 1, "order_id": order["gdbh"]})
    (output,) = response.outputs
    assert (output.topic, output.key) == (ORDERS, order["gdbh"].encode())
    decoded = CODEC.decode_as("HotlineWorkOrder", output.value)
    assert (decoded["content"], decoded["source"]) == (order["sqnr"], "hotline-push")


def test_refusals_name_status_and_field() -> None:
    """Forged 401, replay 401, wrong path 404, wrong method 405, bad record 422 with field, array 400."""
    push = handler()
    order = make_work_orders(1, seed=9)[0]
    assert push.handle(request(WORK_ORDERS_PATH, order, secret="x" * 20)).status == 401
    assert push.handle(request(WORK_ORDERS_PATH, order)).status == 202
    assert push.handle(request(WORK_ORDERS_PATH, order)).status == 401  # the same signature again
    assert push.handle(request("/v1/elsewhere", order)).status == 404
    assert push.handle(request(WORK_ORDERS_PATH, order, method="PUT")).status == 405
    bad = push.handle(request(RETURN_VISITS_PATH, {"gdbh": "A1", "hfjg": "满意"}))
    assert (bad.status, bad.body["field"]) == (422, "hfbh")
    assert push.handle(request(WORK_ORDERS_PATH, [order])).status == 400


def feed(pages: dict[str, dict[str, Any]]) -> httpx.MockTransport:
    def answer(req: httpx.Request) -> httpx.Response:
        page = pages.get(f"{req.url.path}?{req.url.params['cursor']}")
        return httpx.Response(200, json=page) if page is not None else httpx.Response(500, text="no")

    return httpx.MockTransport(answer)


def source(transport: httpx.MockTransport) -> HotlinePullSource:
    settings = HotlinePullSettings(base_url="http://platform", token=SecretStr("t"))
    return HotlinePullSource(
        settings, work_orders_topic=ORDERS, return_visits_topic=VISITS, dlq_topic=DLQ, transport=transport
    )


def test_one_poll_reads_both_feeds_and_dead_letters_bad_entries() -> None:
    """Orders and visits after the two positions; a bad entry is a dead letter; the cursor holds both."""
    orders = make_work_orders(2, seed=1)
    entries = [{**orders[0], "seq": 4}, {**orders[1], "ywlb": "物业", "seq": 5}]
    visit = {"sjid": "E1", "hfbh": "H1", "gdbh": orders[0]["gdbh"], "hfjg": "满意", "hfsj": "2026-12-01 10:00:00"}
    pages = {
        "/api/v1/work-orders?3": {"work_orders": entries, "next_cursor": 5, "has_more": True},
        "/api/v1/return-visits?7": {"return_visits": [{**visit, "seq": 8}], "next_cursor": 8, "has_more": False},
    }
    batch = source(feed(pages)).poll("3:7")
    assert (batch.cursor, batch.has_more) == ("5:8", True)
    assert [record.topic for record in batch.records] == [ORDERS, DLQ, VISITS]
    assert dict(batch.records[1].headers)["ubridge.error.field"] == b"ywlb"


@pytest.mark.parametrize("cursor", ["7", "a:b", "1:2:3"])
def test_a_cursor_it_never_wrote_is_retried_not_guessed(cursor: str) -> None:
    """A cursor not '<orders>:<visits>' stops the source with a retriable error rather than re-reading or skipping."""
    with pytest.raises(RetriableError, match="is not '<orders>:<visits>'"):
        source(feed({})).poll(cursor)


def test_a_failing_feed_is_retriable() -> None:
    """A 5xx or a page without its items is retried, nothing is read past it."""
    with pytest.raises(RetriableError, match="answered 500"):
        source(feed({})).poll(None)
    broken = {"/api/v1/work-orders?0": {"items": [], "next_cursor": 0}}
    with pytest.raises(RetriableError, match="lacks 'work_orders'"):
        source(feed(broken)).poll(None)
