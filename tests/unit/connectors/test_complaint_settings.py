"""The ``complaints`` section of the configuration: validated at start-up, errors naming the bad key."""

import pytest

from connectors.registry import stage_specs, topics
from connectors.settings import ConfigError
from tests.support import ROOT, settings_for

CONFIG = ROOT / "deploy" / "config"


def section(**extra: object) -> dict[str, object]:
    return {
        "policy": str(CONFIG / "complaints.yaml"),
        "satisfaction": str(CONFIG / "satisfaction.yaml"),
        "calendar": str(CONFIG / "calendar.yaml"),
        **extra,
    }


def test_a_complaints_section_runs_the_stage_with_its_topics() -> None:
    """With the section, the stage is listed (leased) and its four topics are created."""
    settings = settings_for("b:9092", "t.", complaints=section(platform={"url": "http://p", "token": "x"}))
    assert "complaints" in [spec.name for spec in stage_specs(settings)]
    names = {spec.name for spec in topics(settings)}
    assert {
        "t.ubridge.hotline.return-visits.v1",
        "t.ubridge.complaints.ledger.v1",
        "t.ubridge.complaints.escalations.v1",
        "t.ubridge.complaints.closes.v1",
        "t.ubridge.dlq.complaints.v1",
    } <= names


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"clock": "sundial"}, "complaints.clock"),
        ({"platform": {"url": "http://p"}}, "complaints.platform.token"),
        ({"platform": {"url": "http://p", "token": "x", "attempts": 0}}, "complaints.platform.attempts"),
        ({"escalate": True}, "complaints.escalate"),
    ],
)
def test_a_bad_key_is_named(extra: dict[str, object], key: str) -> None:
    """A wrong clock, a platform without its token, zero tries, an unknown key: refused, naming the key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        settings_for("b:9092", "t.", complaints=section(**extra))
