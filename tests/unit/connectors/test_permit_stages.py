"""The permit stages on plain records: a permit is published once, and a replayed state never moves one back."""

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.permits.follower import PermitFollower
from connectors.permits.notices import PermitNotices, notice_body
from connectors.permits.submitter import PermitSubmitter
from connectors.runtime.interface import Delivered
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import BoundedRetry, PeerPoster
from routing.calendar import load_calendar
from routing.errors import DataError
from routing.permits import PermitStatus, load_policy, parse_application, permit_id
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
POLICY = load_policy(CONFIG / "permits.yaml")
CALENDAR = load_calendar(CONFIG / "calendar.yaml")
CODEC = Codec.default()
NOW = datetime(2026, 12, 1, 2, tzinfo=UTC)
RETRY = BoundedRetry(initial_backoff_s=0.001, max_backoff_s=0.002, max_retry_after_s=0.01, max_attempts=2)


def record(value: bytes, offset: int = 0) -> ConsumerRecord:
    """A consumed record of ``value``."""
    return ConsumerRecord("in", 0, -1, offset, 0, 0, b"k", value, [], None, 0, 0, 0)


def application_record(project_code: str | None = "2026-410105-47-01-000001") -> bytes:
    """A Zhengzhou application for planning and road excavation, encoded."""
    body = {
        "application_no": "A-1",
        "task_id": "task-1",
        "project_code": project_code,
        "region_code": "410105",
        "kinds": ["PLANNING", "ROAD_EXCAVATION"],
        "pipe_length_m": 320.0,
        "route": "花园路",
        "filed_at": "2026-12-01T09:00:00+08:00",
    }
    application = parse_application(body, utility_id="zhengzhou-water", policy=POLICY, source="t", now=NOW)
    return CODEC.encode("PermitApplication", dict(application))


def poster(posted: list[dict[str, Any]], metrics: Metrics, status: int = 201) -> PeerPoster:
    """A poster to a desk that records each request and answers ``status``."""

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append({"key": request.headers["Idempotency-Key"], "url": str(request.url), "body": request.read()})
        return httpx.Response(status, json={"reference": "SP1", "state": "SUBMITTED"})

    return PeerPoster(
        "approval",
        subject="permit",
        token=SecretStr("t"),
        timeout_s=1,
        retry=RETRY,
        retries=metrics.permit_retries,
        stop=threading.Event(),
        transport=httpx.MockTransport(answer),
    )


def submitter(posted: list[dict[str, Any]], published: set[str]) -> PermitSubmitter:
    """A submitter that knows ``published`` permits."""
    metrics = Metrics(CollectorRegistry())
    return PermitSubmitter(
        input_topic="permits",
        status_topic="status",
        approval_url="http://desk",
        poster=poster(posted, metrics),
        policy=POLICY,
        calendar=CALENDAR,
        metrics=metrics,
        task_status_topic="task-status",
        published=published,
        clock=lambda: NOW,
    )


def test_an_application_files_each_permit_once_however_often_it_comes() -> None:
    """The first time: two posts, two SUBMITTED and the task's EXTERNAL_WORKS; a resend: nothing at all."""
    posted: list[dict[str, Any]] = []
    stage = submitter(posted, set())
    try:
        (first,) = stage.process([record(application_record())])
        (again,) = stage.process([record(application_record(), 1)])
    finally:
        stage.close()
    assert isinstance(first, Delivered)
    assert sorted(o.topic for o in first.outputs) == ["status", "status", "task-status"]
    assert len(posted) == 2
    assert again == Delivered(outputs=[])


def test_works_without_a_project_are_filed_without_a_project_code() -> None:
    """A 爱山东 connection's application (no 项目代码) is posted and published with a null project code."""
    posted: list[dict[str, Any]] = []
    stage = submitter(posted, set())
    try:
        (outcome,) = stage.process([record(application_record(project_code=None))])
    finally:
        stage.close()
    assert isinstance(outcome, Delivered)
    states = [CODEC.decode_as("PermitStatus", o.value) for o in outcome.outputs if o.topic == "status"]
    assert [(s["state"], s["project_code"]) for s in states] == [("SUBMITTED", None), ("SUBMITTED", None)]
    assert [json.loads(p["body"])["project_code"] for p in posted] == [None, None]


def test_a_restarted_submitter_files_only_the_permits_not_on_the_topic() -> None:
    """One permit of two was published before the restart: only the other is posted and published."""
    posted: list[dict[str, Any]] = []
    application = CODEC.decode_as("PermitApplication", application_record())
    done = permit_id(application["application_id"], "PLANNING")
    stage = submitter(posted, {done})
    try:
        (outcome,) = stage.process([record(application_record())])
    finally:
        stage.close()
    assert isinstance(outcome, Delivered)
    states = [CODEC.decode_as("PermitStatus", o.value) for o in outcome.outputs if o.topic == "status"]
    assert [(s["kind"], s["state"]) for s in states] == [("ROAD_EXCAVATION", "SUBMITTED")]
    assert [p["key"] for p in posted] == [permit_id(application["application_id"], "ROAD_EXCAVATION")]


def status(state: str, minutes: int) -> PermitStatus:
    """The road permit of A-1 in ``state``, ``minutes`` after NOW."""
    at = NOW + timedelta(minutes=minutes)
    return {
        "permit_id": "app:ROAD_EXCAVATION",
        "application_id": "app",
        "utility_id": "zhengzhou-water",
        "task_id": "task-1",
        "project_code": "2026-410105-47-01-000001",
        "kind": "ROAD_EXCAVATION",
        "department": "road",
        "state": state,  # type: ignore[typeddict-item]
        "reason": None,
        "reference": "SP1",
        "rule_id": "zhengzhou",
        "due_at": None,
        "occurred_at": at,
        "reported_at": at,
        "working_hours": None,
    }


def follower() -> PermitFollower:
    """A follower whose approval system is never asked."""
    return PermitFollower(
        status_topic="status",
        approval_url="http://desk",
        token=SecretStr("t"),
        policy=POLICY,
        calendar=CALENDAR,
        metrics=Metrics(CollectorRegistry()),
        transport=httpx.MockTransport(lambda _: httpx.Response(500)),
    )


def test_a_replayed_submission_does_not_move_a_permit_back() -> None:
    """SUBMITTED, ACCEPTED, then SUBMITTED again (a replay, even dated later): the permit stays ACCEPTED."""
    stage = follower()
    try:
        stage.learn([status("SUBMITTED", 0), status("ACCEPTED", 5), status("SUBMITTED", 9)])
        permits = stage.followed()
    finally:
        stage.close()
    assert [f.status["state"] for f in permits] == ["ACCEPTED"]


def test_a_decided_permit_stays_decided_and_a_wait_is_clocked() -> None:
    """MORE_REQUIRED then ACCEPTED opens and closes a 补正 wait; GRANTED then REFUSED keeps GRANTED."""
    stage = follower()
    try:
        stage.learn([status("SUBMITTED", 0), status("MORE_REQUIRED", 5), status("ACCEPTED", 65)])
        stage.learn([status("GRANTED", 70), status("REFUSED", 80)])
        (followed,) = stage.followed()
    finally:
        stage.close()
    assert followed.status["state"] == "GRANTED"
    assert followed.waits == [(NOW + timedelta(minutes=5), NOW + timedelta(minutes=65))]


def test_a_notice_goes_to_its_utility_with_a_key_per_state_and_an_unknown_utility_is_dead_lettered() -> None:
    """The utility gets the status as JSON keyed <permit>:<state>; a status of an unconfigured utility fails."""
    metrics = Metrics(CollectorRegistry())
    posted: list[dict[str, Any]] = []
    stage = PermitNotices(
        input_topic="status", targets={"zhengzhou-water": ("http://zz/v1/permits/status", poster(posted, metrics, 200))}
    )
    other = {**status("GRANTED", 3), "utility_id": "nowhere-gas"}
    try:
        told, refused = stage.process(
            [
                record(CODEC.encode("PermitStatus", dict(status("ACCEPTED", 1)))),
                record(CODEC.encode("PermitStatus", other)),
            ]
        )
    finally:
        stage.close()
    assert told == Delivered()
    assert [(p["key"], p["url"]) for p in posted] == [("app:ROAD_EXCAVATION:ACCEPTED", "http://zz/v1/permits/status")]
    assert isinstance(refused, DataError)
    assert refused.field == "utility_id"
    assert "nowhere-gas" in str(refused)
    assert notice_body(status("ACCEPTED", 1))["occurred_at"] == "2026-12-01T02:01:00+00:00"
