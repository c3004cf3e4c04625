"""Personal data at rest: after real traffic, every compacted topic is read end to end and checked field by field.

Approval events (contacts), 爱山东 applications (ID numbers, names, mobiles; some filed long ago), a utility's
reports and a report with a phone number in its free text flow through every stage; then each record ever
written to each compacted topic is decoded (Avro, JSON or text) and no string may hold an ID number or a
mobile, except an awaiting application's own contact within ``privacy.contact_retention_days``.
"""

import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from connectors.aishandong.gateway import GATEWAY_PATH
from connectors.app import App
from connectors.registry import topics
from connectors.runtime.kafka import ensure_topics, make_producer
from connectors.settings import Settings
from routing.gonggai import normalise
from routing.personal_data import id_numbers_in
from schemas import Codec
from simulators.aishandong import make_applications, push_applications
from simulators.approval import ApprovalSimulator
from simulators.approval.generator import EventGenerator
from tests.support import read_topic, running_utility, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
UTILITY = "yantai-water"
SECRET = "personal-data-at-rest-0123456789"
SHANGHAI = ZoneInfo("Asia/Shanghai")
RETENTION = timedelta(days=30)
UNKNOWN_PROJECTS = ("2026-370602-47-01-900001", "2026-370602-47-01-900002")
CODEC = Codec.default()
EVENTS = [event for event in EventGenerator(seed=9).generate(12) if event.get("lxrsjh")][:5]
# a mobile number standing on its own, as routing/privacy.py masks it in logs
MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86[- ]?)?1[3-9][0-9][- ]?[0-9]{4}[- ]?[0-9]{4}(?![0-9A-Za-z])")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def decoded(value: bytes) -> tuple[str, Any]:
    """A record's value as data: (Avro record name, record), ("json", document) or ("text", string)."""
    if CODEC.schema_of(value) is not None:
        return CODEC.decode(value)
    try:
        return "json", json.loads(value)
    except ValueError:
        return "text", value.decode("utf-8", errors="replace")


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded record, at any depth (keys of JSON objects too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def report_with_a_phone(settings: Settings) -> None:
    """A utility's report of a task the ledger never saw, a mobile and an ID number in its free text: it is held."""
    now = datetime.now(UTC)
    status = {
        "task_id": "never-opened",
        "utility_id": UTILITY,
        "application_id": None,
        "stage": "CONTACTED",
        "occurred_at": now,
        "reported_at": now,
        "pipe_length_m": None,
        "reason": None,
        "detail": "已联系张伟 13912345678,身份证 11010519491231002X",
        "reporter": "callback",
        "task": None,
    }
    producer = make_producer(settings.kafka)
    producer.send(settings.topic("task_status"), key=b"never-opened", value=CODEC.encode("TaskStatus", status))
    producer.flush()
    producer.close()


def applications(project_codes: list[str]) -> list[dict[str, Any]]:
    """Applications filed 40 days ago and an hour ago, a third citing a project (known or not)."""
    now = datetime.now(SHANGHAI).replace(tzinfo=None)
    old = make_applications(20, seed=5, regions=["370602"], project_codes=project_codes, start=now - timedelta(days=40))
    new = make_applications(20, seed=6, regions=["370602"], project_codes=project_codes, start=now - timedelta(hours=4))
    for index, app in enumerate(new):
        app["sqbh"] = f"NEW{index:05d}"
    return old + new


def test_no_compacted_topic_keeps_an_id_number_or_an_expired_contact(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Every record of every compacted topic: no ID number; contacts only on live awaiting applications."""
    upstream = ApprovalSimulator(seed=31)
    events = upstream.generate(60)
    gateway_port, callback_port = free_port(), free_port()
    with running_utility(UTILITY) as (sim, url):
        settings = settings_for(
            kafka_bootstrap,
            unique_prefix,
            sources={
                "gonggai_interface": {"base_url": upstream.start(), "token": "approval-token", "poll_interval_s": 0.1},
                "aishandong_gateway": {"port": gateway_port, "secret": SECRET},
            },
            utilities=[utility_config(UTILITY, url, callback_token="callback-secret-0001")],
            status_callbacks={"port": callback_port},
            applications={"calendar": str(CONFIG / "calendar.yaml")},
            ledger={"calendar": str(CONFIG / "calendar.yaml"), "policies": str(CONFIG / "sla-policies.yaml")},
            privacy={"contact_retention_days": RETENTION.days},
        )
        sim.set_progress(
            callback_url=f"http://127.0.0.1:{callback_port}",
            callback_token="callback-secret-0001",
            hours_per_second=5000,
        )
        app = App(settings, serve_metrics=False)
        app.start()
        try:
            wait_until(app.ready, timeout_s=60, what="every stage running")
            known = sorted({e["xmdm"] for e in events if e.get("jsddxzqh", "").startswith("3706")})[:3]
            pushed = applications([*known, *UNKNOWN_PROJECTS])
            results = push_applications(f"http://127.0.0.1:{gateway_port}{GATEWAY_PATH}", SECRET, pushed)
            assert all(result.status == 202 for result in results), [r.status for r in results]
            report_with_a_phone(settings)
            wait_until(lambda: sim.stats().callbacks_delivered >= 5, timeout_s=90, what="reports")
            wait_until(lambda: settled(settings), timeout_s=60, what="awaiting applications settled")
            wait_until(lambda: tabled(settings, known), timeout_s=60, what="the known projects in the table")
        finally:
            app.stop()
            assert app.wait(timeout_s=20)
            upstream.stop()
    checked = check_compacted_topics(settings)
    assert checked["projects"] > 0 and checked["ledger_changelog"] > 0 and checked["router_grants"] > 0
    assert checked["awaiting_alive"] > 0, "fresh applications citing unknown projects keep waiting"
    assert checked["awaiting_expired"] > 0, "applications filed 40 days ago are released"
    assert checked["held"] == 1


def settled(settings: Settings) -> bool:
    """Whether the awaiting table holds only live applications (the expired ones tombstoned) and some of them."""
    latest = latest_values(read_topic(settings.kafka.bootstrap, settings.topic("applications_awaiting")))
    alive = [CODEC.decode_as("ConnectionApplication", v) for v in latest.values() if v]
    return bool(alive) and all(datetime.now(UTC) - a["filed_at"] < RETENTION for a in alive)


def tabled(settings: Settings, codes: list[str]) -> bool:
    """Whether the project table holds each of ``codes``."""
    table = read_topic(settings.kafka.bootstrap, settings.topic("projects"))
    return set(codes) <= {record.key.decode() for record in table}


def latest_values(records: list[ConsumerRecord]) -> dict[bytes, bytes | None]:
    """The latest value per key, as a compacted topic's reader sees it (None or b"" is a release)."""
    return {record.key: record.value for record in records}


def check_compacted_topics(settings: Settings) -> dict[str, int]:
    """Read every compacted topic end to end and assert the policy; count what was seen."""
    counts = {"awaiting_alive": 0, "awaiting_expired": 0, "held": 0}
    keys = {settings.topic(key): key for key in type(settings.topics).model_fields if key != "dlq_pattern"}
    compacted = [spec.name for spec in topics(settings) if spec.compacted]
    assert set(compacted) >= {settings.topic(k) for k in ("projects", "applications_awaiting", "ledger_changelog")}
    for topic in compacted:
        key = keys[topic]
        records = read_topic(settings.kafka.bootstrap, topic)
        counts[key] = len(records)
        for record in records:
            if not record.value:
                continue
            name, value = decoded(record.value)
            where = f"{topic}@{record.partition}/{record.offset} ({name})"
            assert id_numbers_in(value) == [], where
            if key == "applications_awaiting":
                assert (value["applicant_id_number"], value["note"]) == (None, None), where
                continue  # its contact is checked against its expiry below
            assert [s for s in strings(value) if MOBILE.search(s)] == [], where
            if key == "projects":
                assert (value["contact_name"], value["contact_mobile"]) == (None, None), where
            if name == "TaskStatus":
                counts["held"] += 1
        if key == "applications_awaiting":
            for value in latest_values(records).values():
                if not value:
                    counts["awaiting_expired"] += 1
                    continue
                awaiting = CODEC.decode_as("ConnectionApplication", value)
                assert datetime.now(UTC) - awaiting["filed_at"] < RETENTION, awaiting["application_id"]
                counts["awaiting_alive"] += 1
    return counts


def test_a_project_table_written_with_contacts_is_scrubbed_at_start(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Records an earlier version wrote with a contact are written again without it when the stage starts."""
    settings = settings_for(kafka_bootstrap, unique_prefix, applications={"calendar": str(CONFIG / "calendar.yaml")})
    ensure_topics(settings.kafka, topics(settings))
    legacy = [normalise(event, source="gonggai-interface", ingested_at=datetime.now(UTC)) for event in EVENTS]
    assert all(event["contact_mobile"] for event in legacy)
    producer = make_producer(settings.kafka)
    for event in legacy:
        value = CODEC.encode("ProjectEvent", dict(event))
        producer.send(settings.topic("projects"), key=event["project_code"].encode(), value=value)
    producer.flush()
    producer.close()
    app = App(settings, only=["project-table"], serve_metrics=False)
    app.start()
    try:
        codes = {event["project_code"] for event in legacy}
        wait_until(lambda: scrubbed(settings, len(codes)), timeout_s=60, what="the table written again")
    finally:
        app.stop()
        assert app.wait(timeout_s=20)


def scrubbed(settings: Settings, projects: int) -> bool:
    """Whether the project table's latest record of each of ``projects`` projects has no contact."""
    latest = latest_values(read_topic(settings.kafka.bootstrap, settings.topic("projects")))
    events = [CODEC.decode_as("ProjectEvent", value) for value in latest.values() if value]
    return len(events) == projects and all(e["contact_name"] is None and e["contact_mobile"] is None for e in events)
