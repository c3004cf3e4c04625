"""Revisions end to end: project events and applications → routers → sink → a strict utility (IETF draft)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.aishandong.rules import load_application_rules
from connectors.app import App
from connectors.runtime.kafka import make_producer
from connectors.settings import Settings
from routing.aishandong import parse_application
from routing.records import ProjectEvent
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import read_topic, running_utility, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
RULES = load_application_rules(CONFIG / "aishandong.yaml")
UTILITY = "yantai-water"
PROJECT = "2026-370602-47-01-000777"
GRANTED = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
DRAWING = {"kind": "DRAWING", "number": "T-1", "title": "总平面图", "url": "https://zj.example.cn/t1", "digest": None}


def event(stage: int, **changes: Any) -> ProjectEvent:
    """A granted approval of the project at ``stage``, demanding water only (one task, for yantai-water)."""
    base: ProjectEvent = {
        "event_id": f"e-{stage}",
        "source": "gonggai-interface",
        "source_record_id": str(stage),
        "project_code": PROJECT,
        "project_name": "幸福里四期",
        "region_code": "370602",
        "site_address": "芝罘区幸福南路30号",
        "builder_name": "烟台市幸福置业有限公司",
        "builder_uscc": None,
        "contact_name": None,
        "contact_mobile": None,
        "stage": stage,
        "item_code": None,
        "item_instance_code": None,
        "item_name": None,
        "item_status": "GRANTED",
        "retraction": False,
        "occurred_at": GRANTED + timedelta(days=stage),
        "ingested_at": GRANTED + timedelta(days=stage),
        "time_zone": "Asia/Shanghai",
        "project_nature": "新建",
        "floor_area_m2": 12000.0,
        "land_area_m2": 5000.0,
        "investment_10k_cny": None,
        "demands": [
            {"service": "WATER", "pipe_diameter_mm": 100, "load": None, "load_unit": None, "heated_area_m2": None}
        ],
        "documents": [],
        "flags": [],
    }
    return {**base, **changes}  # type: ignore[typeddict-item]


def publish(settings: Settings, *events: ProjectEvent) -> None:
    """Write project events, keyed by project code, in order."""
    producer = make_producer(settings.kafka)
    for item in events:
        value = Codec.default().encode("ProjectEvent", dict(item))
        producer.send(settings.topic("project_events"), key=PROJECT.encode(), value=value)
    producer.flush()
    producer.close()


def run(settings: Settings) -> App:
    """The router and the utility's sink, started."""
    app = App(settings, only=["router", f"sink-{UTILITY}"], serve_metrics=False)
    app.start()
    return app


def stop(app: App) -> None:
    """Stop and check nothing failed."""
    app.stop()
    assert app.wait(timeout_s=15)
    assert not app.failed


def received_revisions(settings: Settings, bootstrap: str) -> list[tuple[int, str, int]]:
    """(revision, action, documents) of every RECEIVED the sink reported."""
    codec = Codec.default()
    statuses = [codec.decode_as("TaskStatus", r.value) for r in read_topic(bootstrap, settings.topic("task_status"))]
    return sorted((s["task"]["revision"], s["task"]["action"], len(s["task"]["documents"])) for s in statuses)


def test_create_update_cancel_reach_a_strict_utility_as_revisions(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Stage 1, stage 2 (drawings), a replay, stage 2 withdrawn, stage 1 withdrawn: revs 1, 2, UPDATE 3, CANCEL 4."""
    with running_utility(UTILITY) as (sim, url):
        settings = settings_for(kafka_bootstrap, unique_prefix, utilities=[utility_config(UTILITY, url)])
        app = run(settings)
        try:
            stage2 = event(2, documents=[DRAWING])
            replay = {**stage2, "ingested_at": stage2["ingested_at"] + timedelta(hours=5)}
            withdrawals = ({**stage2, "retraction": True}, {**event(1), "retraction": True})
            publish(settings, event(1), stage2, replay, *withdrawals)  # type: ignore[arg-type]
            wait_until(lambda: sim.stats().revisions == 3, timeout_s=60, what="the updates and the cancellation")
        finally:
            stop(app)
        assert_applied(sim)
        expected = [(1, "CREATE", 0), (2, "CREATE", 1), (3, "UPDATE", 0), (4, "CANCEL", 0)]
        assert received_revisions(settings, kafka_bootstrap) == expected


def assert_applied(sim: UtilitySimulator) -> None:
    """One task, cancelled at revision 4, no key ever reused with another body, no repeat sent."""
    (task,) = sim.tasks()
    assert (task.revision, task.body["action"], task.body["trigger_stage"]) == (4, "CANCEL", 1)
    stats = sim.stats()
    assert (stats.unique, stats.revisions, stats.key_conflicts, stats.repeats, stats.rejected) == (1, 3, 0, 0, 0)


def test_revision_numbers_survive_a_restart(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A new sink process restores the revisions: a replayed retraction sends nothing, a re-grant is rev 4."""
    with running_utility(UTILITY) as (sim, url):
        settings = settings_for(kafka_bootstrap, unique_prefix, utilities=[utility_config(UTILITY, url)])
        stage2 = event(2, documents=[DRAWING])
        app = run(settings)
        try:
            publish(settings, event(1), stage2, {**stage2, "retraction": True})  # type: ignore[arg-type]
            wait_until(lambda: sim.stats().revisions == 2, timeout_s=60, what="revisions 2 and 3")
        finally:
            stop(app)
        requests = sim.stats().requests
        again = run(settings)
        try:
            regrant = event(2, documents=[DRAWING], site_address="芝罘区幸福南路32号")
            publish(settings, {**stage2, "retraction": True}, regrant)  # type: ignore[arg-type]
            wait_until(lambda: sim.stats().revisions == 3, timeout_s=60, what="revision 4 after the restart")
        finally:
            stop(again)
        (task,) = sim.tasks()
        assert (task.revision, task.body["action"], task.body["site_address"]) == (4, "CREATE", "芝罘区幸福南路32号")
        assert sim.stats().requests == requests + 1  # the replayed retraction was a repeat: no request
        assert sim.stats().key_conflicts == 0


def test_drawings_shared_after_the_application_reach_the_utility_as_revision_2(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """An application citing a project 住建 has not shared yet: rev 1 lists what to fetch; the drawings are rev 2."""
    with running_utility(UTILITY) as (sim, url):
        settings = settings_for(
            kafka_bootstrap,
            unique_prefix,
            utilities=[utility_config(UTILITY, url)],
            applications={"calendar": str(CONFIG / "calendar.yaml")},
            privacy={"contact_retention_days": 36500},  # filed on a fixed date: must not expire as the years pass
        )
        app = App(settings, only=["project-table", "router-aishandong", f"sink-{UTILITY}"], serve_metrics=False)
        app.start()
        try:
            publish_application(settings)
            wait_until(lambda: sim.stats().unique == 1, timeout_s=60, what="the application's task")
            (first,) = sim.tasks()
            assert first.body["materials_to_fetch"] == [
                f"PERMIT:APPROVAL_SYSTEM:{PROJECT}",
                f"DRAWING:APPROVAL_SYSTEM:{PROJECT}",
            ]
            permit = {**DRAWING, "kind": "PERMIT", "title": "施工许可证"}
            publish(settings, event(3, documents=[permit, DRAWING]))
            wait_until(lambda: sim.stats().revisions == 1, timeout_s=60, what="the update with the drawings")
        finally:
            stop(app)
        (task,) = sim.tasks()
        assert (task.revision, task.body["materials_to_fetch"], task.body["missing_materials"]) == (2, [], [])
        assert [d["title"] for d in task.body["documents"]] == ["施工许可证", "总平面图"]
        assert sim.stats().key_conflicts == 0


def publish_application(settings: Settings) -> None:
    """One 爱山东 报装 for water citing the project, as the gateway writes it."""
    raw = {
        "sqbh": "AS2026112500077",
        "sqlx": "报装",
        "fwlx": ["自来水"],
        "sqrlx": "法人",
        "sqrxm": "烟台市幸福置业有限公司",
        "tyshxydm": "91110000600037341L",
        "lxdh": "13912345678",
        "xmdm": PROJECT,
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路30号",
        "sqsj": "2026-11-25 09:00:00",
    }
    application = parse_application(raw, ingested_at=GRANTED, vocabulary=RULES.vocabulary)
    producer = make_producer(settings.kafka)
    value = Codec.default().encode("ConnectionApplication", dict(application))
    producer.send(settings.topic("applications"), key=application["application_id"].encode(), value=value)
    producer.flush()
    producer.close()
