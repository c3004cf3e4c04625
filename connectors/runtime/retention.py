"""How long each topic keeps its records: one explicit policy, by topic class, with per-topic overrides.

Personal data sits on most topics (README "Personal data at rest"), so no topic is left to the broker's
default retention: every topic ubridge creates gets ``retention.ms`` and ``cleanup.policy`` from here, and at
start-up an existing topic whose settings differ is altered to match (or, with ``apply_to_existing: false``,
reported). Compacted tables keep one record per key for as long as the key lives (their writers tombstone
keys that have had their time); ``max.compaction.lag.ms`` bounds how long a replaced or tombstoned value
stays readable on disk before the cleaner removes it.

Example ``ubridge.yaml``::

    kafka:
      retention:
        raw_days: 7
        topics: {applications: 7}     # a topic key of TopicNames, or dlq
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TopicClass = Literal["raw", "canonical", "tasks", "status", "sla", "audit", "dlq", "table", "ephemeral"]
FOREVER: Final = -1
_DAY_MS: Final = 86_400_000

# Every topic key of connectors.settings.TopicNames (and "dlq" for the dead-letter topics) with its class.
CLASS_OF: Final[Mapping[str, TopicClass]] = MappingProxyType(
    {
        "raw_gonggai": "raw",
        "raw_gonggai_spgl": "raw",
        "project_events": "canonical",
        "applications": "canonical",
        "payments": "canonical",
        "permits": "canonical",
        "permit_status": "status",
        "surveys": "status",
        "survey_replies": "status",
        "hotline_work_orders": "canonical",
        "hotline_return_visits": "canonical",
        "tasks": "tasks",
        "task_status": "status",
        "sla": "sla",
        "audit": "audit",
        "dlq": "dlq",
        "source_offsets": "table",
        "projects": "table",
        "ledger_changelog": "table",
        "delivery_revisions": "table",
        "applications_awaiting": "table",
        "router_grants": "table",
        "control": "table",
        "coordination": "ephemeral",
        "stage_status": "ephemeral",
        "push_signatures": "ephemeral",
        "complaints_ledger": "table",
        "complaints_escalations": "sla",
        "complaints_closes": "audit",
    }
)

Days = Annotated[float, Field(gt=0)] | None  # None (YAML null): kept forever


class RetentionSettings(BaseModel):
    """Days each class of topic keeps records (``null``: forever), per-topic overrides, and what to do at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: Days = Field(7.0, description="Raw topics: records as received (contact names and mobiles).")
    canonical_days: Days = Field(14.0, description="Project events and applications (ID numbers, mobiles, names).")
    tasks_days: Days = Field(30.0, description="Task topic: a utility's system may be down this long.")
    status_days: Days = Field(30.0, description="Task statuses (the sink's RECEIVED carries the task).")
    sla_days: Days = Field(365.0, description="SLA events (no personal data): a year of reporting.")
    audit_days: Days = Field(None, description="Audit trail (no personal data): kept forever.")
    dlq_days: Days = Field(30.0, description="Dead letters (original bytes): the time operators have to replay.")
    table_days: Days = Field(None, description="Compacted tables: forever per key; writers tombstone keys.")
    ephemeral_days: Days = Field(1.0, description="Leases, stage status, push signatures (at least 2 h).")
    compaction_lag_days: Annotated[float, Field(gt=0)] = Field(
        7.0, description="Longest a replaced or tombstoned value of a compacted topic stays on disk."
    )
    topics: dict[str, Days] = Field(default_factory=dict, description="Topic key → days, over its class's.")
    apply_to_existing: bool = Field(True, description="Alter existing topics to match at start (else warn).")

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, topics: dict[str, float | None]) -> dict[str, float | None]:
        unknown = sorted(set(topics) - set(CLASS_OF))
        if unknown:
            message = f"unknown topic key(s) {', '.join(unknown)}; known: {', '.join(sorted(CLASS_OF))}"
            raise ValueError(message)
        return topics


def retention_ms(policy: RetentionSettings, key: str) -> int:
    """The ``retention.ms`` of the topic named by ``key`` (a TopicNames field, or ``dlq``); -1 is forever.

    Raises:
        KeyError: ``key`` names no known topic.
    """
    days = policy.topics[key] if key in policy.topics else getattr(policy, f"{CLASS_OF[key]}_days")
    return FOREVER if days is None else round(days * _DAY_MS)


def compaction_lag_ms(policy: RetentionSettings) -> int:
    """The ``max.compaction.lag.ms`` of every compacted topic."""
    return round(policy.compaction_lag_days * _DAY_MS)


def topic_configs(*, compacted: bool, retention: int | None, compaction_lag_ms: int | None) -> dict[str, str]:
    """The topic-level configs a topic is created with and kept at (``retention`` None: the broker's, legacy)."""
    configs: dict[str, str] = {}
    if compacted:
        configs["cleanup.policy"] = "compact" if retention in (None, FOREVER) else "compact,delete"
        if compaction_lag_ms is not None:
            configs["max.compaction.lag.ms"] = str(compaction_lag_ms)
    elif retention is not None:
        configs["cleanup.policy"] = "delete"
    if retention is not None:
        configs["retention.ms"] = str(retention)
    return configs


def config_changes(wanted: Mapping[str, str], current: Mapping[str, str | None]) -> dict[str, tuple[str | None, str]]:
    """The configs of an existing topic that differ from what is wanted: name → (current, wanted).

    ``cleanup.policy`` is a list: ``delete,compact`` is ``compact,delete``.
    """
    return {
        name: (current.get(name), value)
        for name, value in wanted.items()
        if _normal(name, current.get(name)) != _normal(name, value)
    }


def _normal(name: str, value: str | None) -> str | None:
    if name != "cleanup.policy" or value is None:
        return value
    return ",".join(sorted(part.strip() for part in value.split(",")))
