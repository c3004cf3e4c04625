"""The 12345 platform simulator: realistic orders, paged feeds, the answer endpoint's contract, return visits."""

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from routing.hotline import PULL_SOURCE, parse_return_visit, parse_work_order
from simulators.hotline import HotlinePlatform, make_work_orders, working_days_after

TOKEN = "platform-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.fixture
def platform() -> Iterator[tuple[HotlinePlatform, str]]:
    sim = HotlinePlatform(token=TOKEN, seed=3)
    url = sim.start()
    yield sim, url
    sim.stop()


def answer(order_id: str, **changes: object) -> dict[str, object]:
    body = {"order_id": order_id, "result": "已派员检修", "answered_at": "2026-11-26T10:00:00+08:00", "utility_id": "u"}
    return {**body, **changes}


def test_generated_orders_are_valid_and_reproducible() -> None:
    """Every generated order parses; the same seed makes the same orders; deadlines skip weekends."""
    orders = make_work_orders(60, seed=4)
    assert orders == make_work_orders(60, seed=4)
    parsed = [parse_work_order(o, ingested_at=NOW, source=PULL_SOURCE) for o in orders]
    assert {p["service"] for p in parsed} == {"WATER", "GAS", "HEAT"}
    assert all(p["answer_due"] > p["dispatched_at"] for p in parsed)
    assert any(p["caller_mobile"] is None for p in parsed) and any(p["caller_mobile"] for p in parsed)
    friday = datetime(2026, 12, 4, 9, 0)  # noqa: DTZ001 - the platform's wall clock
    assert working_days_after(friday, 1) == datetime(2026, 12, 7, 9, 0)  # noqa: DTZ001


def test_feed_pages_after_the_cursor(platform: tuple[HotlinePlatform, str]) -> None:
    """The work-order feed answers pages after the cursor, with next_cursor and has_more; a bad token gets 401."""
    sim, url = platform
    sim.publish(make_work_orders(5, seed=1))
    first = httpx.get(f"{url}/api/v1/work-orders", params={"cursor": 0, "limit": 3}, headers=AUTH).json()
    assert ([e["seq"] for e in first["work_orders"]], first["next_cursor"], first["has_more"]) == ([1, 2, 3], 3, True)
    rest = httpx.get(f"{url}/api/v1/work-orders", params={"cursor": 3}, headers=AUTH).json()
    assert ([e["seq"] for e in rest["work_orders"]], rest["has_more"]) == ([4, 5], False)
    assert httpx.get(f"{url}/api/v1/work-orders", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_answers_are_recorded_and_duplicates_told(platform: tuple[HotlinePlatform, str]) -> None:
    """An answer is recorded; the same answer again is 200 duplicate; faults per the contract."""
    sim, url = platform
    order = make_work_orders(1, seed=2)[0]
    sim.publish([order])
    path = f"{url}/api/v1/work-orders/{order['gdbh']}/answer"
    first = httpx.post(path, json=answer(order["gdbh"]), headers=AUTH)
    again = httpx.post(path, json=answer(order["gdbh"]), headers=AUTH)
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert len(sim.answered(order["gdbh"])) == 2
    assert httpx.post(path, json=answer("OTHER"), headers=AUTH).status_code == 409
    missing = httpx.post(path, json=answer(order["gdbh"], result=""), headers=AUTH)
    assert (missing.status_code, missing.json()["field"]) == (400, "result")
    unknown = f"{url}/api/v1/work-orders/NEVER/answer"
    assert httpx.post(unknown, json=answer("NEVER"), headers=AUTH).status_code == 404
    assert httpx.post(path, json=answer(order["gdbh"])).status_code == 401
    sim.faults.configure(error_rate=1.0, error_status=503)
    failed = httpx.post(path, json=answer(order["gdbh"], result="再次答复"), headers=AUTH)
    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "1")
    sim.faults.configure(fail_after_store_rate=1.0)
    lost = httpx.post(path, json=answer(order["gdbh"], result="第三次"), headers=AUTH)
    assert lost.status_code == 503 and sim.answered(order["gdbh"])[-1].result == "第三次"  # stored, answer lost


def test_return_visit_of_an_answered_order_is_on_the_feed(platform: tuple[HotlinePlatform, str]) -> None:
    """The test hook visits an answered order with the chosen result; an unanswered one cannot be visited."""
    sim, url = platform
    order = make_work_orders(1, seed=3)[0]
    sim.publish([order])
    with pytest.raises(ValueError, match="has not been answered"):
        sim.return_visit(order["gdbh"], "SATISFIED")
    httpx.post(f"{url}/api/v1/work-orders/{order['gdbh']}/answer", json=answer(order["gdbh"]), headers=AUTH)
    with pytest.raises(ValueError, match="result must be one of"):
        sim.return_visit(order["gdbh"], "HAPPY")
    visit = sim.return_visit(order["gdbh"], "UNSATISFIED", comment="仍然没水")
    assert parse_return_visit(visit, ingested_at=NOW, source=PULL_SOURCE)["result"] == "UNSATISFIED"
    feed = httpx.get(f"{url}/api/v1/return-visits", headers=AUTH).json()
    assert [e["hfbh"] for e in feed["return_visits"]] == [visit["hfbh"]]


def test_a_pushed_order_is_answered_without_being_on_the_feed(platform: tuple[HotlinePlatform, str]) -> None:
    """An order the platform pushed (dispatched) takes answers, and stays off the order feed."""
    sim, url = platform
    pushed = make_work_orders(1, seed=8)[0]
    sim.dispatched([pushed])
    order_id = pushed["gdbh"]
    reply = httpx.post(f"{url}/api/v1/work-orders/{order_id}/answer", json=answer(order_id), headers=AUTH)
    assert reply.status_code == 200
    assert [a.order_id for a in sim.answered(order_id)] == [order_id]
    feed = httpx.get(f"{url}/api/v1/work-orders", params={"cursor": 0, "limit": 10}, headers=AUTH).json()
    assert feed["work_orders"] == []
