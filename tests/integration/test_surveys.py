"""Joint site surveys on the real broker: tasks of one project → one proposal to all → replies → agreement."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from connectors.ledger.show import find_surveys, survey_line
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import Settings
from connectors.surveys.intake import STAGE as SURVEY_REPLIES
from connectors.surveys.notices import STAGE as SURVEY_NOTICES
from connectors.surveys.stage import STAGE as JOINT_SURVEYS
from connectors.surveys.wiring import build_joint_surveys, build_survey_notices, build_survey_replies
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import read_topic, received_status, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "deploy" / "config"
CODEC = Codec.default()
UTILITIES = ("yantai-water", "yantai-gas", "yantai-heat")
PROJECT = "2026-370602-47-01-000123"  # the project of tests.support.make_task, in 芝罘 (370602)


@dataclass
class Bridge:
    settings: Settings
    utilities: dict[str, UtilitySimulator]
    reply_url: str


def policy(tmp_path: Path) -> Path:
    """The shipped survey policy with Yantai (3706) enabled, led by its housing bureau."""
    document = yaml.safe_load((CONFIG / "surveys.yaml").read_text(encoding="utf-8"))
    yantai = {**document["regions"][0], "regions": ["3706"], "lead_department": "烟台市住房和城乡建设局"}
    path = tmp_path / "surveys.yaml"
    path.write_text(yaml.safe_dump({**document, "regions": [yantai]}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def bridge(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> Iterator[Bridge]:
    """The three survey stages as ``ubridge run`` builds them, against three simulated Yantai utilities."""
    sims = {u: UtilitySimulator(u, token=f"token-{u}") for u in UTILITIES}
    urls = {u: sim.start() for u, sim in sims.items()}
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        utilities=[utility_config(u, urls[u], callback_token=f"callback-{u}") for u in UTILITIES],
        surveys={
            "policy": str(policy(tmp_path)),
            "calendar": str(CONFIG / "calendar.yaml"),
            "settle_s": 0.5,
            "intake": {"port": 0},
            "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.2, "max_attempts": 3},
        },
    )
    topics = [TopicSpec(settings.topic(n), 2) for n in ("task_status", "surveys", "survey_replies")]
    dlqs = [TopicSpec(settings.dlq_topic(s), 1) for s in (SURVEY_REPLIES, JOINT_SURVEYS, SURVEY_NOTICES)]
    ensure_topics(settings.kafka, topics + dlqs)
    metrics, stop = Metrics(CollectorRegistry()), threading.Event()
    intake = build_survey_replies(settings, metrics=metrics, stop=stop)
    loops = [
        StageLoop(
            processor,
            consumer=make_consumer(settings.kafka, group_id=f"{unique_prefix}{processor.stage}"),
            producer=make_producer(settings.kafka),
            dlq_topic=settings.dlq_topic(processor.stage),
            metrics=metrics,
            stop=stop,
        )
        for processor in (
            build_joint_surveys(settings, codec=CODEC),
            build_survey_notices(settings, metrics=metrics, stop=stop, codec=CODEC),
        )
    ]
    threads = [threading.Thread(target=intake.run, daemon=True)] + [
        threading.Thread(target=loop.run, daemon=True) for loop in loops
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: intake.state.ready, timeout_s=30, what="the reply intake listening")
    yield Bridge(settings, sims, f"http://127.0.0.1:{intake.port}")
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()
    for sim in sims.values():
        sim.stop()


def deliver(bridge: Bridge, utility: str, task_id: str, *, project: str = PROJECT, region: str = "370602") -> None:
    """The sink's RECEIVED of a pre-intervention task of ``project`` for ``utility``."""
    status = received_status(utility, task_id)
    status["task"] = {**status["task"], "project_code": project, "region_code": region}  # type: ignore[typeddict-item]
    producer = make_producer(bridge.settings.kafka)
    try:
        value = CODEC.encode("TaskStatus", dict(status))
        producer.send(bridge.settings.topic("task_status"), key=task_id.encode(), value=value).get(10)
    finally:
        producer.close()


def surveys(bridge: Bridge) -> list[dict[str, Any]]:
    """Every record of the surveys topic."""
    records = read_topic(bridge.settings.kafka.bootstrap, bridge.settings.topic("surveys"))
    return [CODEC.decode_as("SurveyProposal", r.value) for r in sorted(records, key=lambda r: r.timestamp)]


def answer(bridge: Bridge, utility: str, survey_id: str, body: dict[str, Any] | bytes) -> httpx.Response:
    """POST ``utility``'s reply to ``survey_id``."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer callback-{utility}", "Content-Type": "application/json"}
    return httpx.post(f"{bridge.reply_url}/v1/surveys/{survey_id}/replies", content=data, headers=headers, timeout=30)


def seen(sim: UtilitySimulator) -> list[tuple[int, str, str]]:
    """(round, state, slot start) of each survey notice the utility received."""
    return [(n["round"], n["state"], n["slot_start"]) for n in sim.surveys.notices()]


def test_one_proposal_reaches_every_utility_and_a_counter_proposal_is_agreed_by_all(bridge: Bridge) -> None:
    """Water counters round 1 with the next day; gas and heat accept round 2: AGREED on water's slot, told to all."""
    for utility in UTILITIES:
        counter = 1.0 if utility == "yantai-water" else 0.0
        bridge.utilities[utility].surveys.configure(
            reply_url=bridge.reply_url, reply_token=f"callback-{utility}", counter_rate=counter
        )
    for n, utility in enumerate(UTILITIES):
        deliver(bridge, utility, f"task-{n}")
    wait_until(lambda: [s["state"] for s in surveys(bridge)][-1:] == ["AGREED"], timeout_s=60, what="agreement")
    first, *_, agreed = surveys(bridge)
    assert (first["round"], first["state"], first["proposed_by"]) == (1, "PROPOSED", None)
    assert first["lead_department"] == "烟台市住房和城乡建设局"
    assert {p["utility_id"]: p["task_id"] for p in first["participants"]} == {
        u: f"task-{n}" for n, u in enumerate(UTILITIES)
    }
    assert (agreed["round"], sorted(agreed["accepted"])) == (2, sorted(UTILITIES))
    assert agreed["slot_start"] == first["slot_start"] + timedelta(days=1)
    wait_until(lambda: all(len(seen(sim)) == 3 for sim in bridge.utilities.values()), timeout_s=30, what="every notice")
    expected = [
        (1, "PROPOSED", first["slot_start"].isoformat()),
        (2, "PROPOSED", agreed["slot_start"].isoformat()),
        (2, "AGREED", agreed["slot_start"].isoformat()),
    ]
    assert {u: seen(sim) for u, sim in bridge.utilities.items()} == dict.fromkeys(UTILITIES, expected)
    (notice,) = [n for n in bridge.utilities["yantai-gas"].surveys.notices() if n["state"] == "AGREED"]
    assert (notice["task_id"], sorted(notice["other_utilities"])) == ("task-1", ["yantai-heat", "yantai-water"])
    shown = survey_line(find_surveys(bridge.settings.kafka, bridge.settings.topic("surveys")), "task-1")
    assert shown is not None
    assert shown.startswith(f"joint survey (联合踏勘) {first['survey_id']}: AGREED ")
    assert shown.endswith("(round 2), with yantai-heat, yantai-water; led by 烟台市住房和城乡建设局")


def test_a_region_without_joint_surveys_gets_none_and_a_restart_proposes_nothing_again(bridge: Bridge) -> None:
    """Jinan (off) stays without a survey while Yantai's is proposed; the stage rebuilt proposes nothing more."""
    for n, utility in enumerate(UTILITIES):
        deliver(bridge, utility, f"jinan-{n}", project="2026-370102-47-01-000009", region="370102")
        deliver(bridge, utility, f"task-{n}")
    wait_until(lambda: len(surveys(bridge)) == 1, timeout_s=60, what="Yantai's proposal")
    assert surveys(bridge)[0]["project_code"] == PROJECT
    restarted = build_joint_surveys(bridge.settings, codec=CODEC)
    assert restarted.tick(datetime.now(UTC) + timedelta(hours=1)) == []


def test_bad_replies_are_refused_or_dead_lettered_with_their_reason(kafka_bootstrap: str, bridge: Bridge) -> None:
    """A malformed reply: 422 naming the field, dead-lettered; a reply to no known survey: the stage dead-letters it."""
    survey_id = "survey-" + "0" * 24
    refused = answer(
        bridge, "yantai-gas", survey_id, {"round": 1, "answer": "COUNTER", "replied_at": "2026-12-07T09:00:00+08:00"}
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "slot_start")
    letters = read_topic(kafka_bootstrap, bridge.settings.dlq_topic(SURVEY_REPLIES))
    assert [json.loads(r.value)["answer"] for r in letters] == ["COUNTER"]
    assert answer(bridge, "yantai-gas", survey_id, b"[]").status_code == 400
    ok = answer(
        bridge, "yantai-gas", survey_id, {"round": 1, "answer": "ACCEPT", "replied_at": "2026-12-07T09:00:00+08:00"}
    )
    assert ok.status_code == 202
    stage_letters = bridge.settings.dlq_topic(JOINT_SURVEYS)
    wait_until(lambda: read_topic(kafka_bootstrap, stage_letters) != [], timeout_s=60, what="the stage's dead letter")
    (letter,) = read_topic(kafka_bootstrap, stage_letters)
    assert error_context(letter.headers)["field"] == "survey_id"
