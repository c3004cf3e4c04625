"""Topics carry the configured retention when created, and existing topics are brought to it at start."""

from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from structlog.testing import capture_logs

from connectors.app import App
from connectors.registry import topics
from connectors.runtime.kafka import TopicSpec, align_topic_configs, ensure_topics, make_admin
from connectors.settings import KafkaSettings
from tests.support import settings_for

pytestmark = pytest.mark.integration

_KEYS = ("retention.ms", "cleanup.policy", "max.compaction.lag.ms")
DAY_MS = 86_400_000


def described(kafka: KafkaSettings, names: list[str]) -> dict[str, dict[str, Any]]:
    """The retention configs of ``names`` as the broker reports them."""
    admin = make_admin(kafka)
    try:
        asked = [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(_KEYS)) for name in names]
        topic = admin.describe_configs(asked, config_filter="all")["topic"]
        return {name: {key: entry["value"] for key, entry in topic[name].items()} for name in names}
    finally:
        admin.close()


def test_created_topics_carry_the_configured_retention(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Every topic of the registry is created with its class's retention, per-topic overrides and compaction lag."""
    retention = {"raw_days": 2, "compaction_lag_days": 0.5, "topics": {"applications": 3, "audit": None}}
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        kafka={"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "retention": retention},
    )
    specs = topics(settings)
    ensure_topics(settings.kafka, specs)
    configs = described(settings.kafka, [s.name for s in specs])
    assert configs[settings.topic("raw_gonggai")]["retention.ms"] == str(2 * DAY_MS)
    assert configs[settings.topic("raw_gonggai")]["cleanup.policy"] == "delete"
    assert configs[settings.topic("applications")]["retention.ms"] == str(3 * DAY_MS)
    assert configs[settings.topic("project_events")]["retention.ms"] == str(14 * DAY_MS)
    assert configs[settings.topic("audit")]["retention.ms"] == "-1"
    assert configs[settings.topic("projects")] == {
        "retention.ms": "-1",
        "cleanup.policy": "compact",
        "max.compaction.lag.ms": str(DAY_MS // 2),
    }
    assert configs[settings.topic("push_signatures")]["cleanup.policy"] in ("compact,delete", "delete,compact")
    assert configs[settings.topic("push_signatures")]["retention.ms"] == str(DAY_MS)
    for spec in specs:
        assert configs[spec.name]["retention.ms"] == str(spec.retention_ms), spec.name


def test_an_existing_topic_is_reported_then_altered_to_the_policy(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A topic created before the policy is reported without ``apply`` and altered with it, other configs kept."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    name = f"{unique_prefix}legacy"
    ensure_topics(kafka, [TopicSpec(name, 1, compacted=True)])
    admin = make_admin(kafka)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, {"segment.bytes": "1048576"})])
    finally:
        admin.close()
    wanted = [TopicSpec(name, 1, compacted=True, retention_ms=DAY_MS, compaction_lag_ms=DAY_MS)]

    reported = align_topic_configs(kafka, wanted, apply=False)

    assert reported[name]["retention.ms"][1] == str(DAY_MS)
    assert reported[name]["cleanup.policy"] == ("compact", "compact,delete")
    assert described(kafka, [name])[name]["cleanup.policy"] == "compact"
    assert align_topic_configs(kafka, wanted, apply=True) == reported
    after = described(kafka, [name])[name]
    assert (after["retention.ms"], after["max.compaction.lag.ms"]) == (str(DAY_MS), str(DAY_MS))
    assert after["cleanup.policy"] in ("compact,delete", "delete,compact")
    assert align_topic_configs(kafka, wanted, apply=True) == {}
    admin = make_admin(kafka)
    try:
        asked = [ConfigResource(ConfigResourceType.TOPIC, name, {"segment.bytes": None})]
        kept = admin.describe_configs(asked, config_filter="all")["topic"][name]["segment.bytes"]["value"]
    finally:
        admin.close()
    assert kept == "1048576"


def test_start_up_alters_an_existing_topic_and_logs_it(kafka_bootstrap: str, unique_prefix: str) -> None:
    """``App.start`` brings a topic created before the policy to it and logs the change; the next start does not."""
    settings = settings_for(kafka_bootstrap, unique_prefix)
    table = settings.topic("projects")
    ensure_topics(settings.kafka, [TopicSpec(table, settings.kafka.partitions, compacted=True)])
    for attempt in range(2):
        app = App(settings, only=[], serve_metrics=False)
        with capture_logs() as logs:
            app.start()
        app.stop()
        assert app.wait(timeout_s=10)
        changed = [entry for entry in logs if entry["event"] == "topic_retention_changed"]
        if attempt == 0:
            assert [entry["topic"] for entry in changed] == [table]
            assert changed[0]["changes"]["max.compaction.lag.ms"].endswith(f"-> {7 * DAY_MS}")
        else:
            assert changed == []
    after = described(settings.kafka, [table])[table]
    assert (after["retention.ms"], after["cleanup.policy"]) == ("-1", "compact")


def test_created_topics_have_leaders_when_ensure_topics_returns(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A consumer subscribing right after start-up's creation sees every partition (none idle for 5 min)."""
    kafka = settings_for(kafka_bootstrap, unique_prefix).kafka
    names = [f"{unique_prefix}.fresh-{n}" for n in range(6)]
    assert ensure_topics(kafka, [TopicSpec(name, 4) for name in names]) == names
    admin = make_admin(kafka)
    try:
        described = admin.describe_topics(names)
    finally:
        admin.close()
    assert {t["name"]: sorted(p["leader_id"] >= 0 for p in t["partitions"]) for t in described} == {
        name: [True] * 4 for name in names
    }
