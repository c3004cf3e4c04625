import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaAdminClient

from connectors.admin.api import admin_router
from connectors.admin.service import AdminService
from connectors.app import App
from connectors.broker.kafka_install import free_port
from connectors.cli import main
from connectors.registry import topics
from connectors.runtime.dlq import dead_letter
from connectors.runtime.kafka import ensure_topics, make_producer
from connectors.runtime.web_app import build_app
from connectors.runtime.web_server import WebServer
from connectors.settings import Settings
from routing.errors import DataError
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import NOW, ROOT, make_task, read_topic, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

TOKEN = "ops-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SINK = "sink-yantai-water"
NORMALISER = "normaliser-gonggai"


@pytest.fixture
def utility() -> Iterator[tuple[UtilitySimulator, str]]:
    sim = UtilitySimulator("yantai-water", token="token-yantai-water")
    url = sim.start()
    yield sim, url
    sim.stop()


def admin_settings(bootstrap: str, prefix: str, **sections: Any) -> Settings:
    admin = {"port": 0, "tokens": {"ops": TOKEN}}
    return settings_for(
        bootstrap,
        prefix,
        kafka={"bootstrap": bootstrap, "topic_prefix": prefix, "partitions": 1},
        admin=admin,
        **sections,
    )


def started(settings: Settings, *stages: str) -> App:
    app = App(settings, only=list(stages), serve_metrics=False)
    app.start()
    wait_until(app.ready, timeout_s=30, what=f"{', '.join(stages)} to join")
    return app


def stopped(app: App) -> None:
    app.stop()
    assert app.wait(timeout_s=20)
    assert not app.failed


def admin_url(app: App) -> str:
    assert app.admin is not None
    return f"http://127.0.0.1:{app.admin.port}"


def stage_rows(url: str, stage: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(f"{url}/admin/v1/stages", headers=AUTH).raise_for_status().json()
    return [row for row in rows if row["stage"] == stage]


def state_of(url: str, stage: str) -> str | None:
    rows = stage_rows(url, stage)
    return rows[0]["state"] if rows else None


def serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/admin/v1/stages", headers=AUTH).status_code == 200
    except httpx.HTTPError:
        return False


def paused_gauge(app: App) -> float | None:
    value: float | None = app.metrics.registry.get_sample_value("ubridge_stage_paused", {"stage": SINK})
    return value


def publish_tasks(settings: Settings, count: int) -> None:
    producer = make_producer(settings.kafka)
    codec = Codec.default()
    for n in range(count):
        task = make_task("yantai-water", n, project=f"2026-370602-47-01-{n:06d}")
        value = codec.encode("UtilityTask", dict(task))
        producer.send(settings.task_topic("yantai-water"), key=task["project_code"].encode(), value=value)
    producer.flush()
    producer.close()


def cli(url: str, *args: str) -> int:
    return main(["admin", "--url", url, "--token", TOKEN, *args])


def test_a_paused_sink_delivers_nothing_until_resumed_even_across_a_restart(
    kafka_bootstrap: str, unique_prefix: str, utility: tuple[UtilitySimulator, str]
) -> None:
    """A pause holds a utility's deliveries, survives a process restart, and a resume delivers every task."""
    sim, url = utility
    settings = admin_settings(kafka_bootstrap, unique_prefix, utilities=[utility_config("yantai-water", url)])
    app = started(settings, SINK)
    try:
        assert cli(admin_url(app), "--as", "alice", "pause", SINK, "--reason", "utility maintenance") == 0
        asked = time.monotonic()
        wait_until(lambda: paused_gauge(app) == 1, timeout_s=10, what="the sink loop to pause")
        applied_s = time.monotonic() - asked
        wait_until(lambda: state_of(admin_url(app), SINK) == "paused", timeout_s=20, what="the sink to show paused")
        publish_tasks(settings, 10)
        time.sleep(3)  # an unpaused sink delivers ten tasks in well under a second
        assert sim.stats().unique == 0
        assert paused_gauge(app) == 1
    finally:
        stopped(app)
    app = started(settings, SINK)
    try:
        wait_until(lambda: state_of(admin_url(app), SINK) == "paused", timeout_s=20, what="still paused after restart")
        time.sleep(3)
        assert sim.stats().unique == 0
        assert cli(admin_url(app), "resume", SINK) == 0
        asked = time.monotonic()
        wait_until(lambda: sim.stats().unique == 10, timeout_s=30, what="all ten tasks after the resume")
        delivered_s = time.monotonic() - asked
        print(f"pause figures: applied after {applied_s:.2f} s, ten tasks delivered {delivered_s:.2f} s after resume")
        wait_until(lambda: state_of(admin_url(app), SINK) == "running", timeout_s=20, what="the sink to show running")
    finally:
        stopped(app)
    audit = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topic("audit"))]
    assert [(a["action"], a["by"], a["reason"]) for a in audit] == [
        ("stage.pause", "alice (ops)", "utility maintenance"),
        ("stage.resume", "ops", None),
    ]


def test_stages_of_two_processes_are_listed_and_a_restart_rebuilds_one(
    kafka_bootstrap: str,
    unique_prefix: str,
    utility: tuple[UtilitySimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both processes' stages are listed with their state; a restart rebuilds the stage; a clean stop removes it."""
    _, url = utility
    settings = admin_settings(kafka_bootstrap, unique_prefix, utilities=[utility_config("yantai-water", url)])
    first = started(settings, SINK)
    second = started(settings, NORMALISER)
    try:
        api = admin_url(first)
        wait_until(lambda: state_of(api, NORMALISER) == "running", timeout_s=20, what="the other process's stage")
        assert state_of(api, SINK) == "running"
        capsys.readouterr()
        assert cli(api, "--json", "stages") == 0
        rows = json.loads(capsys.readouterr().out)
        assert {(r["stage"], r["state"], r["stale"], r["lag"]) for r in rows} == {
            (SINK, "running", False, 0.0),
            (NORMALISER, "running", False, 0.0),
        }
        assert cli(api, "restart", NORMALISER, "--reason", "picked up a new mapping") == 0
        wait_until(lambda: stage_rows(api, NORMALISER)[0]["restarts"] == 1, timeout_s=20, what="the restart")
        wait_until(second.ready, timeout_s=30, what="the restarted stage to rejoin")
        assert stage_rows(api, SINK)[0]["restarts"] == 0
    finally:
        stopped(second)
    try:
        wait_until(lambda: not stage_rows(api, NORMALISER), timeout_s=20, what="the stopped process's entry to go")
    finally:
        stopped(first)


def committed(settings: Settings, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


def test_offsets_reset_is_refused_while_the_stage_runs_and_applied_once_stopped(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """A reset answers 409 while the group has members; stopped, it moves the group to a time, then to the start."""
    settings = admin_settings(kafka_bootstrap, unique_prefix)
    group = f"{unique_prefix}ubridge.{NORMALISER}"
    raw = settings.topic("raw_gonggai")
    app = started(settings, NORMALISER)
    producer = make_producer(settings.kafka)
    try:
        for n in range(3):
            producer.send(raw, key=b"p", value=json.dumps({"n": n}).encode())
        producer.flush()
        time.sleep(0.05)
        middle = datetime.now(UTC)
        time.sleep(0.05)
        for n in range(3, 5):
            producer.send(raw, key=b"p", value=json.dumps({"n": n}).encode())
        producer.flush()
        wait_until(lambda: committed(settings, group).get(0) == 5, timeout_s=30, what="all five records committed")
        body = {"to": "start", "reason": "backfill after the mapping fix"}
        refused = httpx.post(f"{admin_url(app)}/admin/v1/stages/{NORMALISER}/offsets/reset", json=body, headers=AUTH)
        assert refused.status_code == 409
        assert "active member" in refused.json()["error"]
    finally:
        producer.close()
        stopped(app)
    with client_for(settings) as client:
        to_time = client.post(
            f"/admin/v1/stages/{NORMALISER}/offsets/reset",
            json={"to": middle.isoformat(), "reason": "redo the last two"},
        )
        assert to_time.status_code == 200, to_time.text
        assert to_time.json()["offsets"] == [{"topic": raw, "partition": 0, "offset": 3}]
        assert committed(settings, group) == {0: 3}
        to_start = client.post(f"/admin/v1/stages/{NORMALISER}/offsets/reset", json=body)
        assert to_start.status_code == 200, to_start.text
    assert committed(settings, group) == {0: 0}


@contextmanager
def client_for(settings: Settings) -> Iterator[httpx.Client]:
    """The admin API of ``settings`` served on a free port (no process running stages), and a client of it."""
    service = AdminService(settings, stale_after_s=15)
    server = WebServer(build_app([admin_router(service, {"ops": TOKEN})]), host="127.0.0.1", port=0, name="admin-api")
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers=AUTH, timeout=60) as client:
            yield client
    finally:
        server.stop()
        service.close()


def dead_letters(settings: Settings) -> list[int]:
    """Write two raw records and their dead letters; the raw records' offsets."""
    kafka, raw, dlq = settings.kafka, settings.topic("raw_gonggai"), settings.dlq_topic(NORMALISER)
    ensure_topics(kafka, topics(settings))
    producer = make_producer(kafka)
    producer.send(raw, key=b"p1", value=b'{"lxrsjh": "13912345678"}', headers=[("x-origin", b"test")])
    producer.send(raw, key=b"p2", value=b'{"xmdm": ""}')
    producer.flush()
    first, second = read_topic(settings.kafka.bootstrap, raw)
    for record, error in (
        (first, DataError("lxrsjh", "not a project: 13912345678")),
        (second, DataError("xmdm", "empty")),
    ):
        letter = dead_letter(record, error, stage=NORMALISER, topic=dlq, now=NOW)
        producer.send(letter.topic, key=letter.key, value=letter.value, headers=list(letter.headers))
    producer.flush()
    producer.close()
    return [first.offset, second.offset]


def test_dead_letters_are_listed_shown_masked_and_replayed_with_an_audit_record(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """Listing filters by field, showing decodes and masks, a replay restores the original record and is audited."""
    settings = admin_settings(kafka_bootstrap, unique_prefix)
    raw = settings.topic("raw_gonggai")
    dead_letters(settings)
    path = f"/admin/v1/stages/{NORMALISER}/dead-letters"
    with client_for(settings) as client:
        listed = client.get(path, params={"field": "lxrsjh"}).json()
        assert [(r["offset"], r["error_class"], r["message"], r["source_topic"]) for r in listed] == [
            (0, "DataError", "lxrsjh: not a project: 139****5678", raw)
        ]
        assert [r["offset"] for r in client.get(path, params={"from_offset": 1}).json()] == [1]
        shown = client.get(f"{path}/0/0").json()
        assert (shown["schema_name"], shown["value"], shown["headers"]) == (
            "json",
            {"lxrsjh": "139****5678"},
            {"x-origin": "test"},
        )
        assert client.get(f"{path}/0/7").status_code == 404
        assert client.post(f"{path}/replay", json={"offsets": [0]}).status_code == 422  # no reason
        replayed = client.post(
            f"{path}/replay", json={"offsets": [0], "reason": "mapping fixed"}, headers={"X-Ubridge-Operator": "bob"}
        )
        assert replayed.json() == {"count": 1, "offsets": [0], "targets": [raw]}
        elsewhere = client.post(f"{path}/replay", json={"field": "xmdm", "topic": raw, "reason": "look again"})
        assert elsewhere.json() == {"count": 1, "offsets": [1], "targets": [raw]}
    again = read_topic(kafka_bootstrap, raw)[2:]
    assert [(r.key, r.value, r.headers) for r in again] == [
        (b"p1", b'{"lxrsjh": "13912345678"}', [("x-origin", b"test")]),
        (b"p2", b'{"xmdm": ""}', []),
    ]
    audit = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topic("audit"))]
    assert [(a["action"], a["by"], a["reason"], a["what"]["offsets"], a["what"]["count"]) for a in audit] == [
        ("dlq.replay", "bob (ops)", "mapping fixed", [0], 1),
        ("dlq.replay", "ops", "look again", [1], 1),
    ]


def test_the_admin_api_needs_its_token(kafka_bootstrap: str, unique_prefix: str) -> None:
    """No token or a wrong one is 401 with a JSON reason; the configured token is let in."""
    settings = admin_settings(kafka_bootstrap, unique_prefix)
    ensure_topics(settings.kafka, topics(settings))
    with client_for(settings) as client:
        missing = client.get("/admin/v1/stages", headers={"Authorization": ""})
        wrong = client.post("/admin/v1/stages/router/pause", headers={"Authorization": "Bearer not-the-token"})
        right = client.get("/admin/v1/stages")
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert wrong.json()["field"] == "Authorization"
    assert right.json() == []
    assert read_topic(kafka_bootstrap, settings.topic("control")) == []


def test_unknown_stages_and_intakes_are_refused_with_the_reason(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Pausing a stage that is not configured is 404, an intake 409, each naming the field and why."""
    settings = admin_settings(kafka_bootstrap, unique_prefix, status_callbacks={"port": 0})
    ensure_topics(settings.kafka, topics(settings))
    with client_for(settings) as client:
        unknown = client.post("/admin/v1/stages/sink-nowhere/pause")
        intake = client.post("/admin/v1/stages/status-callbacks/pause", json={"reason": "try"})
        no_letters = client.get("/admin/v1/stages/status-callbacks/dead-letters")
    assert (unknown.status_code, intake.status_code, no_letters.status_code) == (404, 409, 404)
    assert unknown.json()["field"] == "stage"
    assert "configured: normaliser-gonggai, router, status-callbacks" in unknown.json()["error"]
    assert "cannot be paused" in intake.json()["error"]
    assert read_topic(kafka_bootstrap, settings.topic("control")) == []


def test_partitions_assigned_to_a_paused_sink_stay_paused(
    kafka_bootstrap: str, unique_prefix: str, utility: tuple[UtilitySimulator, str]
) -> None:
    """When one of two paused sink processes stops, the partitions the other takes over are paused too."""
    sim, url = utility
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        kafka={"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "partitions": 3},
        admin={"port": 0, "tokens": {"ops": TOKEN}},
        utilities=[utility_config("yantai-water", url)],
    )
    first = started(settings, SINK)
    second = started(settings, SINK)
    try:
        assert cli(admin_url(first), "pause", SINK, "--reason", "utility maintenance") == 0
        # both apps run in this one process, so they share its <host>:<pid>/<stage> status entry
        wait_until(lambda: state_of(admin_url(first), SINK) == "paused", timeout_s=20, what="the sinks to show paused")
        stopped(second)
        wait_until(first.ready, timeout_s=30, what="the remaining sink to take every partition")
        publish_tasks(settings, 12)
        time.sleep(3)
        assert sim.stats().unique == 0
        assert cli(admin_url(first), "resume", SINK) == 0
        wait_until(lambda: sim.stats().unique == 12, timeout_s=30, what="every task after the resume")
    finally:
        stopped(first)


def test_ubridge_run_serves_the_admin_api_to_the_cli(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    """`ubridge run` with admin.port serves the API; `ubridge admin` reaches it from the environment; logs stay JSON."""
    port = free_port()
    document = {
        "kafka": {"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix},
        "observability": {"log_format": "json", "metrics_port": free_port()},
        # run checks the configuration first: every utility of the service areas needs its utilities[] entry
        "routing": {"service_areas": str(ROOT / "tests" / "data" / "service-areas-yantai-water.yaml")},
        "utilities": [utility_config("yantai-water", "http://127.0.0.1:9")],
        "admin": {"port": port, "tokens": {"ops": "${TEST_ADMIN_TOKEN}"}},
    }
    config = tmp_path / "ubridge.yaml"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    env = {**os.environ, "TEST_ADMIN_TOKEN": TOKEN, "UBRIDGE_ADMIN_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "ubridge.log"
    command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config), "--stage", NORMALISER]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    admin = [sys.executable, "-m", "connectors.cli", "admin", "stages"]
    try:
        wait_until(lambda: serving(f"http://127.0.0.1:{port}"), timeout_s=60, what="the admin API")
        wait_until(lambda: state_of(f"http://127.0.0.1:{port}", NORMALISER) == "running", timeout_s=30, what="running")
        without = subprocess.run(admin, env=env, capture_output=True, text=True, check=False)
        with_token = {**env, "UBRIDGE_ADMIN_TOKEN": TOKEN}
        listed = subprocess.run(admin, env=with_token, capture_output=True, text=True, check=False)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    assert (without.returncode, without.stderr.strip()) == (
        2,
        "ubridge: an admin token is needed (--token or $UBRIDGE_ADMIN_TOKEN)",
    )
    assert listed.returncode == 0, listed.stderr
    assert NORMALISER in listed.stdout
    assert "running" in listed.stdout
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if not line.startswith("{")] == []
    assert "admin_serving" in {json.loads(line)["event"] for line in lines}
