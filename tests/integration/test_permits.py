"""External-works permits on the real broker: utility POST → permits topic → departments (simulated) → statuses."""

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

from connectors.payments.client import PaymentPoster
from connectors.payments.settings import PaymentRetry
from connectors.permits.follower import PermitFollower, catch_up
from connectors.permits.intake import PATH, PermitIntake, PermitIntakeHandler
from connectors.permits.submitter import PermitSubmitter
from connectors.runtime.dlq import error_context
from connectors.runtime.http_intake import intake_producer
from connectors.runtime.intake_settings import IntakeLimits
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.calendar import load_calendar
from routing.permits import application_id, load_policy
from schemas import Codec
from simulators.approval import ApprovalSimulator
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
POLICY = load_policy(CONFIG / "permits.yaml")
CALENDAR = load_calendar(CONFIG / "calendar.yaml")
CODEC = Codec.default()
TOKEN = "zz-water-token"
APPROVAL_TOKEN = "approval-token"
RETRY = PaymentRetry(initial_backoff_s=0.05, max_backoff_s=0.2, max_retry_after_s=0.2, max_attempts=4)


@dataclass
class Bridge:
    url: str
    permits: str
    status: str
    task_status: str
    dlq_intake: str
    dlq_submitter: str
    approval: ApprovalSimulator
    metrics: Metrics


@pytest.fixture
def bridge(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Bridge]:
    """The intake, the submitter and the follower on the broker, against a simulated approval system."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    permits, status = f"{unique_prefix}ubridge.permits.v1", f"{unique_prefix}ubridge.permit-status.v1"
    task_status = f"{unique_prefix}ubridge.task-status.v1"
    dlq_intake = f"{unique_prefix}ubridge.dlq.permit-intake.v1"
    dlq_submitter = f"{unique_prefix}ubridge.dlq.permit-submitter.v1"
    dlq_follower = f"{unique_prefix}ubridge.dlq.permit-follower.v1"
    topics = [TopicSpec(permits, 2), TopicSpec(status, 2), TopicSpec(task_status, 2)] + [
        TopicSpec(t, 1) for t in (dlq_intake, dlq_submitter, dlq_follower)
    ]
    ensure_topics(kafka, topics)
    approval = ApprovalSimulator(token=APPROVAL_TOKEN)
    approval_url = approval.start()
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    limits = IntakeLimits()
    handler = PermitIntakeHandler(tokens={TOKEN: "zhengzhou-water"}, topic=permits, dlq_topic=dlq_intake, policy=POLICY)
    intake = PermitIntake(
        handler,
        host="127.0.0.1",
        port=0,
        producer=intake_producer(kafka, limits),
        metrics=metrics,
        stop=stop,
        max_body_bytes=65536,
        limits=limits,
    )
    poster = PaymentPoster(
        "approval", token=SecretStr(APPROVAL_TOKEN), timeout_s=5, retry=RETRY, metrics=metrics, stop=stop
    )
    submitter = PermitSubmitter(
        input_topic=permits,
        status_topic=status,
        approval_url=approval_url,
        poster=poster,
        policy=POLICY,
        calendar=CALENDAR,
        metrics=metrics,
        task_status_topic=task_status,
    )
    follower = PermitFollower(
        status_topic=status,
        approval_url=approval_url,
        token=SecretStr(APPROVAL_TOKEN),
        policy=POLICY,
        calendar=CALENDAR,
        metrics=metrics,
        poll_interval_s=0.2,
    )
    reader = make_consumer(kafka, group_id=None)
    try:
        catch_up(reader, status, follower)
    finally:
        reader.close()
    loops = [
        StageLoop(
            processor,
            consumer=make_consumer(kafka, group_id=f"{unique_prefix}{processor.stage}"),
            producer=make_producer(kafka),
            dlq_topic=dlq,
            metrics=metrics,
            stop=stop,
        )
        for processor, dlq in ((submitter, dlq_submitter), (follower, dlq_follower))
    ]
    threads = [threading.Thread(target=intake.run, daemon=True)] + [
        threading.Thread(target=loop.run, daemon=True) for loop in loops
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: intake.state.ready, timeout_s=30, what="the intake listening")
    yield Bridge(
        f"http://127.0.0.1:{intake.port}{PATH}",
        permits,
        status,
        task_status,
        dlq_intake,
        dlq_submitter,
        approval,
        metrics,
    )
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()
    approval.stop()


def file(bridge: Bridge, body: dict[str, Any] | bytes, *, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    """POST an application; the status and the JSON answer."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = httpx.post(bridge.url, content=data, headers=headers, timeout=30)
    return response.status_code, response.json()


def application(
    number: str, *, length: float = 320.0, kinds: tuple[str, ...] = ("PLANNING", "ROAD_EXCAVATION")
) -> dict[str, Any]:
    """A Zhengzhou application ``number``."""
    return {
        "application_no": number,
        "task_id": f"task-{number}",
        "project_code": "2026-410105-47-01-000001",
        "region_code": "410105",
        "kinds": list(kinds),
        "pipe_length_m": length,
        "route": "花园路 经三路口 至 地块红线",
        "filed_at": "2026-12-01T09:00:00+08:00",
    }


def states(kafka_bootstrap: str, bridge: Bridge) -> dict[str, list[tuple[str, str | None]]]:
    """Permit id → its states on the status topic, in order, with reasons."""
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for record in read_topic(kafka_bootstrap, bridge.status):
        status = CODEC.decode_as("PermitStatus", record.value)
        seen.setdefault(status["permit_id"], []).append((status["state"], status["reason"]))
    return seen


def test_permits_go_to_every_department_and_their_decisions_come_back(kafka_bootstrap: str, bridge: Bridge) -> None:
    """A 320 m application reaches planning and road at once; both are granted; a resend files nothing twice."""
    status, answer = file(bridge, application("A-1"))
    assert status == 202
    assert answer["permits"] == {"PLANNING": "planning", "ROAD_EXCAVATION": "road"}
    app_id = application_id("zhengzhou-water", "A-1")
    assert answer["application_id"] == app_id
    assert file(bridge, application("A-1"))[0] == 202
    wanted = {f"{app_id}:PLANNING", f"{app_id}:ROAD_EXCAVATION"}
    done = [("SUBMITTED", None), ("ACCEPTED", None), ("GRANTED", None)]
    wait_until(
        lambda: all(states(kafka_bootstrap, bridge).get(p, [])[-1:] == [("GRANTED", None)] for p in wanted),
        timeout_s=60,
        what="both permits granted",
    )
    seen = states(kafka_bootstrap, bridge)
    assert {p: seen[p][-3:] for p in wanted} == dict.fromkeys(wanted, done)
    assert sorted(p["permit_id"] for p in bridge.approval.permits.permits()) == sorted(wanted)
    assert {p["department"] for p in bridge.approval.permits.permits()} == {"planning", "road"}
    assert read_topic(kafka_bootstrap, bridge.dlq_submitter) == []
    reports = [CODEC.decode_as("TaskStatus", r.value) for r in read_topic(kafka_bootstrap, bridge.task_status)]
    assert {(r["task_id"], r["stage"], r["pipe_length_m"], r["reporter"]) for r in reports} == {
        ("task-A-1", "EXTERNAL_WORKS", 320.0, "permit-submitter")
    }


def test_a_short_pipe_files_a_commitment_and_the_rest_is_refused_or_asked_for_more(
    kafka_bootstrap: str, bridge: Bridge
) -> None:
    """120 m: planning is 告知承诺 (no request); road asks for more then grants; greening refuses with its reason."""
    bridge.approval.permits.script("road", [("MORE_REQUIRED", "缺少管线路由图"), ("ACCEPTED", None), ("GRANTED", None)])
    bridge.approval.permits.script("greening", [("ACCEPTED", None), ("REFUSED", "占用古树保护范围")])
    status, answer = file(
        bridge, application("B-1", length=120.0, kinds=("PLANNING", "ROAD_EXCAVATION", "TREE_FELLING"))
    )
    assert (status, answer["commitment_notice"]) == (202, True)
    assert answer["permits"] == {"PLANNING": "COMMITTED", "ROAD_EXCAVATION": "road", "TREE_FELLING": "greening"}
    app_id = application_id("zhengzhou-water", "B-1")
    road, trees, planning = (f"{app_id}:{k}" for k in ("ROAD_EXCAVATION", "TREE_FELLING", "PLANNING"))
    wait_until(
        lambda: (
            states(kafka_bootstrap, bridge).get(road, [])[-1:] == [("GRANTED", None)]
            and states(kafka_bootstrap, bridge).get(trees, [])[-1:] == [("REFUSED", "占用古树保护范围")]
        ),
        timeout_s=60,
        what="road granted and trees refused",
    )
    seen = states(kafka_bootstrap, bridge)
    assert seen[planning] == [("COMMITTED", None)]
    assert seen[road] == [
        ("SUBMITTED", None),
        ("MORE_REQUIRED", "缺少管线路由图"),
        ("ACCEPTED", None),
        ("GRANTED", None),
    ]
    assert seen[trees] == [("SUBMITTED", None), ("ACCEPTED", None), ("REFUSED", "占用古树保护范围")]
    assert planning not in {p["permit_id"] for p in bridge.approval.permits.permits()}
    sample = bridge.metrics.registry.get_sample_value
    assert sample("ubridge_permits_filed_total", {"department": "commitment"}) == 1
    assert sample("ubridge_permit_states_total", {"department": "greening", "state": "REFUSED"}) == 1
    assert sample("ubridge_permit_states_total", {"department": "road", "state": "MORE_REQUIRED"}) == 1


def test_a_flaky_approval_system_is_retried_and_one_down_is_dead_lettered(kafka_bootstrap: str, bridge: Bridge) -> None:
    """Two 503s are retried through; an outage outlasting the attempts dead-letters the application with why."""
    desks = bridge.approval.permits
    desks.set_faults(outage_s=0.15, retry_after_s=0.05)
    assert file(bridge, application("C-1", kinds=("ROAD_OCCUPATION",)))[0] == 202
    app_id = application_id("zhengzhou-water", "C-1")
    wait_until(lambda: f"{app_id}:ROAD_OCCUPATION" in states(kafka_bootstrap, bridge), timeout_s=60, what="C-1 filed")
    desks.set_faults(outage_s=120, retry_after_s=0.05)
    assert file(bridge, application("C-2", kinds=("GREEN_SPACE",)))[0] == 202
    wait_until(lambda: read_topic(kafka_bootstrap, bridge.dlq_submitter) != [], timeout_s=60, what="a dead letter")
    desks.set_faults()
    letters = read_topic(kafka_bootstrap, bridge.dlq_submitter)
    assert [r.key.decode() for r in letters] == [application_id("zhengzhou-water", "C-2")]
    context = error_context(letters[0].headers)
    assert context["field"] == "kinds"
    assert "GREEN_SPACE to greening" in context["message"]
    assert "still failing after 4 attempts" in context["message"]
    assert CODEC.decode_as("PermitApplication", letters[0].value)["application_no"] == "C-2"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"pipe_length_m": -3}, 422, "pipe_length_m"),
        ({"kinds": ["ROAD_CLOSURE"]}, 422, "kinds"),
        ({"colour": "red"}, 422, "colour"),
        ({"filed_at": "2026-12-01T09:00:00"}, 422, "filed_at"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_dead_lettered(
    kafka_bootstrap: str, bridge: Bridge, body: dict[str, Any], status: int, field: str
) -> None:
    """Each bad field gets a 4xx naming it, and its body goes to the intake's dead-letter topic with the reason."""
    sent = {**application("D-1"), **body}
    answer = file(bridge, sent)
    assert answer[0] == status
    assert answer[1]["field"] == field
    letters = read_topic(kafka_bootstrap, bridge.dlq_intake)
    assert len(letters) == 1
    assert json.loads(letters[0].value) == sent
    assert error_context(letters[0].headers)["field"] == field
    assert read_topic(kafka_bootstrap, bridge.permits) == []


def test_a_bad_body_and_a_bad_token_are_refused(kafka_bootstrap: str, bridge: Bridge) -> None:
    """Not JSON: 400 and dead-lettered; an unknown token: 401 and nothing stored."""
    assert file(bridge, b"{not json")[0] == 400
    assert file(bridge, application("E-1"), token="wrong")[0] == 401
    assert len(read_topic(kafka_bootstrap, bridge.dlq_intake)) == 1
    assert read_topic(kafka_bootstrap, bridge.permits) == []
