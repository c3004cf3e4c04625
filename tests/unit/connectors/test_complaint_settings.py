"""The ``complaints`` section of the configuration: validated at start-up, errors naming the bad key."""

import shutil
from pathlib import Path

import pytest
import yaml

from connectors.acl.plan import stage_needs
from connectors.config_check import check_configuration
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


def test_config_check_names_a_bad_key_of_complaints_yaml(tmp_path: Path) -> None:
    """`ubridge config check` reads complaints.yaml as the stage does and names the file and the bad key."""
    folder = tmp_path / "config"
    shutil.copytree(CONFIG, folder)
    policy = folder / "complaints.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace("working_days: 10", "working_days: -1"), encoding="utf-8"
    )
    document = {
        "kafka": {"bootstrap": "127.0.0.1:9092"},
        "routing": {"service_areas": "service-areas.yaml"},
        "complaints": {"policy": "complaints.yaml", "satisfaction": "satisfaction.yaml", "calendar": "calendar.yaml"},
    }
    path = folder / "ubridge.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    errors = [str(p) for p in check_configuration(path, probe=lambda host, port: None).errors()]
    assert any("complaints.yaml" in error and "clearing.working_days" in error for error in errors), errors


def test_the_complaint_stage_gets_its_acls() -> None:
    """Its principal reads statuses, visits, closes and its ledger, writes the ledger and 督办, holds its lease."""
    settings = settings_for("b:9092", "t.", complaints=section())
    needs = stage_needs(settings)["complaints"]
    topic = settings.topic
    assert {topic("task_status"), topic("hotline_return_visits"), topic("complaints_closes")} <= needs.reads
    assert {topic("complaints_ledger"), topic("coordination")} <= needs.reads
    assert {
        topic("complaints_ledger"),
        topic("complaints_escalations"),
        settings.dlq_topic("complaints"),
    } <= needs.writes
    assert needs.groups == {"t.ubridge.complaints", "t.ubridge.lease.complaints"}
