"""The retention policy: which retention each topic gets, and what an existing topic must change."""

import pytest

from connectors.registry import topics
from connectors.runtime.retention import (
    CLASS_OF,
    FOREVER,
    RetentionSettings,
    config_changes,
    retention_ms,
    topic_configs,
)
from connectors.settings import ConfigError, TopicNames
from tests.support import settings_for

DAY_MS = 86_400_000


def test_every_topic_name_has_a_class() -> None:
    """A topic added to TopicNames without a retention class fails here, not silently at the broker's default."""
    keys = {name for name in TopicNames.model_fields if name != "dlq_pattern"} | {"dlq"}
    assert keys == set(CLASS_OF)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("raw_gonggai", 7 * DAY_MS),
        ("raw_gonggai_spgl", 7 * DAY_MS),
        ("project_events", 14 * DAY_MS),
        ("applications", 14 * DAY_MS),
        ("tasks", 30 * DAY_MS),
        ("task_status", 30 * DAY_MS),
        ("sla", 365 * DAY_MS),
        ("audit", FOREVER),
        ("dlq", 30 * DAY_MS),
        ("projects", FOREVER),
        ("ledger_changelog", FOREVER),
        ("control", FOREVER),
        ("push_signatures", DAY_MS),
        ("stage_status", DAY_MS),
        ("coordination", DAY_MS),
    ],
)
def test_defaults_by_class(key: str, expected: int) -> None:
    """Each topic gets its class's documented default."""
    assert retention_ms(RetentionSettings(), key) == expected


def test_a_topic_override_wins_over_its_class_and_null_is_forever() -> None:
    """``topics`` overrides one topic, leaving the others of its class; ``null`` keeps records forever."""
    policy = RetentionSettings(canonical_days=10, topics={"applications": 2.5, "sla": None})
    assert retention_ms(policy, "applications") == int(2.5 * DAY_MS)
    assert retention_ms(policy, "project_events") == 10 * DAY_MS
    assert retention_ms(policy, "sla") == FOREVER


def test_an_unknown_topic_key_is_refused_by_name() -> None:
    """A mistyped topic key names itself and the key path."""
    with pytest.raises(ConfigError, match=r"kafka\.retention\.topics: .*unknown topic key\(s\) aplications"):
        settings_for("b:9092", "", kafka={"retention": {"topics": {"aplications": 1}}})


def test_a_non_positive_retention_is_refused() -> None:
    """Zero days would delete at once: refused, naming the key."""
    with pytest.raises(ConfigError, match=r"kafka\.retention\.raw_days"):
        settings_for("b:9092", "", kafka={"retention": {"raw_days": 0}})


@pytest.mark.parametrize(
    ("compacted", "retention", "lag", "expected"),
    [
        (False, 5, None, {"cleanup.policy": "delete", "retention.ms": "5"}),
        (False, FOREVER, None, {"cleanup.policy": "delete", "retention.ms": "-1"}),
        (True, FOREVER, 9, {"cleanup.policy": "compact", "retention.ms": "-1", "max.compaction.lag.ms": "9"}),
        (True, 5, None, {"cleanup.policy": "compact,delete", "retention.ms": "5"}),
        (True, None, None, {"cleanup.policy": "compact"}),
        (False, None, None, {}),
    ],
)
def test_topic_configs(compacted: bool, retention: int | None, lag: int | None, expected: dict[str, str]) -> None:
    """Compacted topics kept forever are ``compact``, with a finite retention ``compact,delete``."""
    assert topic_configs(compacted=compacted, retention=retention, compaction_lag_ms=lag) == expected


def test_config_changes_lists_only_what_differs() -> None:
    """Equal values (the cleanup policy in any order) are no change; a differing or missing one is."""
    wanted = {"cleanup.policy": "compact,delete", "retention.ms": "5", "max.compaction.lag.ms": "9"}
    current = {"cleanup.policy": "delete,compact", "retention.ms": "604800000"}
    assert config_changes(wanted, current) == {
        "retention.ms": ("604800000", "5"),
        "max.compaction.lag.ms": (None, "9"),
    }


def test_every_registry_topic_has_an_explicit_retention() -> None:
    """No topic ubridge creates is left to the broker's default retention."""
    settings = settings_for("b:9092", "t.", ledger=None)
    specs = topics(settings)
    assert all(spec.retention_ms is not None for spec in specs)
    assert all(spec.compaction_lag_ms == 7 * DAY_MS for spec in specs if spec.compacted)
    assert {s.name for s in specs if s.compacted} == {
        settings.topic(key) for key, kind in CLASS_OF.items() if kind == "table"
    } | {settings.topic("push_signatures"), settings.topic("stage_status")}
