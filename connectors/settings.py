"""The configuration tree: one YAML file, validated at start-up with errors that name the file and key.

Example ``ubridge.yaml``::

    kafka: {bootstrap: "127.0.0.1:9092"}
    sources:
      gonggai_interface: {base_url: "http://approval:8080", token: "${GONGGAI_TOKEN}"}
    routing: {service_areas: service-areas.yaml}
    utilities:
      - id: yantai-water
        endpoint: "http://water:8081/v1/tasks"
        auth: {type: bearer, token: "${YANTAI_WATER_TOKEN}"}

``${NAME}`` is replaced by the environment variable NAME, so secrets stay out of the file; relative paths
are resolved against the file's folder.
"""

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.acl.settings import AclSettings
from connectors.aishandong.settings import SHIPPED_RULES, AishandongGatewaySettings
from connectors.complaints.settings import ComplaintSettings
from connectors.config_paths import ConfigPath
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.hotline.settings import HotlinePushSettings
from connectors.payments.settings import PaymentSettings
from connectors.permits.settings import PermitSettings
from connectors.runtime.intake_settings import IntakeLimits
from connectors.runtime.retention import RetentionSettings
from connectors.surveys.settings import SurveySettings

_MIN_TOKEN_CHARS = 16
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # what the brokers accept


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SaslSettings(_Strict):
    """Who ubridge is to the cluster: a SASL user (the password from the environment, ``${KAFKA_PASSWORD}``)."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    username: Annotated[str, Field(min_length=1)]
    password: SecretStr


class KafkaSecurity(_Strict):
    """How every producer, consumer and admin client of the process connects to the cluster."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ca_file: ConfigPath | None = Field(None, description="PEM CA bundle the brokers' certificates must chain to.")
    cert_file: ConfigPath | None = Field(None, description="PEM client certificate, for brokers that ask for one.")
    key_file: ConfigPath | None = Field(None, description="PEM private key of cert_file.")
    check_hostname: bool = True
    sasl: SaslSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "KafkaSecurity":
        if self.protocol.startswith("SASL") and self.sasl is None:
            message = f"sasl (mechanism, username, password) is required with protocol {self.protocol}"
            raise ValueError(message)
        if not self.protocol.startswith("SASL") and self.sasl is not None:
            message = f"sasl is set but protocol {self.protocol} does not use it; use SASL_SSL or SASL_PLAINTEXT"
            raise ValueError(message)
        tls = self.protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ca_file or self.cert_file or self.key_file):
            message = f"ca_file, cert_file and key_file need TLS; protocol {self.protocol} has none"
            raise ValueError(message)
        if (self.cert_file is None) != (self.key_file is None):
            message = "cert_file and key_file go together (a client certificate and its key)"
            raise ValueError(message)
        return self


class KafkaSettings(_Strict):
    """How to reach the cluster and how to name and size topics."""

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "ubridge"
    topic_prefix: str = Field(
        "", description="Prepended to every topic, consumer group, client id and transactional id (tenants, tests)."
    )
    partitions: Annotated[int, Field(ge=1)] = 3
    replication_factor: Annotated[int, Field(ge=1)] = Field(
        1, description="Replicas of each topic ubridge creates; start-up warns of existing topics with fewer."
    )
    min_insync_replicas: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Replicas that must have a write before acks=all succeeds (None: the broker's default)."
    )
    max_poll_records: Annotated[int, Field(ge=1)] = 500
    session_timeout_ms: Annotated[int, Field(ge=6000)] = 10000
    max_poll_interval_ms: Annotated[int, Field(ge=1000)] = 300000
    background_fetch_wait_ms: Annotated[int, Field(ge=0, le=5000)] = Field(
        200,
        description=(
            "How long the broker gathers records for a consumer off the delivery path (ledger, task views, notices,"
            " followers) before answering its fetch: fewer, fuller fetches. 0: every record at once."
        ),
    )
    security: KafkaSecurity = KafkaSecurity()
    retention: RetentionSettings = RetentionSettings()
    value_encoding: Literal["single-object", "registry"] = Field(
        "single-object",
        description="Avro framing of values: single-object (C3 01 + fingerprint) or the schema registry's (00 + id).",
    )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        if self.min_insync_replicas is not None and self.min_insync_replicas > self.replication_factor:
            message = (
                f"min_insync_replicas ({self.min_insync_replicas}) above replication_factor "
                f"({self.replication_factor}): no acks=all write could ever succeed"
            )
            raise ValueError(message)
        return self


class SchemaRegistrySettings(_Strict):
    """A registry serving the Confluent Schema Registry REST API (Confluent, Apicurio's ``/apis/ccompat/v7``)."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    username: str | None = None
    password: SecretStr | None = Field(None, description="Basic-auth password, from the environment.")
    ca_file: ConfigPath | None = Field(None, description="PEM CA bundle the registry's certificate must chain to.")
    compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"] = "BACKWARD"
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    @model_validator(mode="after")
    def _auth_pairs(self) -> "SchemaRegistrySettings":
        if (self.username is None) != (self.password is None):
            message = "username and password go together (basic auth to the registry)"
            raise ValueError(message)
        return self


class TopicNames(_Strict):
    """Topic names before the prefix (DESIGN §2)."""

    raw_gonggai: str = "ubridge.raw.gonggai.v1"
    raw_gonggai_spgl: str = "ubridge.raw.gonggai-spgl.v1"
    project_events: str = "ubridge.canonical.project-events.v1"
    tasks: str = Field(
        "ubridge.tasks.v1", description="The single task topic of earlier releases, read only by the migration."
    )
    tasks_pattern: str = Field("ubridge.tasks.{utility}.v1", description="Each utility's own task topic.")
    task_status: str = "ubridge.task-status.v1"
    source_offsets: str = "ubridge.source-offsets.v1"
    applications: str = "ubridge.canonical.applications.v1"
    payments: str = Field("ubridge.payments.v1", description="爱山东 payments (缴费), keyed by payment id.")
    permits: str = Field("ubridge.permits.v1", description="External-works permit applications, by application id.")
    permit_status: str = Field("ubridge.permit-status.v1", description="Permits at their departments, by application.")
    surveys: str = Field("ubridge.surveys.v1", description="Joint site surveys (联合踏勘) as they change, by project.")
    survey_replies: str = Field("ubridge.survey-replies.v1", description="The utilities' answers, by survey id.")
    hotline_work_orders: str = "ubridge.hotline.work-orders.v1"
    hotline_return_visits: str = "ubridge.hotline.return-visits.v1"
    projects: str = "ubridge.projects.v1"
    sla: str = "ubridge.sla.v1"
    ledger_changelog: str = "ubridge.ledger.changelog.v1"
    delivery_revisions: str = "ubridge.delivery-revisions.v1"
    applications_awaiting: str = "ubridge.applications.awaiting.v1"
    router_grants: str = "ubridge.router.grants.v1"
    push_signatures: str = "ubridge.push-signatures.v1"
    coordination: str = "ubridge.coordination.v1"
    stage_status: str = "ubridge.stage-status.v1"
    control: str = "ubridge.control.v1"
    audit: str = "ubridge.audit.v1"
    complaints_ledger: str = "ubridge.complaints.ledger.v1"
    complaints_escalations: str = "ubridge.complaints.escalations.v1"
    complaints_closes: str = "ubridge.complaints.closes.v1"
    dlq_pattern: str = "ubridge.dlq.{stage}.v1"

    @field_validator("tasks_pattern")
    @classmethod
    def _one_utility_field(cls, pattern: str) -> str:
        try:
            sample = pattern.format(utility="u")
        except (KeyError, IndexError, ValueError) as exc:
            message = f"only the field {{utility}} may appear in the pattern, not {exc}"
            raise ValueError(message) from exc
        if "{utility}" not in pattern or not _TOPIC_NAME.match(sample):
            message = "needs {utility} once, in a valid topic name (letters, digits, '.', '_', '-')"
            raise ValueError(message)
        return pattern


class ObservabilitySettings(_Strict):
    """Logs and the metrics/health endpoint."""

    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464


class RetrySettings(_Strict):
    """Capped exponential backoff with full jitter; ``max_elapsed_s: null`` retries until delivered.

    A peer's ``Retry-After`` wins over the backoff: it is honoured up to ``max_retry_after_s``, a ceiling of
    its own, so that a peer asking for 5 s is not hit every ``max_backoff_s`` and one asking for a day does
    not park the stage for a day.
    """

    initial_backoff_s: Annotated[float, Field(gt=0)] = 0.2
    max_backoff_s: Annotated[float, Field(gt=0)] = 30.0
    max_retry_after_s: Annotated[float, Field(gt=0)] = 300.0
    max_elapsed_s: Annotated[float, Field(gt=0)] | None = None


class GonggaiInterfaceSettings(_Strict):
    """工改系统 data interface, pulled over HTTP with a persisted cursor."""

    enabled: bool = True
    name: str = "gonggai-interface"
    base_url: str
    token: SecretStr
    page_size: Annotated[int, Field(ge=1, le=500)] = 200
    poll_interval_s: Annotated[float, Field(gt=0)] = 1.0
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    retry: RetrySettings = RetrySettings()
    mapping: ConfigPath | None = Field(None, description="Vendor mapping of the events (default format if absent).")


class GonggaiSpglSettings(_Strict):
    """工改系统 query account: the national SPGL_* tables of the exchange database, read by ``lsh``."""

    enabled: bool = True
    name: str = "gonggai-spgl"
    url: SecretStr = Field(description="SQLAlchemy URL: sqlite:///exchange.db, postgresql+psycopg://…")
    db_schema: str | None = None
    page_size: Annotated[int, Field(ge=1, le=20000)] = 5000
    max_held: Annotated[int, Field(ge=1, le=2000)] = 256
    max_held_age_s: Annotated[
        float, Field(gt=0, description="a detail waiting longer for its parents is dead-lettered")
    ] = 86400.0
    lookback: Annotated[int, Field(ge=0, description="lsh below the cursor re-read each poll for late commits")] = 2000
    cache_rows: Annotated[int, Field(ge=100)] = 10_000
    max_record_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    dialects: ConfigPath | None = Field(
        None, description="SPGL dialect file (deploy/config/spgl-dialects.yaml if absent)"
    )
    poll_interval_s: Annotated[float, Field(gt=0)] = Field(
        5.0,
        description="The longest wait between full polls (which also re-read late commits and NULL lsh), and "
        "between two readings of the look-back window's row identities (each poll counts its rows).",
    )
    probe_interval_s: Annotated[float, Field(gt=0, le=60)] = Field(
        0.1, description="How often the tables are asked, one index seek each, whether a row is new."
    )
    retry: RetrySettings = RetrySettings()


class FeedPullSettings(_Strict):
    """A platform's paged feed, pulled with a bearer token (connectors.runtime.feed_pull)."""

    enabled: bool = True
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    base_url: str
    token: SecretStr
    page_size: Annotated[int, Field(ge=1, le=500)] = 100
    poll_interval_s: Annotated[float, Field(gt=0)] = 2.0
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    retry: RetrySettings = RetrySettings()


class AishandongPullSettings(FeedPullSettings):
    """爱山东 applications pulled from the gateway's feed, for a platform that cannot push."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-pull"
    rules: ConfigPath = Field(
        SHIPPED_RULES, description="The form's words (aishandong.yaml); the shipped file if absent."
    )


class PaymentPullSettings(AishandongPullSettings):
    """爱山东 payments (缴费) pulled from the app's feed, ``GET /api/v1/payments`` (connectors.payments)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "aishandong-payments-pull"


class HotlinePullSettings(FeedPullSettings):
    """The 12345 platform's feeds of work orders and return visits, pulled (``GET /api/v1/work-orders`` …)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = "hotline-pull"


class HotlineSettings(_Strict):
    """The 12345 hotline connector (connectors/hotline): push intake, pull source, router to COMPLAINT tasks.

    Either intake or both (an order read by both is one task); ``route: false`` keeps the orders on their topic.
    """

    push: HotlinePushSettings | None = None
    pull: HotlinePullSettings | None = None
    route: bool = Field(True, description="Route work orders to COMPLAINT tasks of the utility serving them.")


class SourcesSettings(_Strict):
    """Every upstream connector; absent means not run."""

    gonggai_interface: GonggaiInterfaceSettings | None = None
    gonggai_webhook: GonggaiWebhookSettings | None = None
    gonggai_spgl: GonggaiSpglSettings | None = None
    aishandong_gateway: AishandongGatewaySettings | None = None
    aishandong_pull: AishandongPullSettings | None = None
    aishandong_payments_pull: PaymentPullSettings | None = None


class RoutingSettings(_Strict):
    """Service areas and the approval system's status-code table."""

    service_areas: ConfigPath
    status_codes: dict[int, Literal["RECEIVED", "IN_PROGRESS", "GRANTED", "REFUSED"]] = {
        1: "RECEIVED",
        11: "GRANTED",
        13: "REFUSED",
    }


class BearerAuth(_Strict):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretStr


class StatusCallbackSettings(IntakeLimits):
    """The HTTP endpoint utilities call to report task progress (``POST /v1/tasks/{task_id}/status``).

    ``read_timeout_s``, ``kafka_timeout_s`` and ``max_concurrent_requests`` are :class:`IntakeLimits`'.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8091
    max_body_bytes: Annotated[int, Field(ge=1024)] = 65536
    task_view_path: Path | None = Field(
        None,
        description="SQLite file of the delivered tasks the callbacks check reports against (kept across "
        "restarts); unset: a temporary file rebuilt from the task-status topic at each start.",
    )
    unknown_task_wait_s: Annotated[float, Field(gt=0, le=30)] = Field(
        3.0, description="A report of a task not seen yet waits this long for the sink's RECEIVED before 404."
    )


class StatusPollSettings(_Strict):
    """The change feed of a utility that cannot call back: ``GET {base_url}/v1/task-status?cursor&limit``."""

    enabled: bool = True
    base_url: str
    page_size: Annotated[int, Field(ge=1, le=1000)] = 200
    poll_interval_s: Annotated[float, Field(gt=0)] = 5.0
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    retry: RetrySettings = RetrySettings()


class UtilitySettings(_Strict):
    """One utility's business system: its own endpoint, credentials and retry state."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    endpoint: str
    auth: BearerAuth
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    max_in_flight: Annotated[int, Field(ge=1, le=64)] = 8
    retry: RetrySettings = RetrySettings()
    callback_token: SecretStr | None = Field(None, description="Token this utility calls status callbacks with.")
    status_poll: StatusPollSettings | None = Field(None, description="Poll the utility's status feed instead.")


class ProjectLookupSettings(_Strict):
    """The approval system's query interface, asked for a cited project ubridge has not seen on Kafka."""

    base_url: str
    token: SecretStr
    timeout_s: Annotated[float, Field(gt=0)] = 5.0


class ApplicationSettings(_Strict):
    """Routing of 爱山东 applications: the 3-hour contact clock and the materials shared by data exchange."""

    enabled: bool = True
    calendar: ConfigPath
    rules: ConfigPath = Field(SHIPPED_RULES, description="aishandong.yaml: shared materials, the form's words.")
    project_lookup: ProjectLookupSettings | None = None
    project_table_ready_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    project_table_dir: Path | None = Field(
        None, description="Directory of the router's local copy of the project table (None: the temporary one)."
    )


class LedgerSettings(_Strict):
    """The SLA ledger: working-time calendar, policy table, and which clock tells the time."""

    enabled: bool = True
    calendar: ConfigPath
    policies: ConfigPath
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: the machine's clock; event: the latest status time seen (replays, the demo)"
    )
    max_held_per_partition: Annotated[int, Field(ge=1)] = 1000
    closed_retention_days: Annotated[float, Field(gt=0)] = Field(
        30.0, description="Days a closed task's entry stays in the ledger after its last event, then a tombstone."
    )


class PrivacySettings(_Strict):
    """How long personal data stays on ubridge's compacted tables (README "Personal data at rest")."""

    contact_retention_days: Annotated[float, Field(gt=0)] = Field(
        30.0,
        description="Days after its filing an application awaiting shared documents (with its applicant's name and "
        "mobile) stays on the awaiting table; then it is released (a tombstone) and is not updated any more.",
    )


class AdminSettings(_Strict):
    """The admin API (``ubridge admin …`` talks to it): served by ``ubridge run`` when ``port`` is set.

    ``tokens`` maps a name to a bearer token; the name is recorded on the audit topic as who acted.
    """

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    tokens: Annotated[dict[str, SecretStr], Field(min_length=1)]

    @field_validator("tokens")
    @classmethod
    def _strong_tokens(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        weak = sorted(name for name, token in tokens.items() if len(token.get_secret_value()) < _MIN_TOKEN_CHARS)
        if weak:
            message = f"admin tokens need at least {_MIN_TOKEN_CHARS} characters: {', '.join(weak)}"
            raise ValueError(message)
        return tokens


class SupervisionSettings(_Strict):
    """The supervision view for the competent department (read-only): served by ``ubridge run`` when enabled.

    The calendar and SLA policies are the ledger's (the shipped ones without a ``ledger`` section).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8095
    token: SecretStr = Field(description="The department's token: the login form's, or Authorization: Bearer.")
    refresh_s: Annotated[float, Field(ge=0)] = Field(
        15.0, description="The pages' figures are computed again once older than this (every task's timeline)."
    )

    @field_validator("token")
    @classmethod
    def _strong_token(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < _MIN_TOKEN_CHARS:
            message = f"the supervision token needs at least {_MIN_TOKEN_CHARS} characters"
            raise ValueError(message)
        return token


# The router keeps the grants standing behind each task (routing/withdrawals.py), so it runs in its loop.
ParallelStage = Literal["normaliser-gonggai", "normaliser-gonggai-spgl"]


class StageTuning(_Strict):
    """How one CPU-bound transform runs (the stages named by :data:`ParallelStage`)."""

    workers: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="Worker processes that transform while the loop does Kafka I/O; 0 keeps it in the loop."
    )


class ProcessSettings(_Strict):
    """How ``ubridge run`` spreads its stages over supervised child processes (one GIL each).

    ``count: auto`` takes one process per core, at most one per stage; 1 runs every stage in one process.
    ``groups`` pins stages together (each list is one process); the stages it does not name are spread over
    the remaining processes by weight, the background ones in a process of their own.
    """

    count: Literal["auto"] | Annotated[int, Field(ge=1, le=64)] = "auto"
    groups: list[Annotated[list[str], Field(min_length=1)]] = []
    background_nice: Annotated[int, Field(ge=0, le=19)] = Field(
        10,
        description="How much lower the CPU priority (nice) of the child running only background stages "
        "(ledger, views, notices, permits, surveys) is; 0 runs it like the others.",
    )


class Settings(_Strict):
    """The whole configuration of one ubridge process."""

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicNames = TopicNames()
    observability: ObservabilitySettings = ObservabilitySettings()
    sources: SourcesSettings = SourcesSettings()
    routing: RoutingSettings
    utilities: list[UtilitySettings] = []
    ledger: LedgerSettings | None = None
    applications: ApplicationSettings | None = None
    hotline: HotlineSettings | None = None
    status_callbacks: StatusCallbackSettings | None = None
    stages: dict[ParallelStage, StageTuning] = {}
    admin: AdminSettings | None = None
    processes: ProcessSettings = ProcessSettings()
    privacy: PrivacySettings = PrivacySettings()
    supervision: SupervisionSettings | None = None
    complaints: ComplaintSettings | None = None
    acl: AclSettings | None = None
    schema_registry: SchemaRegistrySettings | None = None
    payments: PaymentSettings | None = None
    permits: PermitSettings | None = None
    surveys: SurveySettings | None = None

    @model_validator(mode="after")
    def _acl_utilities_configured(self) -> "Settings":
        unknown = sorted(set(self.acl.utilities) - {u.id for u in self.utilities}) if self.acl else []
        if unknown:
            message = f"acl.utilities names utilities with no utilities[] entry: {', '.join(unknown)}"
            raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _payment_endpoints_configured(self) -> "Settings":
        unknown = sorted(set(self.payments.endpoints) - {u.id for u in self.utilities}) if self.payments else []
        if unknown:
            message = f"payments.endpoints names utilities with no utilities[] entry: {', '.join(unknown)}"
            raise ValueError(message)
        return self

    @model_validator(mode="after")
    def _registry_configured(self) -> "Settings":
        if self.kafka.value_encoding == "registry" and self.schema_registry is None:
            message = "kafka.value_encoding registry needs schema_registry (url, and username/password if any)"
            raise ValueError(message)
        return self

    @field_validator("utilities")
    @classmethod
    def _unique_ids(cls, utilities: list[UtilitySettings], info: ValidationInfo) -> list[UtilitySettings]:
        ids = [u.id for u in utilities]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            message = f"utility ids must be unique, repeated: {', '.join(duplicates)}"
            raise ValueError(message)
        topics, kafka = info.data.get("topics"), info.data.get("kafka")
        if isinstance(topics, TopicNames) and isinstance(kafka, KafkaSettings):
            for i, utility in enumerate(utilities):
                name = kafka.topic_prefix + topics.tasks_pattern.format(utility=utility.id)
                if not _TOPIC_NAME.match(name):
                    message = f"utilities[{i}].id {utility.id!r} makes the task topic {name!r}, not a valid topic name"
                    raise ValueError(message)
        tokens = [u.callback_token.get_secret_value() for u in utilities if u.callback_token is not None]
        if len(tokens) != len(set(tokens)):
            message = "callback_token must differ between utilities: a token names exactly one utility"
            raise ValueError(message)
        return utilities

    def topic(self, name: str) -> str:
        """Full name of a topic field of :class:`TopicNames` (prefix applied)."""
        return self.kafka.topic_prefix + str(getattr(self.topics, name))

    def task_topic(self, utility_id: str) -> str:
        """Full name of a utility's task topic."""
        return self.kafka.topic_prefix + self.topics.tasks_pattern.format(utility=utility_id)

    def workers(self, stage: str) -> int:
        """Worker processes configured for a stage; 0 when it transforms in its own loop."""
        return next((tuning.workers for name, tuning in self.stages.items() if name == stage), 0)

    def dlq_topic(self, stage: str) -> str:
        """Full name of a stage's dead-letter topic."""
        return self.kafka.topic_prefix + self.topics.dlq_pattern.format(stage=stage)


def _expand_env(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            message = f"{path}: environment variable {match.group(1)} is not set"
            raise ConfigError(message)
        return value

    return _ENV_REF.sub(substitute, node)


def _describe(error: ValidationError, origin: str) -> str:
    lines = []
    for item in error.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        lines.append(f"{origin}: {key or '<top>'}: {item['msg']}")
    return "\n".join(lines)


def parse_settings(document: Any, *, origin: str = "<memory>", base_dir: Path | None = None) -> Settings:
    """Validate a parsed YAML document.

    Raises:
        ConfigError: naming ``origin`` and each bad key.
    """
    if not isinstance(document, dict):
        message = f"{origin}: the top level must be a mapping of sections"
        raise ConfigError(message)
    try:
        expanded = _expand_env(document, "")
    except ConfigError as exc:
        message = f"{origin}: {exc}"
        raise ConfigError(message) from exc
    try:
        return Settings.model_validate(expanded, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from exc


def load_settings(path: Path) -> Settings:
    """Read, expand and validate a YAML configuration file.

    Raises:
        ConfigError: unreadable file, bad YAML, or invalid keys.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        message = f"{path}: {exc}"
        raise ConfigError(message) from exc
    return parse_settings(document, origin=str(path), base_dir=path.parent)
