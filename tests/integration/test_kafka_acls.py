import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAuthorizationFailedError

from connectors.aishandong.gateway import GATEWAY_PATH
from connectors.app import App
from connectors.broker.kafka_install import free_port
from connectors.broker.local_kafka import BrokerInfo, start_broker, stop_broker
from connectors.cli import main
from connectors.hotline.push import WORK_ORDERS_PATH
from connectors.permits.intake import PATH as PERMITS_PATH
from connectors.runtime.kafka import make_admin, make_consumer, make_producer
from connectors.settings import Settings, load_settings
from routing.hotline import complaint_task_id, service_of
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.aishandong import make_applications, push_applications
from simulators.approval import ApprovalSimulator
from simulators.hotline import HotlinePlatform, make_work_orders, push_records
from simulators.utility import UtilitySimulator
from tests.support import ROOT, running_utility, utility_config, wait_until

pytestmark = pytest.mark.integration

WATER, GAS = "yantai-water", "yantai-gas"
AREAS = ROOT / "tests" / "data" / "service-areas-yantai-water-gas.yaml"
CONFIG = ROOT / "deploy" / "config"
# a principal per stage, and one per utility; 'ubridge' administers (the broker's super user)
STAGE_USERS = {
    "gonggai-interface": "source",
    "normaliser-gonggai": "normaliser",
    "router": "router",
    "aishandong-gateway": "gateway",
    "project-table": "project-table",
    "router-aishandong": "application-router",
    "status-callbacks": "callbacks",
    f"status-poll-{GAS}": "poller",
    "ledger": "ledger",
    **{
        stage: stage
        for stage in (
            "hotline-push",
            "hotline-pull",
            "hotline-router",
            "permit-intake",
            "permit-submitter",
            "permit-follower",
            "permit-notices",
            "survey-replies",
            "joint-surveys",
            "survey-notices",
            "complaints",
            "supervision-view",
        )
    },
}
CALLBACK_TOKEN = "water-calls-back-with-this"
SECRET = "a-gateway-secret-of-32-characters!"
FEED_TOKEN = "hotline-feed-token-0123456789"
VIEW_TOKEN = "supervision-token-0123456789"
CODEC = Codec.default()
USERS = ["ubridge", *STAGE_USERS.values(), WATER, GAS]


class AuthorizingBroker:
    """A SASL_SSL broker with the KRaft StandardAuthorizer on: only 'ubridge' may do anything."""

    def __init__(self, home: Path) -> None:
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        self.info: BrokerInfo = start_broker(home, port=0, sasl_users=self.passwords, super_users=["ubridge"])
        assert self.info.ca_file is not None
        self.ca_file = self.info.ca_file

    def kafka(self, prefix: str, user: str) -> dict[str, Any]:
        """The ``kafka`` section of a configuration connecting as ``user``."""
        sasl = {"mechanism": "SCRAM-SHA-512", "username": user, "password": self.passwords[user]}
        security = {"protocol": "SASL_SSL", "ca_file": str(self.ca_file), "sasl": sasl}
        return {"bootstrap": self.info.bootstrap, "topic_prefix": prefix, "security": security}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthorizingBroker]:
    """This module's own broker, its authorizer on."""
    home = tmp_path_factory.mktemp("acl-broker")
    started = AuthorizingBroker(home)
    yield started
    stop_broker(home)


def document(broker: AuthorizingBroker, prefix: str, user: str, **sections: Any) -> dict[str, Any]:
    """An installation's configuration, connecting as ``user``, with its principals in ``acl``."""
    return {
        "kafka": broker.kafka(prefix, user),
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(AREAS)},
        "acl": {"stages": STAGE_USERS, "utilities": {WATER: WATER, GAS: GAS}},
        "ledger": {"calendar": str(CONFIG / "calendar.yaml"), "policies": str(CONFIG / "sla-policies.yaml")},
        "applications": {"calendar": str(CONFIG / "calendar.yaml")},
        **sections,
    }


def sources(approval_url: str, gateway_port: int) -> dict[str, Any]:
    """The approval system's data interface, and the 爱山东 gateway on ``gateway_port``."""
    return {
        "gonggai_interface": {
            "base_url": approval_url,
            "token": "approval-token",
            "page_size": 50,
            "poll_interval_s": 0.1,
        },
        "aishandong_gateway": {"port": gateway_port, "secret": SECRET},
    }


def loops(platform_url: str, approval_url: str, ports: dict[str, int]) -> dict[str, Any]:
    """The 12345 hotline (push, pull, router), permits, joint surveys, the complaint loop and the supervision view."""
    calendar = str(CONFIG / "calendar.yaml")
    retry = {"initial_backoff_s": 0.1, "max_backoff_s": 1.0, "max_attempts": 10}
    return {
        "hotline": {
            "push": {"port": ports["hotline"], "secret": SECRET},
            "pull": {"base_url": platform_url, "token": FEED_TOKEN, "poll_interval_s": 0.2},
        },
        "permits": {
            "intake": {"port": ports["permits"]},
            "approval": {"url": approval_url, "token": "approval-token", "timeout_s": 5},
            "calendar": calendar,
            "poll_interval_s": 0.2,
            "retry": retry,
        },
        "surveys": {"intake": {"port": ports["surveys"]}, "calendar": calendar, "retry": retry},
        "complaints": {
            "policy": str(CONFIG / "complaints.yaml"),
            "satisfaction": str(CONFIG / "satisfaction.yaml"),
            "calendar": calendar,
            "platform": {"url": platform_url, "token": FEED_TOKEN, "attempts": 3, "backoff_s": 0.05},
        },
        "supervision": {"port": ports["supervision"], "token": VIEW_TOKEN, "refresh_s": 0},
    }


def free_ports() -> dict[str, int]:
    """A port for each intake of :func:`loops`, and the view's."""
    return {name: free_port() for name in ("hotline", "permits", "surveys", "supervision")}


def utilities(water_url: str, gas_url: str) -> list[dict[str, Any]]:
    """yantai-water reports through callbacks, yantai-gas through its polled change feed."""
    return [
        utility_config(WATER, water_url, callback_token=CALLBACK_TOKEN),
        utility_config(GAS, gas_url, status_poll={"base_url": gas_url, "poll_interval_s": 0.2}),
    ]


def written(tmp_path: Path, name: str, content: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return path


def test_a_utility_principal_reads_its_own_tasks_and_is_refused_another_s(
    broker: AuthorizingBroker, unique_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `ubridge acl apply`, yantai-water reads its task topic; yantai-gas's gets an authorization error."""
    sections = {
        "sources": sources("http://127.0.0.1:9", free_port()),
        "utilities": utilities("http://127.0.0.1:9", "http://127.0.0.1:9"),
        "status_callbacks": {"port": free_port()},
        **loops("http://127.0.0.1:9", "http://127.0.0.1:9", free_ports()),
    }
    admin = written(tmp_path, "admin.yaml", document(broker, unique_prefix, "ubridge", **sections))
    assert main(["acl", "plan", "--config", str(admin)]) == 0
    table = capsys.readouterr().out
    assert f"User:{WATER}" in table and f"{unique_prefix}ubridge.tasks.{WATER}.v1" in table
    assert main(["acl", "apply", "--config", str(admin)]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["acl", "apply", "--config", str(admin)]) == 0
    assert capsys.readouterr().out.startswith("created 0 ACL(s)")  # applying again changes nothing

    settings = load_settings(admin)
    producer = make_producer(settings.kafka)
    for utility in (WATER, GAS):
        producer.send(settings.task_topic(utility), key=b"p", value=b"a task of " + utility.encode())
    producer.flush()
    producer.close()

    water = _as(tmp_path, broker, unique_prefix, WATER, sections)
    own, other = water.task_topic(WATER), water.task_topic(GAS)
    client = make_admin(water.kafka)
    try:
        described = {d["name"]: d["error_code"] for d in client.describe_topics([own, other])}
    finally:
        client.close()
    assert described == {own: 0, other: TopicAuthorizationFailedError.errno}
    assert read_as(water, own) == [b"a task of yantai-water"]
    assert read_as(water, other) == []  # no partition it may fetch, nothing read


def read_as(settings: Settings, topic: str) -> list[bytes]:
    """What the configuration's principal reads of ``topic`` in its sink's group, as a utility's consumer would."""
    consumer = make_consumer(settings.kafka, group_id=f"{settings.kafka.topic_prefix}ubridge.sink-{WATER}")
    try:
        consumer.subscribe([topic])
        values: list[bytes] = []
        for _ in range(16):
            values += [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    finally:
        consumer.close()
    return values


def test_every_stage_works_holding_only_its_own_acls(
    broker: AuthorizingBroker, unique_prefix: str, tmp_path: Path
) -> None:
    """Every stage of every flow, each as its own principal: tasks, complaints, permits and replies all go through."""
    upstream = ApprovalSimulator(seed=8)
    url = upstream.start()
    upstream.generate(120)
    platform = HotlinePlatform(token=FEED_TOKEN)
    platform_url = platform.start()
    apps: list[App] = []
    try:
        with running_utility(WATER) as (water, water_url), running_utility(GAS) as (gas, gas_url):
            gateway, callbacks, ports = free_port(), free_port(), free_ports()
            sections = {
                "sources": sources(url, gateway),
                "utilities": utilities(water_url, gas_url),
                "status_callbacks": {"port": callbacks},
                **loops(platform_url, url, ports),
            }
            water.set_progress(callback_url=f"http://127.0.0.1:{callbacks}", callback_token=CALLBACK_TOKEN)
            gas.set_progress()
            admin = written(tmp_path, "admin.yaml", document(broker, unique_prefix, "ubridge", **sections))
            assert main(["acl", "apply", "--config", str(admin)]) == 0
            runs = {**STAGE_USERS, f"sink-{WATER}": WATER, f"sink-{GAS}": GAS}
            for stage, user in runs.items():
                settings = _as(tmp_path, broker, unique_prefix, user, sections)
                app = App(settings, only=[stage], serve_metrics=False)
                apps.append(app)
                app.start()
            wait_until(lambda: ready(apps), timeout_s=90, what="every stage running and joined")
            applications = make_applications(12, seed=5, regions=["370602"])
            assert {
                r.status for r in push_applications(f"http://127.0.0.1:{gateway}{GATEWAY_PATH}", SECRET, applications)
            } == {202}
            complaints = hotline_orders(platform, f"http://127.0.0.1:{ports['hotline']}{WORK_ORDERS_PATH}")
            wait_until(
                lambda: all(applied(sim) >= 2 and sim.stats().unique >= 5 for sim in (water, gas)),
                timeout_s=120,
                what="project and application tasks at both utilities, every stage on its own ACLs",
            )
            wait_until(
                lambda: complaints <= {task.task_id for sim in (water, gas) for task in sim.tasks()},
                timeout_s=60,
                what="the pushed and the pulled work orders' COMPLAINT tasks at their utilities",
            )
            registry = apps[list(runs).index("ledger")].metrics.registry
            wait_until(
                lambda: (registry.get_sample_value("ubridge_records_out_total", {"stage": "ledger"}) or 0) > 0,
                timeout_s=60,
                what="the ledger to clock the deliveries",
            )
            admin_settings = load_settings(admin)
            wait_until(
                lambda: {"callback", "poll"} <= reporters(admin_settings),
                timeout_s=90,
                what="water's callbacks and gas's polled statuses on the task-status topic",
            )
            wait_until(
                lambda: 'id="complaints"' in overview(ports["supervision"]),
                timeout_s=60,
                what="the complaint loop's orders on the supervision view, read from its ledger",
            )
            permits = file_permit(ports["permits"], water.tasks()[0].task_id)
            wait_until(
                lambda: all(water.permits.states().get(p, [])[-1:] == ["GRANTED"] for p in permits),
                timeout_s=60,
                what="the permits submitted, followed to GRANTED and told to the utility",
            )
            replies = f"http://127.0.0.1:{ports['surveys']}/v1/surveys/survey-{'0' * 24}/replies"  # no such survey
            assert reply(replies, {"round": 1, "answer": "ACCEPT", "replied_at": "2026-12-01T09:00:00+08:00"}) == 202
            assert reply(replies, {"round": 1, "answer": "MAYBE"}) == 422  # dead-lettered by the intake first
            wait_until(
                lambda: bool(records(admin_settings, admin_settings.dlq_topic("joint-surveys"))),
                timeout_s=60,
                what="the reply to no known survey dead-lettered by the joint-survey stage",
            )
    finally:
        for app in apps:
            app.stop()
        for app in apps:
            assert app.wait(timeout_s=30)
        upstream.stop()
        platform.stop()
    assert not any(app.failed for app in apps)
    for app, stage in zip(apps, runs, strict=True):
        restarts = app.metrics.registry.get_sample_value("ubridge_stage_restarts_total", {"stage": stage})
        assert not restarts, f"{stage} restarted: it lacks a right"


def hotline_orders(platform: HotlinePlatform, push_url: str) -> set[str]:
    """Push four work orders and publish four on the platform's feed; the COMPLAINT task ids the served ones get."""
    orders = make_work_orders(8, seed=3, regions=["370602"])
    pushed, pulled = orders[:4], orders[4:]
    platform.dispatched(pushed)
    platform.publish(pulled)
    assert {r.status for r in push_records(push_url, SECRET, pushed)} == {202}
    areas = load_service_areas(AREAS)
    tasks: dict[str, set[str]] = {"pushed": set(), "pulled": set()}
    for way, batch in (("pushed", pushed), ("pulled", pulled)):
        for order in batch:
            service = service_of(order["ywlb"])
            utility = areas.utility_for(order["xzqhdm"], service)
            if utility is not None:  # heat: no utility of this installation serves it, the router dead-letters it
                tasks[way].add(complaint_task_id(order["gdbh"], utility, service))
    assert tasks["pushed"] and tasks["pulled"]
    return tasks["pushed"] | tasks["pulled"]


def overview(port: int) -> str:
    """The supervision view's overview page."""
    headers = {"Authorization": f"Bearer {VIEW_TOKEN}"}
    return httpx.get(f"http://127.0.0.1:{port}/", headers=headers, timeout=10).text


def file_permit(port: int, task_id: str) -> set[str]:
    """yantai-water files a planning and a road-excavation permit for its task; the permit ids."""
    body = {
        "application_no": "WQ-0001",
        "task_id": task_id,
        "project_code": "2026-370602-47-01-000123",
        "region_code": "370602",
        "kinds": ["PLANNING", "ROAD_EXCAVATION"],
        "pipe_length_m": 320.0,
        "route": "幸福路 至 地块红线",
        "filed_at": "2026-12-01T09:00:00+08:00",
    }
    headers = {"Authorization": f"Bearer {CALLBACK_TOKEN}"}
    response = httpx.post(f"http://127.0.0.1:{port}{PERMITS_PATH}", json=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    return {f"{response.json()['application_id']}:{kind}" for kind in body["kinds"]}


def reply(url: str, body: dict[str, Any]) -> int:
    """yantai-water's reply to a survey; the status of the answer."""
    headers = {"Authorization": f"Bearer {CALLBACK_TOKEN}"}
    return httpx.post(url, json=body, headers=headers, timeout=30).status_code


def records(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """What is on ``topic`` so far."""
    consumer = make_consumer(settings.kafka, group_id=None, consumer_timeout_ms=2000)
    try:
        consumer.subscribe([topic])
        return list(consumer)
    finally:
        consumer.close()


def reporters(settings: Settings) -> set[str]:
    """Who reported the statuses on the task-status topic so far."""
    return {
        CODEC.decode_as("TaskStatus", r.value)["reporter"] for r in records(settings, settings.topic("task_status"))
    }


def ready(apps: list[App]) -> bool:
    """Whether every process's stage runs (a refused right would leave it restarting)."""
    return all(app.ready() for app in apps)


def applied(sim: UtilitySimulator) -> int:
    """Tasks the utility holds that came from 爱山东 applications."""
    return sum(1 for task in sim.tasks() if task.body["kind"] == "APPLICATION")


def _as(tmp_path: Path, broker: AuthorizingBroker, prefix: str, user: str, sections: dict[str, Any]) -> Settings:
    return load_settings(written(tmp_path, f"{user}.yaml", document(broker, prefix, user, **sections)))
