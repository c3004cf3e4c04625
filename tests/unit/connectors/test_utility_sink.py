import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import httpx
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered
from connectors.runtime.metrics import Metrics
from connectors.settings import BearerAuth, RetrySettings, UtilitySettings
from connectors.utility.sink import UtilitySink
from routing.errors import DataError
from routing.records import UtilityTask
from routing.revisions import Revision, content_digest, decode_revision
from schemas import Codec
from tests.support import make_task
from tests.utility_endpoint import Endpoint

UTILITY = "yantai-water"


def record(offset: int, utility: str = UTILITY, project: int = 0) -> ConsumerRecord:
    task = make_task(utility, offset, project=f"2026-370602-47-01-{project:06d}")
    value = Codec.default().encode("UtilityTask", dict(task))
    key = task["project_code"].encode()  # type: ignore[union-attr]
    return ConsumerRecord("tasks", 0, -1, offset, 0, 0, key, value, [], None, 0, 0, 0)


class Revisions:
    """The revision topic as a sink restores it: fixed contents per partition."""

    def __init__(self, stored: dict[int, dict[str, Revision]] | None = None) -> None:
        self.stored = stored or {}
        self.asked: list[list[int]] = []

    def read(self, partitions: Sequence[int]) -> dict[int, dict[str, Revision]]:
        """What is stored for ``partitions``."""
        self.asked.append(list(partitions))
        return {p: dict(self.stored.get(p, {})) for p in partitions}


_made: list[UtilitySink] = []
_endpoint: list[Endpoint] = []


@pytest.fixture(autouse=True)
def endpoint() -> Iterator[Endpoint]:
    """The utility's endpoint for this test; the sinks made in it are closed after it."""
    served = Endpoint()
    _endpoint.append(served)
    yield served
    while _made:
        _made.pop().close()
    _endpoint.pop().close()


def sink(
    handler: Callable[[httpx.Request], httpx.Response],
    stop: threading.Event | None = None,
    revisions: Revisions | None = None,
) -> UtilitySink:
    _endpoint[-1].handler = handler
    settings = UtilitySettings(
        id=UTILITY,
        endpoint=_endpoint[-1].url,
        auth=BearerAuth(type="bearer", token="t"),
        max_in_flight=4,
        retry=RetrySettings(initial_backoff_s=0.001, max_backoff_s=0.005),
    )
    made = UtilitySink(
        settings,
        input_topic="tasks",
        status_topic="status",
        revisions_topic="revisions",
        revisions=revisions or Revisions(),
        codec=Codec.default(),
        metrics=Metrics(CollectorRegistry()),
        stop=stop or threading.Event(),
    )
    _made.append(made)
    return made


def test_tasks_of_other_utilities_are_filtered_without_a_request() -> None:
    """A task for another utility is skipped with a reason and never sent."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(201)

    outcomes = list(sink(handler).process([record(1), record(2, utility="jinan-heat")]))
    assert [o.filtered_reason for o in outcomes if isinstance(o, Delivered)] == [None, "other_utility"]
    assert sent == [f"{UTILITY}-00001:1"]


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
        if key.endswith("00000:1") and attempts[key] < 20:
            return httpx.Response(503)
        delivered_at[key] = time.monotonic()
        return httpx.Response(201)

    records = [record(0, project=0), *(record(n, project=n) for n in range(1, 6))]
    outcomes = list(sink(handler).process(records))
    assert [type(o) for o in outcomes] == [Delivered] * 6
    stuck = delivered_at[f"{UTILITY}-00000:1"]
    assert all(delivered_at[f"{UTILITY}-{n:05d}:1"] < stuck for n in range(1, 6))


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
    assert [k for k in order if int(k[-7:-2]) % 2 == 0] == [f"{UTILITY}-{n:05d}:1" for n in range(0, 10, 2)]


def test_refused_task_is_a_data_error_in_its_place() -> None:
    """A 422 becomes that record's DataError; the others are delivered."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422 if request.headers["Idempotency-Key"].endswith("2:1") else 201, text="no")

    outcomes = list(sink(handler).process([record(1, project=1), record(2, project=2), record(3, project=3)]))
    assert [type(o) for o in outcomes] == [Delivered, DataError, Delivered]


def test_shutdown_during_retries_stops_the_batch_at_that_record() -> None:
    """Outcomes before the interrupted record are yielded; then StopRequested, so the rest stays uncommitted."""
    stop = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Idempotency-Key"].endswith("00002:1"):
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
    output, stored = outcomes[0].outputs
    name, status = Codec.default().decode(output.value)
    assert (output.topic, output.key, name) == ("status", f"{UTILITY}-00004".encode(), "TaskStatus")
    assert (status["stage"], status["reporter"], status["task"]["task_id"]) == ("RECEIVED", "sink", f"{UTILITY}-00004")
    assert status["task"]["revision"] == 1
    assert (stored.topic, stored.key, stored.partition) == ("revisions", f"{UTILITY}/{UTILITY}-00004".encode(), 0)
    assert decode_revision(stored.value).number == 1


def changed(offset: int, task: UtilityTask, partition: int = 0) -> ConsumerRecord:
    """A record at ``offset`` carrying ``task`` as it is."""
    value = Codec.default().encode("UtilityTask", dict(task))
    return ConsumerRecord("tasks", partition, -1, offset, 0, 0, b"p", value, [], None, 0, 0, 0)


def keys_and_bodies(requests: list[httpx.Request]) -> list[tuple[str, int, str]]:
    """(key, revision in the body, action in the body) of each request."""
    bodies = [json.loads(r.content) for r in requests]
    return [(r.headers["Idempotency-Key"], b["revision"], b["action"]) for r, b in zip(requests, bodies, strict=True)]


def test_create_update_cancel_are_three_revisions_with_three_keys() -> None:
    """A change (drawings arrive) and a cancellation reach the utility as revisions 2 and 3, each with its own key."""
    seen: list[httpx.Request] = []
    task = make_task(UTILITY, 1)
    drawing = {"kind": "DRAWING", "number": "T-1", "title": "总平面图", "url": None, "digest": None}
    updated = {**task, "documents": [drawing], "trigger_stage": 2}
    cancelled = {**updated, "action": "CANCEL"}
    records = [changed(n, t) for n, t in enumerate([task, updated, cancelled])]  # type: ignore[arg-type]
    outcomes = list(sink(lambda r: seen.append(r) or httpx.Response(201)).process(records))
    assert [type(o) for o in outcomes] == [Delivered] * 3
    task_id = task["task_id"]
    assert keys_and_bodies(seen) == [
        (f"{task_id}:1", 1, "CREATE"),
        (f"{task_id}:2", 2, "CREATE"),
        (f"{task_id}:3", 3, "CANCEL"),
    ]


def test_an_identical_repeat_is_filtered_without_a_request() -> None:
    """The same content routed again (new created_at, ingested_at) is a repeat: no request, no new revision."""
    seen: list[httpx.Request] = []
    task = make_task(UTILITY, 1)
    later = {**task, "created_at": task["created_at"] + timedelta(hours=1), "ingested_at": task["created_at"]}
    records = [changed(0, task), changed(1, later)]  # type: ignore[arg-type]
    outcomes = list(sink(lambda r: seen.append(r) or httpx.Response(201)).process(records))
    assert [o.filtered_reason for o in outcomes if isinstance(o, Delivered)] == [None, "repeated_revision"]
    assert len(seen) == 1


def test_revisions_are_restored_on_assignment() -> None:
    """A restarted sink continues from the stored revision: the repeat is filtered, a change is revision 5."""
    task = make_task(UTILITY, 1)
    stored = Revisions({3: {task["task_id"]: Revision(4, content_digest(task))}})
    seen: list[httpx.Request] = []
    restarted = sink(lambda r: seen.append(r) or httpx.Response(201), revisions=stored)
    restarted.on_assigned([TopicPartition("tasks", 3)])
    changed_task = {**task, "site_address": "芝罘区幸福南路20号"}
    outcomes = list(restarted.process([changed(0, task, 3), changed(1, changed_task, 3)]))  # type: ignore[arg-type]
    assert [o.filtered_reason for o in outcomes if isinstance(o, Delivered)] == ["repeated_revision", None]
    assert [r.headers["Idempotency-Key"] for r in seen] == [f"{task['task_id']}:5"]
    assert stored.asked == [[3]]
    restarted.on_revoked([TopicPartition("tasks", 3)])
    restarted.on_assigned([TopicPartition("tasks", 3)])
    assert stored.asked == [[3], [3]]


def test_a_refused_revision_keeps_its_number() -> None:
    """A refused revision is never re-sent under its key with another body: the next change takes the next one."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Idempotency-Key"])
        return httpx.Response(422 if len(seen) == 2 else 201)

    task = make_task(UTILITY, 1)
    second, third = {**task, "site_address": "二"}, {**task, "site_address": "三"}
    records = [changed(n, t) for n, t in enumerate([task, second, third])]  # type: ignore[arg-type]
    outcomes = list(sink(handler).process(records))
    assert [type(o) for o in outcomes] == [Delivered, DataError, Delivered]
    assert seen == [f"{task['task_id']}:1", f"{task['task_id']}:2", f"{task['task_id']}:3"]


@pytest.mark.parametrize(
    ("answer", "delivered"),
    [
        ({"status": "duplicate", "revision": 2}, True),
        ({"status": "duplicate", "revision": 1}, False),
        ({"status": "duplicate"}, False),
        ({"status": "updated", "revision": 2}, True),
    ],
)
def test_a_duplicate_answer_must_confirm_the_revision(answer: dict[str, object], delivered: bool) -> None:
    """A utility deduplicating on the task id answers duplicate to revision 2: that is an error, never delivered."""
    task = make_task(UTILITY, 1)
    stored = Revisions({0: {task["task_id"]: Revision(1, "0" * 32)}})
    revised = sink(lambda r: httpx.Response(200, json=answer), revisions=stored)
    revised.on_assigned([TopicPartition("tasks", 0)])
    (outcome,) = revised.process([changed(0, task)])
    assert isinstance(outcome, Delivered) is delivered
    if not delivered:
        assert isinstance(outcome, DataError) and "deduplicates on the task id" in outcome.reason


def test_a_task_record_read_again_is_never_renumbered() -> None:
    """After the group's offsets are reset, records up to the last revision's offset are repeats, whatever they say."""
    task = make_task(UTILITY, 1)
    stored = Revisions({0: {task["task_id"]: Revision(3, content_digest({**task, "action": "CANCEL"}), 5)}})  # type: ignore[typeddict-item]
    seen: list[str] = []
    replayed = sink(lambda r: seen.append(r.headers["Idempotency-Key"]) or httpx.Response(201), revisions=stored)
    replayed.on_assigned([TopicPartition("tasks", 0)])
    later = {**task, "site_address": "芝罘区幸福南路20号"}
    outcomes = list(replayed.process([changed(3, task), changed(5, task), changed(6, later)]))  # type: ignore[arg-type]
    assert [o.filtered_reason for o in outcomes if isinstance(o, Delivered)] == [
        "repeated_revision",
        "repeated_revision",
        None,
    ]
    assert seen == [f"{task['task_id']}:4"]
