"""The joint-survey stage on plain records: one survey per project and division, each reply moving its own."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered
from connectors.surveys.stage import JointSurveys
from routing.calendar import load_calendar
from routing.surveys import SurveyPolicy, load_survey_policy
from schemas import Codec
from tests.support import received_status

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CODEC = Codec.default()
NOW = datetime(2026, 12, 4, 2, tzinfo=UTC)  # a Friday morning in Shanghai
PROJECT = "2026-370602-47-01-000123"


def yantai() -> SurveyPolicy:
    """The shipped policy with its enabled region moved to Yantai (3706)."""
    shipped = load_survey_policy(CONFIG / "surveys.yaml")
    return shipped.model_copy(update={"regions": (shipped.regions[0].model_copy(update={"regions": ("3706",)}),)})


def status(utility: str, task_id: str, region: str) -> ConsumerRecord:
    """The sink's RECEIVED of ``task_id`` of the project in ``region``, as consumed."""
    received = received_status(utility, task_id)
    received["task"] = {**received["task"], "region_code": region}  # type: ignore[typeddict-item]
    return ConsumerRecord(
        "status", 0, -1, 0, 0, 0, task_id.encode(), CODEC.encode("TaskStatus", dict(received)), [], None, 0, 0, 0
    )


def reply(survey_id: str, utility: str, answer: str = "ACCEPT", **slot: Any) -> ConsumerRecord:
    """A utility's answer to round 1 of ``survey_id``, as consumed."""
    value = {"survey_id": survey_id, "round": 1, "utility_id": utility, "answer": answer, "slot_start": None,
             "slot_end": None, "replied_at": NOW, "received_at": NOW, **slot}  # fmt: skip
    return ConsumerRecord(
        "replies", 0, -1, 0, 0, 0, survey_id.encode(), CODEC.encode("SurveyReply", value), [], None, 0, 0, 0
    )


def test_a_project_in_two_divisions_gets_a_survey_in_each_and_replies_move_their_own() -> None:
    """芝罘 and 莱山 tasks of one project: two surveys; accepting one agrees it and leaves the other proposed."""
    clock = [NOW]
    stage = JointSurveys(
        status_topic="status",
        replies_topic="replies",
        surveys_topic="surveys",
        policy=yantai(),
        calendar=load_calendar(CONFIG / "calendar.yaml"),
        settle_s=1,
        clock=lambda: clock[0],
    )
    records = [status(u, f"{u}-{r}", r) for r in ("370602", "370613") for u in ("yantai-water", "yantai-gas")]
    assert all(outcome == Delivered() for outcome in stage.process(records))
    assert stage.tick(NOW) == []  # not settled yet
    clock[0] = NOW + timedelta(seconds=2)
    proposals = [CODEC.decode_as("SurveyProposal", o.value) for o in stage.tick(clock[0])]
    assert sorted(p["region_code"] for p in proposals) == ["370602", "370613"]
    assert {p["project_code"] for p in proposals} == {PROJECT}
    zhifu, laishan = sorted(proposals, key=lambda p: p["region_code"])
    outcomes = list(stage.process([reply(zhifu["survey_id"], "yantai-water"), reply(zhifu["survey_id"], "yantai-gas")]))
    moved = [CODEC.decode_as("SurveyProposal", o.outputs[0].value) for o in outcomes if isinstance(o, Delivered)]
    assert [(m["survey_id"], m["state"]) for m in moved] == [
        (zhifu["survey_id"], "PROPOSED"),
        (zhifu["survey_id"], "AGREED"),
    ]
    (late,) = stage.process([reply(laishan["survey_id"], "yantai-gas")])
    assert isinstance(late, Delivered)
    assert CODEC.decode_as("SurveyProposal", late.outputs[0].value)["accepted"] == ["yantai-gas"]
    assert stage.tick(clock[0] + timedelta(hours=1)) == []
