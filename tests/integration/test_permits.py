"""External-works permits on the real broker: utility POST → permits topic → departments (simulated) → statuses."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.permits.follower import STAGE as PERMIT_FOLLOWER
from connectors.permits.intake import PATH
from connectors.permits.intake import STAGE as PERMIT_INTAKE
from connectors.permits.notices import STAGE as PERMIT_NOTICES
from connectors.permits.submitter import STAGE as PERMIT_SUBMITTER
from connectors.permits.wiring import (
    build_permit_follower,
    build_permit_intake,
    build_permit_notices,
    build_permit_submitter,
)
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import BoundedRetry
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.permits import application_id
from schemas import Codec
from simulators.approval import ApprovalSimulator
from simulators.utility import UtilitySimulator
from tests.support import read_topic, received_status, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
CODEC = Codec.default()
UTILITY = "zhengzhou-water"
TOKEN = "zz-water-callback-token"
APPROVAL_TOKEN = "approval-token"
RETRY = BoundedRetry(initial_backoff_s=0.05, max_backoff_s=0.2, max_retry_after_s=0.2, max_attempts=4)


@dataclass
class Bridge:
    url: str
    permits: str
    status: str
    task_status: str
    dlq_intake: str
    dlq_submitter: str
    dlq_notices: str
    approval: ApprovalSimulator
    utility: UtilitySimulator
    metrics: Metrics
    kafka: KafkaSettings
    delivered: set[str] = field(default_factory=set)


@pytest.fixture
def bridge(kafka_bootstrap: str, unique_prefix: str) -> Iterator[Bridge]:
    """The four permit stages as ``ubridge run`` builds them, against simulated departments and utility."""
    approval = ApprovalSimulator(token=APPROVAL_TOKEN)
    approval_url = approval.start()
    utility = UtilitySimulator(UTILITY, token=f"token-{UTILITY}")
    utility_url = utility.start()
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        utilities=[utility_config(UTILITY, utility_url, callback_token=TOKEN)],
        permits={
            "intake": {"port": 0},
            "approval": {"url": approval_url, "token": APPROVAL_TOKEN, "timeout_s": 5},
            "calendar": str(CONFIG / "calendar.yaml"),
            "poll_interval_s": 0.2,
            "retry": RETRY.model_dump(),
        },
    )
    # one partition of permits: the submitter takes applications in the order they were filed
    topics = [TopicSpec(settings.topic("permits"), 1)] + [
        TopicSpec(settings.topic(name), 2) for name in ("permit_status", "task_status")
    ]
    stages = (PERMIT_SUBMITTER, PERMIT_FOLLOWER, PERMIT_NOTICES, PERMIT_INTAKE)
    ensure_topics(settings.kafka, topics + [TopicSpec(settings.dlq_topic(stage), 1) for stage in stages])
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    intake = build_permit_intake(settings, metrics=metrics, stop=stop)
    processors = (
        build_permit_submitter(settings, metrics=metrics, stop=stop),
        build_permit_follower(settings, metrics=metrics),
        build_permit_notices(settings, metrics=metrics, stop=stop, codec=CODEC),
    )
    loops = [
        StageLoop(
            processor,
            consumer=make_consumer(settings.kafka, group_id=f"{unique_prefix}{processor.stage}"),
            producer=make_producer(settings.kafka),
            dlq_topic=settings.dlq_topic(processor.stage),
            metrics=metrics,
            stop=stop,
        )
        for processor in processors
    ]
    threads = [threading.Thread(target=intake.run, daemon=True)] + [
        threading.Thread(target=loop.run, daemon=True) for loop in loops
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: intake.state.ready, timeout_s=30, what="the intake listening")
    yield Bridge(
        f"http://127.0.0.1:{intake.port}{PATH}",
        settings.topic("permits"),
        settings.topic("permit_status"),
        settings.topic("task_status"),
        settings.dlq_topic(PERMIT_INTAKE),
        settings.dlq_topic(PERMIT_SUBMITTER),
        settings.dlq_topic(PERMIT_NOTICES),
        approval,
        utility,
        metrics,
        settings.kafka,
    )
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()
    approval.stop()
    utility.stop()


def deliver(bridge: Bridge, task_id: str, utility: str = UTILITY) -> None:
    """Write the sink's RECEIVED of ``task_id``, as a sink does once the utility took the task."""
    producer = make_producer(bridge.kafka)
    try:
        value = CODEC.encode("TaskStatus", dict(received_status(utility, task_id)))
        producer.send(bridge.task_status, key=task_id.encode(), value=value).get(10)
    finally:
        producer.close()


def file(bridge: Bridge, body: dict[str, Any] | bytes, *, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    """POST an application (its task delivered first, once); the status and the JSON answer."""
    if isinstance(body, dict) and body.get("task_id") not in bridge.delivered:
        deliver(bridge, body["task_id"])
        bridge.delivered.add(body["task_id"])
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
    granted = [CODEC.decode_as("PermitStatus", r.value) for r in read_topic(kafka_bootstrap, bridge.status)]
    for status in (s for s in granted if s["state"] == "GRANTED"):
        # decided within seconds of the submission: the department's clock shows (almost) none of its 3 days
        assert status["due_at"] is not None and status["occurred_at"] <= status["due_at"]
        assert status["working_hours"] is not None and 0 <= status["working_hours"] < 1
    on_time = {"department": "planning", "on_time": "yes"}
    assert bridge.metrics.registry.get_sample_value("ubridge_permit_decisions_total", on_time) == 1
    assert sorted(p["permit_id"] for p in bridge.approval.permits.permits()) == sorted(wanted)
    assert {p["department"] for p in bridge.approval.permits.permits()} == {"planning", "road"}
    assert read_topic(kafka_bootstrap, bridge.dlq_submitter) == []
    reports = [CODEC.decode_as("TaskStatus", r.value) for r in read_topic(kafka_bootstrap, bridge.task_status)]
    reports = [r for r in reports if r["reporter"] != "sink"]
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


def test_a_resend_after_the_decision_files_nothing_and_the_utility_is_told_each_state_once(
    kafka_bootstrap: str, bridge: Bridge
) -> None:
    """Granted, then resent: no new submission on the topic; the utility got SUBMITTED, ACCEPTED, GRANTED once."""
    assert file(bridge, application("F-1", kinds=("ROAD_OCCUPATION",)))[0] == 202
    permit = f"{application_id(UTILITY, 'F-1')}:ROAD_OCCUPATION"
    wait_until(
        lambda: states(kafka_bootstrap, bridge).get(permit, [])[-1:] == [("GRANTED", None)],
        timeout_s=60,
        what="F-1 granted",
    )
    assert file(bridge, application("F-1", kinds=("ROAD_OCCUPATION",)))[0] == 202
    # applications are taken in order (one partition): once F-2 is filed, the resend of F-1 was handled
    assert file(bridge, application("F-2", kinds=("GREEN_SPACE",)))[0] == 202
    later = f"{application_id(UTILITY, 'F-2')}:GREEN_SPACE"
    wait_until(lambda: later in states(kafka_bootstrap, bridge), timeout_s=60, what="F-2 filed")
    assert states(kafka_bootstrap, bridge)[permit] == [("SUBMITTED", None), ("ACCEPTED", None), ("GRANTED", None)]
    assert [p["permit_id"] for p in bridge.approval.permits.permits()].count(permit) == 1
    wait_until(
        lambda: bridge.utility.permits.states().get(permit) == ["SUBMITTED", "ACCEPTED", "GRANTED"],
        timeout_s=60,
        what="the utility told of each state",
    )
    (granted,) = [n for n in bridge.utility.permits.notices() if n["permit_id"] == permit and n["state"] == "GRANTED"]
    assert (granted["department"], granted["kind"], granted["task_id"]) == ("traffic", "ROAD_OCCUPATION", "task-F-1")


def test_a_household_connection_without_a_project_code_gets_its_permit(kafka_bootstrap: str, bridge: Bridge) -> None:
    """A 爱山东 connection has no 项目代码: filed without one, submitted, granted, and the utility told so."""
    body = application("H-1", kinds=("ROAD_EXCAVATION",))
    del body["project_code"]
    assert file(bridge, body)[0] == 202
    permit = f"{application_id(UTILITY, 'H-1')}:ROAD_EXCAVATION"
    wait_until(
        lambda: bridge.utility.permits.states().get(permit, [])[-1:] == ["GRANTED"],
        timeout_s=60,
        what="H-1 granted and the utility told",
    )
    (submitted,) = [p for p in bridge.approval.permits.permits() if p["permit_id"] == permit]
    assert submitted["request"]["project_code"] is None
    published = [CODEC.decode_as("PermitStatus", r.value) for r in read_topic(kafka_bootstrap, bridge.status)]
    assert {s["project_code"] for s in published if s["permit_id"] == permit} == {None}
    assert read_topic(kafka_bootstrap, bridge.dlq_intake) == []


def test_a_utility_refusing_notices_gets_them_dead_lettered_and_the_others_go_on(
    kafka_bootstrap: str, bridge: Bridge
) -> None:
    """The utility's permit desk answers 400: each notice is dead-lettered with why, and the permits move on."""
    bridge.utility.permits.set_faults(error_rate=1.0, error_status=400)
    assert file(bridge, application("G-1", kinds=("GREEN_SPACE",)))[0] == 202
    permit = f"{application_id(UTILITY, 'G-1')}:GREEN_SPACE"
    wait_until(
        lambda: len(read_topic(kafka_bootstrap, bridge.dlq_notices)) == 3,
        timeout_s=60,
        what="three notices dead-lettered",
    )
    assert states(kafka_bootstrap, bridge)[permit][-1] == ("GRANTED", None)
    letters = read_topic(kafka_bootstrap, bridge.dlq_notices)
    assert [CODEC.decode_as("PermitStatus", r.value)["state"] for r in letters] == ["SUBMITTED", "ACCEPTED", "GRANTED"]
    assert all("refused the permit notice with 400" in error_context(r.headers)["message"] for r in letters)


def test_a_utility_files_only_for_its_own_delivered_tasks(kafka_bootstrap: str, bridge: Bridge) -> None:
    """Another utility's task and a task never delivered: 404 naming task_id, dead-lettered, nothing filed."""
    deliver(bridge, "task-H-1", utility="zhengzhou-gas")
    bridge.delivered.update({"task-H-1", "task-H-2"})  # H-2 is never delivered
    for number in ("H-1", "H-2"):
        status, answer = file(bridge, application(number))
        assert (status, answer["field"]) == (404, "task_id")
        assert f"no task 'task-{number}' was delivered to zhengzhou-water" in answer["error"]
    letters = read_topic(kafka_bootstrap, bridge.dlq_intake)
    assert [json.loads(r.value)["application_no"] for r in letters] == ["H-1", "H-2"]
    assert read_topic(kafka_bootstrap, bridge.permits) == []
