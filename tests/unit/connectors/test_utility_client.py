import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.runtime.errors import RetriableError, StopRequested
from connectors.runtime.metrics import Metrics
from connectors.settings import BearerAuth, RetrySettings, UtilitySettings
from connectors.utility.client import UtilityClient
from routing.errors import DataError
from tests.utility_endpoint import Endpoint

Handler = Callable[[httpx.Request], httpx.Response]


_endpoint: list[Endpoint] = []


@pytest.fixture(autouse=True)
def endpoint() -> Iterator[Endpoint]:
    """The utility's endpoint for this test."""
    served = Endpoint()
    _endpoint.append(served)
    yield served
    _endpoint.pop().close()


def settings(max_elapsed_s: float | None = None) -> UtilitySettings:
    return UtilitySettings(
        id="yantai-water",
        endpoint=_endpoint[-1].url,
        auth=BearerAuth(type="bearer", token="s3cret"),
        retry=RetrySettings(initial_backoff_s=0.001, max_backoff_s=0.01, max_elapsed_s=max_elapsed_s),
    )


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def client(
    handler: Handler, *, stop: threading.Event | None = None, **kw: float | None
) -> tuple[UtilityClient, Metrics]:
    metrics = Metrics(CollectorRegistry())
    _endpoint[-1].handler = handler
    return UtilityClient(settings(**kw), metrics=metrics, stop=stop or threading.Event()), metrics


def deliver(utility: UtilityClient, task_id: str, revision: int, body: bytes) -> int:
    """``utility.deliver`` run to its end in an event loop of its own, the client closed after it."""

    async def once() -> int:
        try:
            return await utility.deliver(task_id, revision, body)
        finally:
            await utility.close()

    return asyncio.run(once())


def recorded(waits: list[float]) -> Callable[[float], Awaitable[None]]:
    """A pause that only notes how long it was asked to be."""

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return sleep


def test_first_success_needs_no_retry() -> None:
    """A 201 is delivered at once, with task id:revision as Idempotency-Key and the bearer token."""
    handler, seen = scripted(httpx.Response(201))
    utility, _ = client(handler)
    assert deliver(utility, "task-1", 3, b"{}") == 0
    assert (seen[0].headers["Idempotency-Key"], seen[0].headers["Authorization"]) == (
        "task-1:3",
        "Bearer s3cret",
    )


@pytest.mark.parametrize(
    ("answer", "revision"),
    [(b'{"status": "duplicate"}', 1), (b'{"status": "duplicate", "revision": 4}', 4), (b"not json", 2), (b"", 2)],
)
def test_a_duplicate_of_the_same_revision_is_delivered(answer: bytes, revision: int) -> None:
    """A repeat of the revision sent (a lost acknowledgement) is delivered; an unreadable 2xx body too."""
    handler, _ = scripted(httpx.Response(200, content=answer))
    utility, _ = client(handler)
    assert deliver(utility, "task-1", revision, b"{}") == 0


def test_a_duplicate_of_another_revision_is_a_data_error() -> None:
    """A duplicate answer to revision 3 naming revision 1: the utility deduplicated on the task id; not delivered."""
    handler, _ = scripted(httpx.Response(200, json={"status": "duplicate", "revision": 1}))
    utility, _ = client(handler)
    with pytest.raises(DataError, match="answered duplicate to revision 3 naming revision 1") as caught:
        deliver(utility, "task-1", 3, b"{}")
    assert caught.value.field == "revision"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retriable_statuses_are_retried(status: int) -> None:
    """408, 429 and 5xx are retried until the utility accepts."""
    handler, seen = scripted(httpx.Response(status), httpx.Response(status), httpx.Response(201))
    utility, metrics = client(handler)
    assert deliver(utility, "task-1", 1, b"{}") == 2
    assert len(seen) == 3
    assert (
        metrics.registry.get_sample_value(
            "ubridge_delivery_seconds_count", {"utility": "yantai-water", "outcome": "retriable"}
        )
        == 2
    )


def test_transport_errors_are_retried() -> None:
    """A refused connection is retried like a 503."""
    handler, _ = scripted(httpx.ConnectError("refused"), httpx.Response(200))
    utility, _ = client(handler)
    assert deliver(utility, "task-1", 1, b"{}") == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_data_errors(status: int) -> None:
    """Any other 4xx is final: a DataError for the dead-letter topic, no retry."""
    handler, seen = scripted(httpx.Response(status, text="bad field"))
    utility, _ = client(handler)
    with pytest.raises(DataError, match=f"refused the task with {status}: bad field"):
        deliver(utility, "task-1", 1, b"{}")
    assert len(seen) == 1


def test_retry_after_is_honoured() -> None:
    """A 429 with Retry-After waits that long before the next try."""
    waits: list[float] = []
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "0.004"}), httpx.Response(201))
    utility, _ = client(handler)
    utility._sleep = recorded(waits)  # type: ignore[method-assign]
    deliver(utility, "task-1", 1, b"{}")
    assert waits == [0.004]


def test_retry_after_wins_over_the_backoff_cap_up_to_its_own_ceiling() -> None:
    """A utility asking for 5 s (backoff cap 0.01 s) waits 5 s; one asking for a day waits max_retry_after_s."""
    waits: list[float] = []
    handler, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "5"}),
        httpx.Response(503, headers={"Retry-After": "86400"}),
        httpx.Response(201),
    )
    utility, _ = client(handler)
    utility._sleep = recorded(waits)  # type: ignore[method-assign]
    deliver(utility, "task-1", 1, b"{}")
    assert waits == [5.0, 300.0]


def test_backoff_is_capped() -> None:
    """Exponential backoff never waits longer than max_backoff_s."""
    waits: list[float] = []
    handler, _ = scripted(*([httpx.Response(503)] * 12), httpx.Response(201))
    utility, _ = client(handler)
    utility._sleep = recorded(waits)  # type: ignore[method-assign]
    deliver(utility, "task-1", 1, b"{}")
    assert len(waits) == 12
    assert max(waits) <= 0.01


def test_stop_interrupts_retrying() -> None:
    """Shutdown during an outage gives the record up, uncommitted, instead of hanging."""
    stop = threading.Event()
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()
        return httpx.Response(503)

    utility, _ = client(handler, stop=stop)
    with pytest.raises(StopRequested):
        deliver(utility, "task-1", 1, b"{}")
    assert calls == 3


def test_max_elapsed_gives_up_with_retriable_error() -> None:
    """With max_elapsed_s set, an endless outage ends in RetriableError."""
    handler, _ = scripted(httpx.Response(503))
    utility, _ = client(handler, max_elapsed_s=0.05)
    with pytest.raises(RetriableError, match="answered 503"):
        deliver(utility, "task-1", 1, b"{}")
