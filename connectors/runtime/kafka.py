"""Thin factories for kafka-python clients with the settings every ubridge stage shares."""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from connectors.runtime import kafka_rejoin
from connectors.runtime.kafka_partitioner import KeyHashPartitioner
from connectors.runtime.kafka_selector import QuietSelector
from connectors.runtime.retention import config_changes, topic_configs
from connectors.settings import KafkaSettings

kafka_rejoin.install()  # before any consumer of this process joins a group

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic a stage needs; compacted topics keep the latest record per key (changelogs, cursors).

    ``retention_ms`` (-1: forever; None: the broker's default) on a compacted topic other than -1 also deletes
    records older than that (``compact,delete``), for keys that are never written again and would otherwise
    stay forever. ``compaction_lag_ms`` bounds how long a replaced value of a compacted topic stays on disk.
    :func:`connectors.registry.topics` sets both from ``kafka.retention`` (:mod:`connectors.runtime.retention`).
    """

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    compaction_lag_ms: int | None = None


_TRANSACTION_REQUEST_MS = 10_000
_TRANSACTION_DELIVERY_MS = 30_000


def security_options(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python's connection options for ``kafka.security``, shared by producers, consumers and admins.

    They also carry the clients' I/O selector (:mod:`connectors.runtime.kafka_selector`).
    """
    security = kafka.security
    options: dict[str, Any] = {"security_protocol": security.protocol, "selector": QuietSelector}
    if security.protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = security.check_hostname
        if security.ca_file is not None:
            options["ssl_cafile"] = str(security.ca_file)
        if security.cert_file is not None and security.key_file is not None:
            options["ssl_certfile"] = str(security.cert_file)
            options["ssl_keyfile"] = str(security.key_file)
    if security.sasl is not None:
        options["sasl_mechanism"] = security.sasl.mechanism
        options["sasl_plain_username"] = security.sasl.username
        options["sasl_plain_password"] = security.sasl.password.get_secret_value()
    return options


def make_admin(kafka: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    """An admin client on the configured cluster, connected as configured."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.topic_prefix + kafka.client_id,
        **security_options(kafka),
    }
    options.update(overrides)
    return KafkaAdminClient(**options)


def make_producer(kafka: KafkaSettings, *, transactional_id: str | None = None, **overrides: Any) -> KafkaProducer:
    """An idempotent producer that waits for every in-sync replica before acknowledging.

    Records go to the partition kafka-python's default partitioner picks, their keys' hashes remembered
    (:mod:`connectors.runtime.kafka_partitioner`).

    ``kafka.topic_prefix`` is put in front of the client id and the transactional id too: two installations
    sharing a cluster must never fence each other's sources, and quotas and broker logs tell them apart.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.topic_prefix + kafka.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "partitioner": KeyHashPartitioner(),
        **security_options(kafka),
    }
    if transactional_id is not None:
        options["transactional_id"] = kafka.topic_prefix + transactional_id
        # A source's transaction waited kafka-python's two minutes on a partition whose leader had died (it did
        # not move on to the new leader); failing sooner makes the source start again from its committed cursor.
        options["request_timeout_ms"] = _TRANSACTION_REQUEST_MS
        options["delivery_timeout_ms"] = _TRANSACTION_DELIVERY_MS
    options.update(overrides)
    return KafkaProducer(**options)


_SENDER_EXIT_S = 2.0


def close_producer(producer: KafkaProducer, *, timeout_s: float) -> bool:
    """Close ``producer``; what the broker has not taken within ``timeout_s`` is dropped. True if nothing was.

    kafka-python's ``close`` flushes first and raises when that times out (a broker away), leaving the producer
    open: its sender thread lives on, and its finaliser tries again when the object is collected and prints the
    error. Every caller closes a producer whose pending records cover input it has not committed (a stage, a
    sink, a source's open transaction), so dropping them loses nothing: they are produced again.
    """
    try:
        producer.close(timeout=timeout_s)
    except KafkaTimeoutError:
        log.warning("producer_closed_with_records_pending", after_s=timeout_s)
        sender = producer._sender
        sender.force_close()  # the sender fails the pending batches as it exits, after its current poll
        sender.join(max(timeout_s, _SENDER_EXIT_S))
        try:
            producer.close(timeout=0)
        except KafkaTimeoutError:
            log.warning("producer_close_abandoned", after_s=timeout_s)
        return False
    return True


_BACKGROUND_FETCH_MIN_BYTES = 1 << 20


def make_consumer(
    kafka: KafkaSettings, *, group_id: str | None, background: bool = False, **overrides: Any
) -> KafkaConsumer:
    """A consumer that commits only when told to and never sees aborted transactions.

    A ``background`` consumer (one off the path from the upstream systems to the utilities) lets the broker
    gather records for up to ``kafka.background_fetch_wait_ms`` before answering a fetch. Answered at once, a
    consumer of a busy topic makes a fetch round trip, and its stage a poll, per record or two; the consumers
    that need not be prompt take their records in fewer, fuller fetches instead.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.topic_prefix + kafka.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": kafka.max_poll_records,
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.session_timeout_ms // 3,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        **security_options(kafka),
    }
    if background and kafka.background_fetch_wait_ms > 0:
        options["fetch_min_bytes"] = _BACKGROUND_FETCH_MIN_BYTES
        options["fetch_max_wait_ms"] = kafka.background_fetch_wait_ms
    options.update(overrides)
    return KafkaConsumer(**options)


def ensure_topics(kafka: KafkaSettings, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = make_admin(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in {s.name: s for s in specs}.values() if spec.name not in existing]
        created = []
        for spec in missing:
            configs = _configs(spec, kafka)
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, kafka.replication_factor, topic_configs=configs)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                continue  # another process created it between the listing and now
            except TopicAuthorizationFailedError:
                # a principal holding only its stages' ACLs neither sees nor creates other topics; `ubridge acl
                # apply` created them as administrator
                continue
        _await_leaders(admin, created)
        return created
    finally:
        admin.close()


_LEADER_WAIT_S = 30.0


def _await_leaders(admin: KafkaAdminClient, names: list[str]) -> None:
    """Wait (bounded) until every partition of the topics just created has a leader in the cluster's metadata.

    A consumer that subscribes before then is assigned no partitions of the topic, and kafka-python only notices
    them at its next metadata refresh (``metadata_max_age_ms``, five minutes): the stage would sit idle that long.
    Past the bound the stages start anyway; the refresh still brings the partitions.
    """
    deadline = time.monotonic() + _LEADER_WAIT_S
    waiting = list(names)
    while waiting and time.monotonic() < deadline:
        described = admin.describe_topics(waiting)
        waiting = [t["name"] for t in described if not _led(t)]
        if waiting:
            time.sleep(0.1)


def _led(topic: Mapping[str, Any]) -> bool:
    partitions = topic["partitions"]
    return topic["error_code"] == 0 and bool(partitions) and all(p["leader_id"] >= 0 for p in partitions)


def align_topic_configs(
    kafka: KafkaSettings, specs: list[TopicSpec], *, apply: bool
) -> dict[str, dict[str, tuple[str | None, str]]]:
    """Compare existing topics' retention settings with their specs and, with ``apply``, alter them to match.

    Only the keys ubridge sets are touched (an incremental alter): replication settings and whatever an
    operator set besides stay. Returns topic → config → (was, wanted) for each topic that differed.

    Raises:
        KafkaError: the cluster refused an alteration (the message names the topics and why).
    """
    admin = make_admin(kafka)
    try:
        existing = set(admin.list_topics())
        wanted = {s.name: _configs(s, kafka) for s in specs if s.name in existing and _configs(s, kafka)}
        if not wanted:
            return {}
        asked = [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(c)) for name, c in wanted.items()]
        described = admin.describe_configs(asked, config_filter="all")["topic"]
        changes = {name: config_changes(c, _values(described[name])) for name, c in wanted.items()}
        changes = {name: diff for name, diff in changes.items() if diff}
        if apply and changes:
            alters = [
                ConfigResource(ConfigResourceType.TOPIC, name, {k: new for k, (_, new) in diff.items()})
                for name, diff in changes.items()
            ]
            try:
                results = admin.alter_configs(alters)["topic"]
            except ValueError as exc:  # kafka-python's own check, when the principal may not describe configs
                message = f"altering topic configs refused: {exc}"
                raise KafkaError(message) from exc
            failed = {name: result for name, result in results.items() if result != "OK"}
            if failed:
                message = f"altering topic configs failed: {failed}"
                raise KafkaError(message)
        return changes
    finally:
        admin.close()


def _values(described: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    return {name: entry["value"] for name, entry in described.items()}


def _configs(spec: TopicSpec, kafka: KafkaSettings) -> dict[str, str]:
    lag = spec.compaction_lag_ms
    configs = topic_configs(compacted=spec.compacted, retention=spec.retention_ms, compaction_lag_ms=lag)
    if kafka.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
    return configs


def replication_of(kafka: KafkaSettings, names: list[str]) -> dict[str, int]:
    """The fewest replicas any partition of each existing topic among ``names`` has."""
    admin = make_admin(kafka)
    try:
        existing = sorted(set(names) & set(admin.list_topics()))
        described = admin.describe_topics(existing) if existing else []
    finally:
        admin.close()
    # the metadata response names a topic ``name`` from version 10 on, ``topic`` before
    return {
        topic.get("name") or topic["topic"]: min((len(p["replica_nodes"]) for p in topic["partitions"]), default=0)
        for topic in described
    }


def under_replicated(actual: Mapping[str, int], configured: int) -> dict[str, int]:
    """The topics with fewer replicas than configured, and how many they have."""
    return {topic: replicas for topic, replicas in sorted(actual.items()) if replicas < configured}
