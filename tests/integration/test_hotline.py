"""12345 hotline on the real broker: signed pushes and the pulled feeds → topics → COMPLAINT tasks, DLQ, resume."""

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.hotline.pull_source import HotlinePullSource
from connectors.hotline.push import RETURN_VISITS_PATH, WORK_ORDERS_PATH, build_push
from connectors.hotline.router import HotlineRouter
from connectors.hotline.settings import HotlinePushSettings
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.runtime.source_runner import SourceRunner, read_cursor
from connectors.runtime.stage import StageLoop
from connectors.settings import HotlinePullSettings, KafkaSettings, RetrySettings
from routing.hotline import complaint_task_id
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.hotline import UNSERVED_REGION, HotlinePlatform, make_work_orders, push_records
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
SECRET = "integration-hotline-0123456789"
TOKEN = "hotline-feed-token-0123456789"
CODEC = Codec.default()
AREAS = load_service_areas(CONFIG / "service-areas.yaml")
SERVICES = {"供水": "WATER", "自来水": "WATER", "燃气": "GAS", "天然气": "GAS", "供热": "HEAT", "暖气": "HEAT"}


@dataclass
class Topics:
    orders: str
    visits: str
    dlq: str
    tasks: dict[str, str]  # utility → its task topic


@dataclass
class Pipeline:
    url: str
    topics: Topics
    logs: io.StringIO
    stop: threading.Event
    loop: StageLoop


def topics_for(kafka: KafkaSettings, prefix: str) -> Topics:
    tasks = {utility: f"{prefix}ubridge.tasks.{utility}.v1" for utility in sorted(AREAS.utilities())}
    topics = Topics(
        f"{prefix}ubridge.hotline.work-orders.v1",
        f"{prefix}ubridge.hotline.return-visits.v1",
        f"{prefix}ubridge.dlq.hotline-router.v1",
        tasks,
    )
    ensure_topics(kafka, [TopicSpec(t, 3) for t in (topics.orders, topics.visits, topics.dlq, *tasks.values())])
    return topics


def utility_of(order: dict[str, Any]) -> str | None:
    return AREAS.utility_for(order["xzqhdm"], SERVICES[order["ywlb"]])  # type: ignore[arg-type]


@pytest.fixture
def pipeline(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Pipeline]:
    """The push intake on a free port and the router stage, logging JSON into a buffer."""
    logs = io.StringIO()
    configure_logging(json=True, level="debug", stream=logs)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    topics = topics_for(kafka, unique_prefix)
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    settings = HotlinePushSettings(secret=SecretStr(SECRET), port=0)
    intake = build_push(
        settings,
        kafka=kafka,
        work_orders_topic=topics.orders,
        return_visits_topic=topics.visits,
        metrics=metrics,
        stop=stop,
    )
    router = HotlineRouter(input_topic=topics.orders, task_topic=topics.tasks.__getitem__, areas=AREAS, codec=CODEC)
    consumer = make_consumer(kafka, group_id=f"{unique_prefix}hotline-router")
    loop = StageLoop(
        router, consumer=consumer, producer=make_producer(kafka), dlq_topic=topics.dlq, metrics=metrics, stop=stop
    )
    threads = [threading.Thread(target=intake.run, daemon=True), threading.Thread(target=loop.run, daemon=True)]
    for thread in threads:
        thread.start()
    yield Pipeline(f"http://127.0.0.1:{intake.port}", topics, logs, stop, loop)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()


def tasks_on(bootstrap: str, topics: Topics) -> list[tuple[str, dict[str, Any]]]:
    """(utility of the topic, task) for every task on every utility's topic."""
    found = []
    for utility, topic in topics.tasks.items():
        found += [(utility, dict(CODEC.decode_as("UtilityTask", r.value))) for r in read_topic(bootstrap, topic)]
    return found


def test_pushed_orders_become_complaint_tasks_of_their_utility(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """Signed orders (UTF-8 and GBK) become one COMPLAINT task each on the serving utility's topic; unserved → DLQ."""
    orders = make_work_orders(24, seed=5, regions=["370602", "370685", "370102", "371502"])
    orders += make_work_orders(2, seed=6, regions=[UNSERVED_REGION])
    url = pipeline.url + WORK_ORDERS_PATH
    results = push_records(url, SECRET, orders[:12], charset="gbk") + push_records(url, SECRET, orders[12:])
    assert [r.status for r in results] == [202] * len(orders)
    assert utility_of(orders[0]) is not None
    resent = {**orders[0], "sjid": "EV-RESENT-1"}  # the platform sends an order again under a new event
    assert [r.status for r in push_records(url, SECRET, [resent])] == [202]
    (late,) = push_records(url, SECRET, [{**orders[1], "gdbh": "SD12345-BAD", "fkqx": orders[1]["pdsj"]}])
    assert (late.status, late.body["field"]) == (422, "fkqx")
    (unknown,) = push_records(url, SECRET, [{**orders[1], "gdbh": "SD12345-PAI", "ywlb": "排水"}])
    assert (unknown.status, unknown.body["field"]) == (422, "ywlb")
    (forged,) = push_records(url, "not-the-secret-at-all!", orders[:1])
    assert forged.status == 401

    served = [o for o in orders if utility_of(o) is not None]
    unserved = sorted(o["gdbh"].encode() for o in orders if utility_of(o) is None)
    assert {o["gdbh"].encode() for o in orders[-2:]} <= set(unserved)  # 青岛's, and 济南's gas, 聊城's heat
    wait_until(
        lambda: (
            len(tasks_on(kafka_bootstrap, pipeline.topics)) >= len(served) + 1
            and len(read_topic(kafka_bootstrap, pipeline.topics.dlq)) >= len(unserved)
        ),
        timeout_s=90,
        what="tasks and dead letters",
    )
    pipeline.stop.set()

    tasks = tasks_on(kafka_bootstrap, pipeline.topics)
    assert all(utility == task["utility_id"] and task["kind"] == "COMPLAINT" for utility, task in tasks)
    by_order = {task["work_order_id"]: task for _, task in tasks}
    assert sorted(by_order) == sorted(o["gdbh"] for o in served)
    repeat = [task for _, task in tasks if task["work_order_id"] == orders[0]["gdbh"]]
    assert len(repeat) == 2 and repeat[0]["task_id"] == repeat[1]["task_id"]  # a repeat, one task id
    for order in served:
        task = by_order[order["gdbh"]]
        assert task["task_id"] == complaint_task_id(order["gdbh"], task["utility_id"], task["service"])
        assert (task["utility_id"], task["complaint"]) == (utility_of(order), order["sqnr"])
        assert task["answer_due"] is not None and task["answer_due"] > task["occurred_at"]
        assert task["contact_mobile"] == order["ldrdh"]
    letters = read_topic(kafka_bootstrap, pipeline.topics.dlq)
    assert sorted(r.key for r in letters) == unserved
    assert all("no utility serves region" in error_context(r.headers)["message"] for r in letters)

    text = pipeline.logs.getvalue()
    assert "work_order_routed" in text and "request_rejected" in text
    assert all(json.loads(line) for line in text.splitlines())
    mobiles = {o["ldrdh"] for o in orders if o["ldrdh"]}
    assert not [m for m in mobiles if m in text]


def test_pushed_return_visits_land_on_their_topic(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """A signed return visit is on the return-visit topic, keyed by its order; a bad result is refused."""
    visit = {
        "sjid": "EV-HF-1",
        "hfbh": "HF-1",
        "gdbh": "SD12345-20261125-000123",
        "hfjg": "不满意",
        "hfsj": "2026-12-01 10:12:00",
        "hfsm": "问题未解决",
    }
    url = pipeline.url + RETURN_VISITS_PATH
    assert [r.status for r in push_records(url, SECRET, [visit])] == [202]
    (bad,) = push_records(url, SECRET, [{**visit, "hfjg": "还行"}])
    assert (bad.status, bad.body["field"]) == (422, "hfjg")
    (records,) = [read_topic(kafka_bootstrap, pipeline.topics.visits)]
    assert [(r.key, CODEC.decode_as("ReturnVisit", r.value)["result"]) for r in records] == [
        (b"SD12345-20261125-000123", "UNSATISFIED")
    ]


def run_pull(kafka: KafkaSettings, prefix: str, topics: Topics, base_url: str, until: int) -> str | None:
    """Run the pull source from its committed cursor until ``until`` orders are on the topic; the cursor then."""
    offsets = f"{prefix}offsets"
    reader = make_consumer(kafka, group_id=None)
    try:
        start = read_cursor(reader, offsets, "hotline-pull")
    finally:
        reader.close()
    settings = HotlinePullSettings(base_url=base_url, token=SecretStr(TOKEN), page_size=7)
    source = HotlinePullSource(
        settings,
        work_orders_topic=topics.orders,
        return_visits_topic=topics.visits,
        dlq_topic=f"{prefix}dlq.hotline-pull",
    )
    stop = threading.Event()
    runner = SourceRunner(
        source,
        producer=make_producer(kafka, transactional_id=f"{prefix}hotline-pull"),
        offsets_topic=offsets,
        poll_interval_s=0.05,
        retry=RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.2),
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        start_cursor=start,
        dlq_topic=f"{prefix}dlq.hotline-pull",
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: len(read_topic(kafka.bootstrap, topics.orders)) >= until and not runner.state.failed,
            timeout_s=60,
            what=f"{until} pulled orders",
        )
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    return runner.cursor


def test_pull_source_resumes_from_its_cursor_without_loss_or_repeat(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Orders and visits pulled across a restart land exactly once each; a bad entry goes to the DLQ with reason."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    topics = topics_for(kafka, unique_prefix)
    ensure_topics(
        kafka,
        [TopicSpec(f"{unique_prefix}offsets", 1, compacted=True), TopicSpec(f"{unique_prefix}dlq.hotline-pull", 1)],
    )
    platform = HotlinePlatform(token=TOKEN)
    base = platform.start()
    try:
        orders = make_work_orders(30, seed=8)
        platform.publish(orders[:20])
        platform.publish([{**orders[0], "gdbh": "SD12345-NO-DEADLINE", "fkqx": None}])
        first = run_pull(kafka, unique_prefix, topics, base, until=20)
        assert first is not None and first.startswith("21:")
        answered = orders[3]["gdbh"]
        response = httpx.post(
            f"{base}/api/v1/work-orders/{answered}/answer",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={
                "order_id": answered,
                "result": "已修复",
                "answered_at": "2026-11-26T10:00:00+08:00",
                "utility_id": "u",
            },
        )
        assert response.json() == {"order_id": answered, "recorded": True, "duplicate": False}
        platform.return_visit(answered, "SATISFIED", comment="很及时")
        platform.publish(orders[20:])
        second = run_pull(kafka, unique_prefix, topics, base, until=30)
        assert second == "31:1"
    finally:
        platform.stop()

    pulled = [r.key.decode() for r in read_topic(kafka_bootstrap, topics.orders)]
    assert sorted(pulled) == sorted(o["gdbh"] for o in orders)
    visits = [CODEC.decode_as("ReturnVisit", r.value) for r in read_topic(kafka_bootstrap, topics.visits)]
    assert [(v["order_id"], v["result"], v["source"]) for v in visits] == [(answered, "SATISFIED", "hotline-pull")]
    (letter,) = read_topic(kafka_bootstrap, f"{unique_prefix}dlq.hotline-pull")
    context = error_context(letter.headers)
    assert (context["field"], "fkqx is required" in context["message"]) == ("fkqx", True)
