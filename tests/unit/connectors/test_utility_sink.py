import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered
from connectors.runtime.metrics import Metrics
from connectors.settings import BearerAuth, RetrySettings, UtilitySettings
from connectors.utility.sink import UtilitySink
from routing.errors import DataError
from schemas import Codec
from tests.support import make_task

UTILITY = "yantai-water"


def record(offset: int, utility: str = UTILITY, project: int = 0) -> ConsumerRecord:
    task = make_task(utility, offset, project=f"2026-370602-47-01-{project:06d}")
    value = Codec.default().encode("UtilityTask", dict(task))
    key = task["project_code"].encode()  # type: ignore[union-attr]
    return ConsumerRecord("tasks", 0, -1, offset, 0, 0, key, value, [], None, 0, 0, 0)


def sink(handler: Callable[[httpx.Request], httpx.Response], stop: threading.Event | None = None) -> UtilitySink:
    settings = UtilitySettings(
        id=UTILITY,
        endpoint="http://water.test/v1/tasks",
        auth=BearerAuth(type="bearer", token="t"),
        max_in_flight=4,
        retry=RetrySettings(initial_backoff_s=0.001, max_backoff_s=0.005),
    )
    return UtilitySink(
        settings,
        input_topic="tasks",
        status_topic="status",
        codec=Codec.default(),
        metrics=Metrics(CollectorRegistry()),
        stop=stop or threading.Event(),
        transport=httpx.MockTransport(handler),
    )


def test_tasks_of_other_utilities_are_filtered_without_a_request() -> None:
    """A task for another utility is skipped with a reason and never sent."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(201)

    outcomes = list(sink(handler).process([record(1), record(2, utility="jinan-heat")]))
    assert [o.filtered_reason for o in outcomes if isinstance(o, Delivered)] == [None, "other_utility"]
    assert sent == [f"{UTILITY}-00001"]


def test_body_is_the_task_as_json() -> None:
    """The request body is the task with ISO-8601 UTC times."""
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(201)

    list(sink(handler).process([record(7)]))
    assert (bodies[0]["task_id"], bodies[0]["created_at"]) == (f"{UTILITY}-00007", "2026-11-25T02:00:00.000Z")


def test_one_project_in_retries_does_not_hold_up_the_others() -> None:
    """While project 0's task keeps failing for a while, other projects' tasks are delivered meanwhile."""
    delivered_at: dict[str, float] = {}
    attempts: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        attempts[key] = attempts.get(key, 0) + 1
        if key.endswith("00000") and attempts[key] < 20:
            return httpx.Response(503)
        delivered_at[key] = time.monotonic()
        return httpx.Response(201)

    records = [record(0, project=0), *(record(n, project=n) for n in range(1, 6))]
    outcomes = list(sink(handler).process(records))
    assert [type(o) for o in outcomes] == [Delivered] * 6
    stuck = delivered_at[f"{UTILITY}-00000"]
    assert all(delivered_at[f"{UTILITY}-{n:05d}"] < stuck for n in range(1, 6))


def test_one_projects_tasks_keep_their_order() -> None:
    """Tasks of one project reach the utility in offset order."""
    order: list[str] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            order.append(request.headers["Idempotency-Key"])
        return httpx.Response(201)

    records = [record(n, project=n % 2) for n in range(10)]
    list(sink(handler).process(records))
    assert [k for k in order if int(k[-5:]) % 2 == 0] == [f"{UTILITY}-{n:05d}" for n in range(0, 10, 2)]


def test_refused_task_is_a_data_error_in_its_place() -> None:
    """A 422 becomes that record's DataError; the others are delivered."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422 if request.headers["Idempotency-Key"].endswith("2") else 201, text="no")

    outcomes = list(sink(handler).process([record(1, project=1), record(2, project=2), record(3, project=3)]))
    assert [type(o) for o in outcomes] == [Delivered, DataError, Delivered]


def test_shutdown_during_retries_stops_the_batch_at_that_record() -> None:
    """Outcomes before the interrupted record are yielded; then StopRequested, so the rest stays uncommitted."""
    stop = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Idempotency-Key"].endswith("00002"):
            stop.set()
            return httpx.Response(503)
        return httpx.Response(201)

    outcomes = sink(handler, stop).process([record(1, project=1), record(2, project=1), record(3, project=1)])
    assert isinstance(next(outcomes), Delivered)
    with pytest.raises(StopRequested):
        next(outcomes)


def test_accepted_task_is_reported_received_with_the_task() -> None:
    """Each delivered task yields a RECEIVED TaskStatus keyed by task id, carrying the task for the ledger."""
    outcomes = list(sink(lambda request: httpx.Response(201)).process([record(4)]))
    assert isinstance(outcomes[0], Delivered)
    (output,) = outcomes[0].outputs
    name, status = Codec.default().decode(output.value)
    assert (output.topic, output.key, name) == ("status", f"{UTILITY}-00004".encode(), "TaskStatus")
    assert (status["stage"], status["reporter"], status["task"]["task_id"]) == ("RECEIVED", "sink", f"{UTILITY}-00004")
