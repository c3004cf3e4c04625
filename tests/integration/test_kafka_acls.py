import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.errors import TopicAuthorizationFailedError

from connectors.aishandong.gateway import GATEWAY_PATH
from connectors.app import App
from connectors.broker.kafka_install import free_port
from connectors.broker.local_kafka import BrokerInfo, start_broker, stop_broker
from connectors.cli import main
from connectors.runtime.kafka import make_admin, make_consumer, make_producer
from connectors.settings import Settings, load_settings
from schemas import Codec
from simulators.aishandong import make_applications, push_applications
from simulators.approval import ApprovalSimulator
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
}
CALLBACK_TOKEN = "water-calls-back-with-this"
SECRET = "a-gateway-secret-of-32-characters!"
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
    """Every stage of both flows and the ledger, each as its own principal: tasks reach both utilities."""
    upstream = ApprovalSimulator(seed=8)
    url = upstream.start()
    upstream.generate(120)
    apps: list[App] = []
    try:
        with running_utility(WATER) as (water, water_url), running_utility(GAS) as (gas, gas_url):
            gateway, callbacks = free_port(), free_port()
            sections = {
                "sources": sources(url, gateway),
                "utilities": utilities(water_url, gas_url),
                "status_callbacks": {"port": callbacks},
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
            wait_until(lambda: ready(apps), timeout_s=60, what="every stage running and joined")
            applications = make_applications(12, seed=5, regions=["370602"])
            assert {
                r.status for r in push_applications(f"http://127.0.0.1:{gateway}{GATEWAY_PATH}", SECRET, applications)
            } == {202}
            wait_until(
                lambda: all(applied(sim) >= 2 and sim.stats().unique >= 5 for sim in (water, gas)),
                timeout_s=120,
                what="project and application tasks at both utilities, every stage on its own ACLs",
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
    finally:
        for app in apps:
            app.stop()
        for app in apps:
            assert app.wait(timeout_s=30)
        upstream.stop()
    assert not any(app.failed for app in apps)
    for app, stage in zip(apps, runs, strict=True):
        restarts = app.metrics.registry.get_sample_value("ubridge_stage_restarts_total", {"stage": stage})
        assert not restarts, f"{stage} restarted: it lacks a right"


def reporters(settings: Settings) -> set[str]:
    """Who reported the statuses on the task-status topic so far."""
    consumer = make_consumer(settings.kafka, group_id=None, consumer_timeout_ms=2000)
    try:
        consumer.subscribe([settings.topic("task_status")])
        return {CODEC.decode_as("TaskStatus", record.value)["reporter"] for record in consumer}
    finally:
        consumer.close()


def ready(apps: list[App]) -> bool:
    """Whether every process's stage runs (a refused right would leave it restarting)."""
    return all(app.ready() for app in apps)


def applied(sim: UtilitySimulator) -> int:
    """Tasks the utility holds that came from 爱山东 applications."""
    return sum(1 for task in sim.tasks() if task.body["kind"] == "APPLICATION")


def _as(tmp_path: Path, broker: AuthorizingBroker, prefix: str, user: str, sections: dict[str, Any]) -> Settings:
    return load_settings(written(tmp_path, f"{user}.yaml", document(broker, prefix, user, **sections)))
