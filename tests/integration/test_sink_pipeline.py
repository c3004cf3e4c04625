import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from connectors.runtime.kafka import TopicSpec, ensure_topics, make_admin, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.settings import BearerAuth, KafkaSettings, RetrySettings, UtilitySettings
from connectors.utility.pipeline import SinkLoop
from connectors.utility.revisions import KafkaRevisionReader
from connectors.utility.sink import UtilitySink
from routing.records import UtilityTask
from schemas import Codec
from tests.support import make_task, read_topic, wait_until
from tests.utility_endpoint import Endpoint, Handler

pytestmark = pytest.mark.integration

UTILITY = "yantai-water"
CODEC = Codec.default()


@dataclass
class Topics:
    kafka: KafkaSettings
    tasks: str
    status: str
    revisions: str
    dlq: str
    group: str


@pytest.fixture
def topics(kafka_bootstrap: str, unique_prefix: str) -> Topics:
    """One-partition task topic (one order for every project: the strictest case) and the sink's others."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    made = Topics(kafka, *(f"{unique_prefix}{n}" for n in ("tasks", "status", "revisions", "dlq", "sink")))
    specs = [TopicSpec(made.tasks, 1), TopicSpec(made.status, 1), TopicSpec(made.dlq, 1)]
    ensure_topics(kafka, [*specs, TopicSpec(made.revisions, 1, compacted=True)])
    return made


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """The utility's endpoint."""
    served = Endpoint()
    yield served
    served.close()


class Running:
    """A pipelined sink over ``topics``, in a thread, until :meth:`stop`."""

    def __init__(self, topics: Topics, endpoint: Endpoint, handler: Handler) -> None:
        endpoint.handler = handler
        self.stop_event = threading.Event()
        settings = UtilitySettings(
            id=UTILITY,
            endpoint=endpoint.url,
            auth=BearerAuth(type="bearer", token="t"),
            retry=RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.05),
        )
        metrics = Metrics(CollectorRegistry())
        sink = UtilitySink(
            settings,
            input_topic=topics.tasks,
            status_topic=topics.status,
            revisions_topic=topics.revisions,
            revisions=KafkaRevisionReader(topics.kafka, topics.revisions, utility=UTILITY),
            codec=CODEC,
            metrics=metrics,
            stop=self.stop_event,
        )
        self.loop = SinkLoop(
            sink,
            consumer=make_consumer(topics.kafka, group_id=topics.group),
            producer=make_producer(topics.kafka),
            dlq_topic=topics.dlq,
            metrics=metrics,
            stop=self.stop_event,
        )
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        """Stop and return the seconds the drain took."""
        started = time.monotonic()
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        assert not self.loop.state.failed
        return time.monotonic() - started


def publish(topics: Topics, tasks: list[UtilityTask]) -> None:
    """Write ``tasks`` in order, keyed by project."""
    producer = make_producer(topics.kafka)
    for task in tasks:
        producer.send(topics.tasks, key=(task["project_code"] or "").encode(), value=CODEC.encode("UtilityTask", task))
    producer.flush()
    producer.close()


def committed(topics: Topics) -> int:
    """The sink group's committed offset of the task partition (0 before its first commit)."""
    admin = make_admin(topics.kafka)
    try:
        offsets = admin.list_group_offsets({topics.group: None})
    finally:
        admin.close()
    found = offsets.get(topics.group, {}).get(TopicPartition(topics.tasks, 0))
    return 0 if found is None else int(found.offset)


def project_task(project: int, n: int, note: str = "") -> UtilityTask:
    """Task ``n`` of ``project``; ``note`` changes its content (the next revision)."""
    made = make_task(UTILITY, n, project=f"2026-370602-47-01-{project:06d}")
    return {**made, "project_name": (made["project_name"] or "") + note}


def received_tasks(topics: Topics) -> list[str]:
    """Task id of every RECEIVED the sink reported."""
    statuses = read_topic(topics.kafka.bootstrap, topics.status)
    return [CODEC.decode_as("TaskStatus", r.value)["task_id"] for r in statuses]


def test_a_slow_delivery_holds_back_neither_later_batches_nor_the_commit_of_anything_but_itself(
    topics: Topics, endpoint: Endpoint
) -> None:
    """Project 0's slow task does not delay tasks of other projects polled later; the commit stays at it."""
    release = threading.Event()
    arrived: list[str] = []
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        with lock:
            arrived.append(key)
        if key == f"{UTILITY}-00000:1":
            release.wait(timeout=30)
        return httpx.Response(201)

    running = Running(topics, endpoint, handler)
    try:
        publish(topics, [project_task(0, 0)])
        wait_until(lambda: len(arrived) == 1, timeout_s=30, what="the slow task on the wire")
        publish(topics, [project_task(p, p) for p in range(1, 21)])  # a later poll: other projects
        wait_until(lambda: len(arrived) == 21, timeout_s=30, what="the other projects' tasks")
        time.sleep(0.5)  # commits are due every 100 ms: any that would pass the slow task has happened
        assert committed(topics) == 0
        assert len(received_tasks(topics)) == 20  # their statuses are out, the slow one's is not
        release.set()
        wait_until(lambda: committed(topics) == 21, timeout_s=30, what="the commit past everything")
    finally:
        release.set()
        running.stop()
    assert sorted(received_tasks(topics)) == [f"{UTILITY}-{n:05d}" for n in range(21)]


def test_each_projects_tasks_arrive_in_order_while_projects_interleave(topics: Topics, endpoint: Endpoint) -> None:
    """Five revisions of each of 12 tasks, slow and fast answers mixed: each task's revisions arrive 1..5."""
    arrived: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        task_id, revision = request.headers["Idempotency-Key"].rsplit(":", 1)
        time.sleep(0.02 if int(task_id[-5:]) % 3 == 0 else 0.0)
        with lock:
            arrived.setdefault(task_id, []).append(int(revision))
        return httpx.Response(201)

    running = Running(topics, endpoint, handler)
    try:
        publish(topics, [project_task(p, p, note=f"v{v}") for v in range(5) for p in range(12)])
        wait_until(lambda: committed(topics) == 60, timeout_s=60, what="every revision committed")
    finally:
        running.stop()
    assert arrived == {f"{UTILITY}-{p:05d}": [1, 2, 3, 4, 5] for p in range(12)}


def test_a_stop_finishes_the_deliveries_on_the_wire_and_commits_nothing_unfinished(
    topics: Topics, endpoint: Endpoint
) -> None:
    """Stopped with a delivery on the wire and one retrying: the first finishes, the retried one stays uncommitted."""
    on_wire = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        if key.startswith(f"{UTILITY}-00001:"):
            on_wire.set()
            time.sleep(1.0)
            return httpx.Response(201)
        if key.startswith(f"{UTILITY}-00002:"):
            return httpx.Response(503)  # retried until the stop
        return httpx.Response(201)

    running = Running(topics, endpoint, handler)
    try:
        publish(topics, [project_task(0, 0), project_task(2, 2), project_task(1, 1), project_task(3, 3)])
        wait_until(on_wire.is_set, timeout_s=30, what="the slow delivery on the wire")
        wait_until(lambda: len(received_tasks(topics)) == 2, timeout_s=30, what="the quick ones reported")
    finally:
        drained_s = running.stop()
    assert drained_s < 10
    # offset 1 (task 2, retrying) was never delivered: nothing from it on is committed, though 2 and 3 were done
    assert committed(topics) == 1
    assert sorted(received_tasks(topics)) == [f"{UTILITY}-{n:05d}" for n in (0, 1, 3)]
