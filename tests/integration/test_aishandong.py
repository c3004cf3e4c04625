"""爱山东 end to end on the real broker: signed pushes → applications topic → router stage → tasks, logs masked."""

import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.aishandong.gateway import GATEWAY_PATH, build_gateway
from connectors.aishandong.router import ApplicationRouter, KafkaProjectTable
from connectors.aishandong.rules import load_application_rules
from connectors.aishandong.settings import AishandongGatewaySettings
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.calendar import load_calendar
from routing.gonggai import normalise
from routing.records import ProjectEvent
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.aishandong import make_applications, push_applications
from simulators.approval.generator import EventGenerator
from tests.support import NOW, read_topic, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
SECRET = "integration-aishandong-0123456789"
PROJECT = "2026-370602-47-01-000123"
CODEC = Codec.default()
RULES = load_application_rules(CONFIG / "aishandong.yaml")


@dataclass
class Pipeline:
    url: str
    applications: str
    tasks: dict[str, str]  # utility → its task topic
    dlq: str
    project: ProjectEvent
    logs: io.StringIO
    stop: threading.Event
    metrics: Metrics
    loop: StageLoop


def publish_project(kafka: KafkaSettings, topic: str) -> ProjectEvent:
    vendor = EventGenerator(seed=4).generate(1)[0]
    vendor["xmdm"] = PROJECT
    project = normalise(vendor, source="test", ingested_at=NOW)
    producer = make_producer(kafka)
    producer.send(topic, key=PROJECT.encode(), value=CODEC.encode("ProjectEvent", project)).get(timeout=15)
    producer.close()
    return project


@pytest.fixture
def pipeline(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Pipeline]:
    """Gateway on a free port and the router stage (with its project table), logging JSON into a buffer."""
    logs = io.StringIO()
    configure_logging(json=True, level="debug", stream=logs)
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    names = ("canonical.applications", "canonical.project-events", "dlq.router-aishandong")
    applications, projects, dlq = (f"{unique_prefix}ubridge.{name}.v1" for name in names)
    utilities = load_service_areas(CONFIG / "service-areas.yaml").utilities()
    tasks = {utility: f"{unique_prefix}ubridge.tasks.{utility}.v1" for utility in sorted(utilities)}
    ensure_topics(kafka, [TopicSpec(t, 3) for t in (applications, projects, dlq, *tasks.values())])
    project = publish_project(kafka, projects)
    table = KafkaProjectTable(make_consumer(kafka, group_id=None), topic=projects).start()
    assert table.wait_ready(30)
    assert table.get(PROJECT) is not None
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    settings = AishandongGatewaySettings(secret=SecretStr(SECRET), port=0)
    intake = build_gateway(settings, kafka=kafka, topic=applications, metrics=metrics, stop=stop)
    router = ApplicationRouter(
        input_topic=applications,
        task_topic=tasks.__getitem__,
        areas=load_service_areas(CONFIG / "service-areas.yaml"),
        calendar=load_calendar(CONFIG / "calendar.yaml"),
        shared_materials=RULES.shared_materials,
        projects=table,
        metrics=metrics,
    )
    consumer = make_consumer(kafka, group_id=f"{unique_prefix}router-aishandong")
    loop = StageLoop(
        router, consumer=consumer, producer=make_producer(kafka), dlq_topic=dlq, metrics=metrics, stop=stop
    )
    threads = [threading.Thread(target=intake.run, daemon=True), threading.Thread(target=loop.run, daemon=True)]
    for thread in threads:
        thread.start()
    url = f"http://127.0.0.1:{intake.port}{GATEWAY_PATH}"
    yield Pipeline(url, applications, tasks, dlq, project, logs, stop, metrics, loop)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive()


def read_tasks(bootstrap: str, pipeline: Pipeline) -> list[ConsumerRecord]:
    """Every task on every utility's topic, each checked to be on its utility's own."""
    records = []
    for utility, topic in pipeline.tasks.items():
        mine = read_topic(bootstrap, topic)
        assert {CODEC.decode_as("UtilityTask", r.value)["utility_id"] for r in mine} <= {utility}
        records += mine
    return records


def served_services(app: dict[str, Any]) -> int:
    # 聊城 (3715) has water and gas utilities but no heat one in the demo table (heat: 供热, 供暖, 采暖…).
    heat = app["xzqhdm"].startswith("3715")
    return sum(1 for word in app["fwlx"] if not (heat and RULES.vocabulary.service_names[word] == "HEAT"))


def test_pushed_applications_become_tasks_and_logs_stay_masked(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """40 signed applications land on the topic once each; the router makes one task per served service."""
    apps = make_applications(40, seed=11, regions=["370602", "370685", "371502"], project_codes=[PROJECT])
    results = push_applications(pipeline.url, SECRET, apps[:20], charset="gbk")
    results += push_applications(pipeline.url, SECRET, apps[20:], charset="utf-8")
    assert [r.status for r in results] == [202] * 40
    person = next(a for a in apps if "sfzhm" in a)
    bad = {**person, "sqbh": "AS-BAD", "sfzhm": person["sfzhm"][:-1] + ("0" if person["sfzhm"][-1] != "0" else "1")}
    (refused,) = push_applications(pipeline.url, SECRET, [bad])
    assert (refused.status, refused.body["field"]) == (422, "sfzhm")
    (forged,) = push_applications(pipeline.url, "not-the-secret-at-all!", apps[:1])
    assert forged.status == 401

    records = read_topic(kafka_bootstrap, pipeline.applications)
    assert sorted(r.key for r in records) == sorted(a["sqbh"].encode() for a in apps)
    expected = sum(served_services(a) for a in apps)
    unserved = sorted(a["sqbh"].encode() for a in apps if served_services(a) == 0)
    wait_until(
        lambda: (
            len(read_tasks(kafka_bootstrap, pipeline)) >= expected
            and len(read_topic(kafka_bootstrap, pipeline.dlq)) >= len(unserved)
        ),
        timeout_s=60,
        what="tasks and dead letters",
    )
    pipeline.stop.set()

    tasks = [(r.key, CODEC.decode_as("UtilityTask", r.value)) for r in read_tasks(kafka_bootstrap, pipeline)]
    assert len(tasks) == expected
    assert all(key == task["application_id"].encode() for key, task in tasks)
    assert {task["kind"] for _, task in tasks} == {"APPLICATION"}
    cited = [task for _, task in tasks if task["project_code"] == PROJECT]
    assert cited and all(task["project_name"] == pipeline.project["project_name"] for task in cited)
    assert all("project_not_found" not in task["flags"] for task in cited)
    assert sorted(r.key for r in read_topic(kafka_bootstrap, pipeline.dlq)) == unserved

    text = pipeline.logs.getvalue()
    assert "request_rejected" in text and "application_routed" in text
    assert all(json.loads(line) for line in text.splitlines())
    personal = {a.get("sfzhm") for a in apps} | {a["lxdh"] for a in apps} | {bad["sfzhm"]}
    assert sorted(s for s in personal if s and s in text) == [], "personal numbers in the logs"
    assert re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", text) is None


def test_the_calendar_never_holds_an_application_back(kafka_bootstrap: str, pipeline: Pipeline) -> None:
    """Applications filed in 2027 (provisional) and 2003 (no calendar) are routed like any other, each flagged."""
    filed = {"AS-2026": "2026-12-30 10:00:00", "AS-2027": "2027-01-05 10:00:00", "AS-2003": "2003-05-06 10:00:00"}
    (template,) = make_applications(1, seed=5, regions=["370602"])
    apps = [{**template, "sqbh": sqbh, "sqsj": at, "fwlx": ["供水"]} for sqbh, at in filed.items()]
    assert [r.status for r in push_applications(pipeline.url, SECRET, apps)] == [202] * 3
    wait_until(lambda: len(read_tasks(kafka_bootstrap, pipeline)) >= 3, timeout_s=60, what="three tasks")
    tasks = {
        task["application_id"]: task
        for task in (CODEC.decode_as("UtilityTask", r.value) for r in read_tasks(kafka_bootstrap, pipeline))
    }
    assert {
        "AS-2026": ([], False),
        "AS-2027": (["contact_due_provisional"], False),
        "AS-2003": (["contact_due_unclocked"], True),
    } == {sqbh: (task["flags"], task["contact_due"] is None) for sqbh, task in tasks.items()}
    assert "no holiday schedule for 2003" in (tasks["AS-2003"]["contact_due_note"] or "")
    counted = pipeline.metrics.registry.get_sample_value(
        "ubridge_tasks_unclocked_total", {"stage": "router-aishandong"}
    )
    assert (counted, pipeline.loop.state.failed, read_topic(kafka_bootstrap, pipeline.dlq)) == (1.0, False, [])
