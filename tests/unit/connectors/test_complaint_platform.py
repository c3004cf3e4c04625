"""The answer (反馈) to the 12345 platform: retried on 5xx and transport errors, refused for good on 4xx."""

import threading
from datetime import UTC, datetime

import httpx
import pytest

from connectors.complaints.platform import PlatformClient
from connectors.complaints.settings import HotlinePlatformSettings
from connectors.runtime.errors import StopRequested
from routing.errors import DataError
from simulators.hotline import HotlinePlatform, make_work_orders

ANSWERED = datetime(2026, 11, 25, 2, tzinfo=UTC)
SETTINGS = HotlinePlatformSettings(url="http://platform/", token="t0ken", attempts=3, backoff_s=0)


def client(
    answers: list[int | Exception], seen: list[httpx.Request], stop: threading.Event | None = None
) -> PlatformClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0) if answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={})

    return PlatformClient(SETTINGS, stop=stop or threading.Event(), transport=httpx.MockTransport(handle))


def send(platform: PlatformClient) -> int:
    return platform.send_answer(order_id="GD-1", utility_id="liaocheng-water", answer="已处理", answered_at=ANSWERED)


def test_a_503_is_retried_with_the_same_idempotency_key() -> None:
    """503 then 200: two tries, one URL, the bearer token, the same Idempotency-Key, the contract's JSON."""
    seen: list[httpx.Request] = []
    assert send(client([503], seen)) == 2
    assert {str(r.url) for r in seen} == {"http://platform/api/v1/work-orders/GD-1/answer"}
    assert {r.headers["Idempotency-Key"] for r in seen} == {f"GD-1:{ANSWERED.isoformat()}"}
    assert seen[0].headers["Authorization"] == "Bearer t0ken"
    assert httpx.Response(200, content=seen[0].content).json() == {
        "order_id": "GD-1",
        "utility_id": "liaocheng-water",
        "result": "已处理",
        "answered_at": ANSWERED.isoformat(),
    }


def test_a_4xx_is_refused_at_once() -> None:
    """400: no retry, a DataError carrying the platform's status for the dead letter."""
    seen: list[httpx.Request] = []
    with pytest.raises(DataError, match="HTTP 400"):
        send(client([400], seen))
    assert len(seen) == 1


def test_failing_every_try_is_a_data_error_naming_the_tries() -> None:
    """Connection refused three times: given up after the configured tries, not blocking forever."""
    seen: list[httpx.Request] = []
    failures: list[int | Exception] = [httpx.ConnectError("refused")] * 3
    with pytest.raises(DataError, match="after 3 tries"):
        send(client(failures, seen))
    assert len(seen) == 3


def test_a_stop_ends_the_retries_as_stop_requested() -> None:
    """With the stop set, a retriable failure stops the send so that the record stays uncommitted."""
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopRequested):
        send(client([503, 503, 503], [], stop))


def test_the_platform_simulator_takes_the_answer_as_its_contract_says() -> None:
    """The client and the platform's published contract (simulators/hotline.py) agree: the answer is recorded."""
    platform = HotlinePlatform(token="platform-token-0123456789")
    base = platform.start()
    try:
        order = make_work_orders(1, seed=3)[0]
        platform.publish([order])
        settings = HotlinePlatformSettings(url=base, token="platform-token-0123456789", attempts=2, backoff_s=0)
        sender = PlatformClient(settings, stop=threading.Event())
        try:
            tries = sender.send_answer(
                order_id=order["gdbh"],
                utility_id="yantai-water",
                answer="已派员检修，水压恢复正常",
                answered_at=ANSWERED,
            )
        finally:
            sender.close()
        assert tries == 1
        [answer] = platform.answered(order["gdbh"])
        assert (answer.result, answer.utility_id) == ("已派员检修，水压恢复正常", "yantai-water")
    finally:
        platform.stop()
