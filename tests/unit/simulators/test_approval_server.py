"""The approval-system simulator over HTTP: paging, auth, control plane and faults."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulators.approval import ApprovalSimulator

FEED = "/api/v1/project-events"
BEARER = "test-bearer"


@pytest.fixture
def simulator() -> Iterator[ApprovalSimulator]:
    """A running simulator holding 230 events."""
    simulator = ApprovalSimulator(token=BEARER, seed=7)
    simulator.generate(230)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(simulator: ApprovalSimulator) -> Iterator[httpx.Client]:
    """A client that authenticates with the right token."""
    with httpx.Client(base_url=simulator.start(), headers={"Authorization": f"Bearer {BEARER}"}, timeout=5) as client:
        yield client


def read_all(client: httpx.Client, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Walk the feed from cursor 0 to the end; return the events and the number of pages."""
    events: list[dict[str, Any]] = []
    cursor, pages, has_more = 0, 0, True
    while has_more:
        page = client.get(FEED, params={"cursor": cursor, "limit": limit}).json()
        events += page["events"]
        cursor, has_more, pages = page["next_cursor"], page["has_more"], pages + 1
    return events, pages


def test_paging_returns_every_event_once_in_order(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """Walking the cursor with limit 100 yields the ground truth in three pages."""
    events, pages = read_all(client, limit=100)
    assert events == simulator.events()
    assert pages == 3


def test_page_reports_cursor_and_more(client: httpx.Client) -> None:
    """A middle page starts after the cursor, ends at next_cursor and says more follow."""
    page = client.get(FEED, params={"cursor": 10, "limit": 5}).json()
    assert [event["seq"] for event in page["events"]] == [11, 12, 13, 14, 15]
    assert (page["next_cursor"], page["has_more"]) == (15, True)


def test_page_ending_at_the_last_event_says_no_more(client: httpx.Client) -> None:
    """A full page that ends exactly at the last event reports has_more false."""
    page = client.get(FEED, params={"cursor": 130, "limit": 100}).json()
    assert (len(page["events"]), page["next_cursor"], page["has_more"]) == (100, 230, False)


def test_page_past_the_end_keeps_the_cursor(client: httpx.Client) -> None:
    """Past the last event the page is empty and next_cursor equals the cursor."""
    page = client.get(FEED, params={"cursor": 500}).json()
    assert page == {"events": [], "next_cursor": 500, "has_more": False}


def test_default_limit_is_one_hundred(client: httpx.Client) -> None:
    """Without parameters the feed starts at the beginning, 100 events at a time."""
    page = client.get(FEED).json()
    assert [event["seq"] for event in page["events"]] == list(range(1, 101))


def test_new_events_appear_after_the_cursor(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """Events generated later are served after the last cursor."""
    simulator.generate(3)
    page = client.get(FEED, params={"cursor": 230}).json()
    assert [event["seq"] for event in page["events"]] == [231, 232, 233]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"cursor": -1}, {"cursor": "x"}])
def test_bad_parameters_are_400(client: httpx.Client, params: dict[str, Any]) -> None:
    """Out-of-range or non-integer cursor and limit are refused with a JSON error."""
    response = client.get(FEED, params=params)
    assert response.status_code == 400
    assert "error" in response.json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": BEARER}])
def test_bad_token_is_401(simulator: ApprovalSimulator, headers: dict[str, str]) -> None:
    """A missing, wrong or non-bearer token is refused with a JSON error."""
    response = httpx.get(simulator.start() + FEED, headers=headers)
    assert response.status_code == 401
    assert "error" in response.json()


def test_control_plane_generates_and_lists(simulator: ApprovalSimulator) -> None:
    """POST /_sim/generate appends events (defective ones included); GET /_sim/events lists all."""
    url = simulator.start()
    new = httpx.post(f"{url}/_sim/generate", json={"events": 20, "invalid_rate": 0.5}).json()["events"]
    assert [event["seq"] for event in new] == list(range(231, 251))
    assert httpx.get(f"{url}/_sim/events").json()["events"] == simulator.events()


def test_control_plane_rejects_a_bad_generate_request(simulator: ApprovalSimulator) -> None:
    """A generate request with a bad rate is a 400 and adds nothing."""
    response = httpx.post(f"{simulator.start()}/_sim/generate", json={"events": 5, "invalid_rate": 2})
    assert response.status_code == 400
    assert len(simulator.events()) == 230


@pytest.mark.parametrize("status", [429, 503])
def test_injected_backpressure_carries_retry_after(client: httpx.Client, status: int) -> None:
    """With error_rate 1 every feed request fails with the chosen status and Retry-After 1."""
    assert client.post("/_sim/faults", json={"error_rate": 1.0, "error_status": status}).status_code == 204
    response = client.get(FEED)
    assert (response.status_code, response.headers["Retry-After"]) == (status, "1")


def test_injected_500_has_no_retry_after(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """Other injected statuses come without Retry-After."""
    simulator.set_faults(error_rate=1.0, error_status=500)
    response = client.get(FEED)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_error_rate_fails_about_that_share(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """With error_rate 0.3 roughly three requests in ten fail."""
    simulator.set_faults(error_rate=0.3)
    failures = sum(client.get(FEED, params={"limit": 1}).status_code == 503 for _ in range(200))
    assert 35 <= failures <= 85


def test_outage_fails_everything_until_it_ends(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """During an outage every request is a 503 with Retry-After; afterwards the feed answers again."""
    simulator.set_faults(outage_s=0.3)
    assert [client.get(FEED).status_code for _ in range(3)] == [503, 503, 503]
    assert client.get(FEED).headers["Retry-After"] == "1"
    time.sleep(0.35)
    assert client.get(FEED).status_code == 200


def test_latency_delays_feed_responses(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """latency_ms delays the feed but not the control plane."""
    simulator.set_faults(latency_ms=200)
    started = time.perf_counter()
    assert client.get(FEED).status_code == 200
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    client.get("/_sim/events")
    assert time.perf_counter() - started < 0.2


def test_set_faults_without_arguments_clears_them(simulator: ApprovalSimulator, client: httpx.Client) -> None:
    """Calling set_faults() with no arguments restores normal service."""
    simulator.set_faults(error_rate=1.0, outage_s=30)
    simulator.set_faults()
    assert client.get(FEED).status_code == 200


@pytest.mark.parametrize("plan", [{"error_rate": 2}, {"error_status": 200}, {"unknown": 1}])
def test_bad_fault_plan_is_400(client: httpx.Client, plan: dict[str, Any]) -> None:
    """Fault plans out of range or with unknown keys are refused."""
    assert client.post("/_sim/faults", json=plan).status_code == 400


def test_unknown_path_is_404_and_wrong_method_405(client: httpx.Client) -> None:
    """Unknown resources are 404; a known one with the wrong method is 405 with Allow."""
    assert client.get("/api/v2/nothing").status_code == 404
    response = client.post(FEED, json={})
    assert (response.status_code, response.headers["Allow"]) == (405, "GET")


def test_stop_releases_the_port() -> None:
    """After stop, even a kept-alive client can no longer reach the simulator."""
    simulator = ApprovalSimulator(token=BEARER)
    url = simulator.start()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {BEARER}"}) as client:
        assert client.get(FEED).status_code == 200
        simulator.stop()
        with pytest.raises(httpx.TransportError):
            client.get(FEED)
