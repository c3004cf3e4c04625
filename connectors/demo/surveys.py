"""The demo's joint site surveys (联合踏勘, 003): one visit for every utility a project needs.

The demo enables them for Yantai (3706), where water, gas, heat, power and telecom all serve: a policy file of its
own in the work directory, from the shipped one. The utility simulators answer each proposal at ubridge's reply
intake, one in five with a counter-proposal a day later; the summary's line counts what the surveys topic holds.
"""

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from connectors.demo.remote import RemoteUtility
from connectors.runtime.compacted import decoded_to_end
from connectors.runtime.kafka import make_consumer
from connectors.settings import Settings
from routing.surveys import standing
from schemas import Codec

REGIONS = ["3706"]
LEAD = "烟台市住房和城乡建设局"
COUNTER_RATE = 0.2


def surveys_config(config_dir: Path, workdir: Path, port: int) -> dict[str, Any]:
    """The ``surveys`` section: the shipped policy with Yantai on (written to ``workdir``), the intake on ``port``."""
    shipped = yaml.safe_load((config_dir / "surveys.yaml").read_text(encoding="utf-8"))
    yantai = {**shipped["regions"][0], "regions": REGIONS, "lead_department": LEAD}
    policy = workdir / "surveys.yaml"
    policy.write_text(yaml.safe_dump({**shipped, "regions": [yantai]}, allow_unicode=True), encoding="utf-8")
    return {
        "policy": str(policy),
        "calendar": str(config_dir / "calendar.yaml"),
        "settle_s": 1.0,
        "intake": {"port": port},
        "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 1.0, "max_attempts": 30},
    }


def answer_surveys(utilities: dict[str, RemoteUtility], *, reply_url: str, token_of: Any) -> None:
    """Make each utility's system answer the proposals it receives."""
    for utility, sim in utilities.items():
        sim.answer_surveys(reply_url=reply_url, reply_token=token_of(utility), counter_rate=COUNTER_RATE)


def read_surveys(settings: Settings) -> dict[str, Mapping[str, Any]]:
    """Survey id → its last record on the surveys topic."""
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        return standing(decoded_to_end(consumer, settings.topic("surveys"), "SurveyProposal", Codec.default()))
    finally:
        consumer.close()


def settled(surveys: dict[str, Mapping[str, Any]]) -> bool:
    """Every survey proposed is agreed, or fell back to separate visits."""
    return all(s["state"] != "PROPOSED" for s in surveys.values())


def surveys_line(surveys: dict[str, Mapping[str, Any]], notices: int) -> str:
    """The summary's line."""
    states = Counter(s["state"] for s in surveys.values())
    countered = sum(1 for s in surveys.values() if s["state"] == "AGREED" and s["round"] > 1)
    utilities = sorted({p["utility_id"] for s in surveys.values() for p in s["participants"]})
    tasks = sum(len(s["participants"]) for s in surveys.values())
    return (
        f"joint surveys (联合踏勘): {len(surveys)} proposed for {tasks} tasks of {len(utilities)} utilities, "
        f"{states['AGREED']} agreed ({countered} after a counter-proposal), {states['SEPARATE']} separate, "
        f"{states['PROPOSED']} still open; the utilities were told {notices} times"
    )
