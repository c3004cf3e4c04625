"""A three-node replicated cluster with one broker SIGKILLed under traffic (issue 15 item 3).

Every topic is created with three replicas and ``min.insync.replicas`` 2 (from the configuration), so with one
node down producers with ``acks=all`` and transactions go on; the node comes back and catches up. Every
expected task must reach its utility once (the utility keeps one copy per idempotency key), with no ubridge
process restarted by hand.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from connectors.broker.cluster import ClusterInfo, kill_node, restart_node, start_cluster, stop_cluster
from connectors.demo.expected import Expectation, expected_tasks, interface_events
from connectors.settings import parse_settings
from routing.service_areas import load_service_areas
from simulators.approval import ApprovalSimulator
from simulators.utility import UtilitySimulator
from tests.support import SERVICE_AREAS, running_utility, utility_config, wait_until

pytestmark = pytest.mark.integration

UTILITIES = (
    "yantai-water", "yantai-gas", "zhaoyuan-gas", "yantai-heat",
    "liaocheng-water", "liaocheng-gas", "jinan-heat", "jinan-water",
)  # fmt: skip
ROUNDS = 8
EVENTS_PER_ROUND = 25
VICTIM = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """Three local KRaft nodes, replication 3, min.insync.replicas 2; stopped after the module."""
    home = tmp_path_factory.mktemp("cluster")
    info = start_cluster(home)
    try:
        yield info
    finally:
        stop_cluster(home)


def _config(tmp_path: Path, cluster: ClusterInfo, prefix: str, **sections: Any) -> Path:
    document = {
        "kafka": {
            "bootstrap": cluster.bootstrap,
            "topic_prefix": prefix,
            "session_timeout_ms": 6000,
            "replication_factor": 3,
            "min_insync_replicas": 2,
        },
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(SERVICE_AREAS)},
        **sections,
    }
    path = tmp_path / "ubridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _start(config: Path, log: Path, *stages: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config)]
    command += [arg for stage in stages for arg in ("--stage", stage)]
    with log.open("ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())


def _events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_topics_take_the_configured_replication_and_a_thinner_one_is_warned_of(
    tmp_path: Path, cluster: ClusterInfo, unique_prefix: str
) -> None:
    """New topics get 3 replicas and min.insync.replicas 2; a topic made earlier with 1 replica is named at start."""
    thin = f"{unique_prefix}ubridge.sla.v1"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        admin.create_topics([NewTopic(thin, 3, 1)])
        utilities = [utility_config(name, "http://127.0.0.1:9") for name in UTILITIES]
        config = _config(tmp_path, cluster, unique_prefix, utilities=utilities)
        log = tmp_path / "ubridge.log"
        process = _start(config, log, "normaliser-gonggai")
        try:
            wait_until(
                lambda: any(e["event"] == "stage_started" for e in _events(log)), timeout_s=120, what="the stage"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        canonical = f"{unique_prefix}ubridge.canonical.project-events.v1"
        (described,) = admin.describe_topics([canonical])
        resource = ConfigResource(ConfigResourceType.TOPIC, canonical, {"min.insync.replicas": None})
        configs = admin.describe_configs([resource])["topic"][canonical]
    finally:
        admin.close()
    warnings = [
        (e["topic"], e["replicas"], e["configured"]) for e in _events(log) if e["event"] == "topic_under_replicated"
    ]
    assert warnings == [(thin, 1, 3)]
    assert {len(p["replica_nodes"]) for p in described["partitions"]} == {3}
    assert configs["min.insync.replicas"]["value"] == "2"


# the group coordinators of a new three-broker cluster (50 offsets partitions, 3 replicas each) come up while the
# brokers share two cores with ubridge and the test: on a loaded machine it takes minutes, not seconds
_SETTLE_S = 240.0


def _unsettled(log: Path) -> dict[str, list[int] | None]:
    """The router, normaliser and sinks whose last assignment was empty (or that got none yet), with it."""
    last = {e["stage"]: e["partitions"] for e in _events(log) if e["event"] == "partitions_assigned"}
    stages = ["router", "normaliser-gonggai", *(f"sink-{name}" for name in UTILITIES)]
    return {stage: last.get(stage) for stage in stages if not last.get(stage)}


def _story(log: Path, stages: set[str]) -> str:
    """The last events of ``stages`` and the last warnings and errors of ubridge itself, one per line."""
    story = [
        e
        for e in _events(log)
        if e.get("stage") in stages or (e.get("level") in ("warning", "error") and e["event"] != "library_logged")
    ]
    return "\n".join(json.dumps(e, ensure_ascii=False)[:400] for e in story[-40:])


def _wait_settled(log: Path) -> None:
    """Wait until every stage holds partitions; fail naming those that do not, with what they last logged."""
    try:
        wait_until(lambda: not _unsettled(log), timeout_s=_SETTLE_S, what="every stage holding its partitions")
    except AssertionError:
        waiting = _unsettled(log)
        message = f"stages without partitions after {_SETTLE_S:g} s: {waiting}; their last events:\n"
        raise AssertionError(message + _story(log, set(waiting))) from None


def _expected(config: Path, approval: ApprovalSimulator) -> Expectation:
    """The tasks the approval system's published events must give, per utility."""
    settings = parse_settings(yaml.safe_load(config.read_text(encoding="utf-8")), origin="test")
    now = datetime.now(UTC)
    published = approval.events()
    codes = settings.routing.status_codes
    events = interface_events(published, source="gonggai-interface", status_codes=codes, now=now)
    return expected_tasks(events, published, load_service_areas(SERVICE_AREAS), now=now)


def _progress(log: Path) -> dict[str, Any]:
    """Where each stage of the path got to: the source's cursor, each stage's partitions, failures, restarts."""
    events = _events(log)
    seen: dict[str, Any] = {}
    for e in events:
        if e["event"] == "source_batch_committed":
            seen["source cursor"] = e["cursor"]
        elif e["event"] == "partitions_assigned":
            seen[f"{e['stage']} partitions"] = e["partitions"]
        elif e["event"] in ("stage_restarting", "stage_failed", "source_failed"):
            key = f"{e['stage']} {e['event']}"
            seen[key] = seen.get(key, 0) + 1
    return seen


def _sink_state(cluster: ClusterInfo, prefix: str, utility: str) -> str:
    """A sink's task topic (end offsets, leaders) and its group (committed offsets, members), as the cluster says."""
    topic, group = f"{prefix}ubridge.tasks.{utility}.v1", f"{prefix}ubridge.sink-{utility}"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, isolation_level="read_committed")
    try:
        (described,) = admin.describe_topics([topic])
        leaders = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in leaders])
        committed = admin.list_consumer_group_offsets(group)
        (members,) = admin.describe_consumer_groups([group])
    finally:
        consumer.close()
        admin.close()
    return (
        f"{utility}: leaders {leaders}, ends { {tp.partition: end for tp, end in ends.items()} }, "
        f"committed { {tp.partition: meta.offset for tp, meta in committed.items()} }, group {members}"
    )


def _wait_delivered(
    expectation: Expectation,
    utilities: dict[str, tuple[UtilitySimulator, str]],
    log: Path,
    published: int,
    kafka: tuple[ClusterInfo, str],
) -> None:
    """Wait until each utility holds as many tasks as expected; fail naming how many each lacks, and where it hung."""

    def short() -> dict[str, int]:
        return {u: len(expectation.tasks.get(u, set())) - utilities[u][0].stats().unique for u in UTILITIES}

    try:
        wait_until(lambda: max(short().values()) <= 0, timeout_s=180, what="every expected task at its utility")
    except AssertionError:
        lacking = {utility: count for utility, count in short().items() if count > 0}
        sinks = "\n".join(_sink_state(*kafka, utility) for utility in lacking)
        message = f"tasks missing per utility: {lacking}; {published} events published; progress {_progress(log)}"
        path = {"gonggai-interface", "normaliser-gonggai", "router", *(f"sink-{utility}" for utility in lacking)}
        message += f"\n{sinks}\nthe path's last events:\n{_story(log, path)}"
        raise AssertionError(message) from None


@pytest.fixture
def utilities() -> Iterator[dict[str, tuple[UtilitySimulator, str]]]:
    with ExitStack() as stack:
        yield {name: stack.enter_context(running_utility(name)) for name in UTILITIES}


def test_a_broker_killed_under_traffic_loses_and_repeats_no_task(
    tmp_path: Path, cluster: ClusterInfo, unique_prefix: str, utilities: dict[str, tuple[UtilitySimulator, str]]
) -> None:
    """SIGKILL one of three brokers mid-traffic, restart it: every task reaches its utility once, stages carry on."""
    approval = ApprovalSimulator(seed=15)
    url = approval.start()
    sources = {"gonggai_interface": {"base_url": url, "token": "approval-token", "poll_interval_s": 0.1}}
    config = _config(
        tmp_path,
        cluster,
        unique_prefix,
        sources=sources,
        utilities=[utility_config(name, utilities[name][1]) for name in UTILITIES],
    )
    log = tmp_path / "ubridge.log"
    process = _start(config, log)
    traffic_done = threading.Event()

    def traffic() -> None:
        for _ in range(ROUNDS):
            approval.generate(EVENTS_PER_ROUND, invalid_rate=0.02, unserved_rate=0.05)
            time.sleep(1.5)
        traffic_done.set()

    try:
        # the kill comes in steady state: a rebalance still settling while the coordinator dies can leave a
        # member of kafka-python's classic protocol without partitions (seen once; the issue is a broker's death)
        _wait_settled(log)
        feeder = threading.Thread(target=traffic, daemon=True)
        feeder.start()
        time.sleep(4.0)
        kill_node(cluster.home, VICTIM)
        killed_at = time.monotonic()
        time.sleep(6.0)
        restart_node(cluster.home, VICTIM)
        back_after_s = time.monotonic() - killed_at
        traffic_done.wait(timeout=120)
        expectation = _expected(config, approval)
        _wait_delivered(expectation, utilities, log, len(approval.events()), (cluster, unique_prefix))
        recovered_after_s = time.monotonic() - killed_at
        assert process.poll() is None, "ubridge run exited"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        approval.stop()
    expected = sum(len(ids) for ids in expectation.tasks.values())
    print(f"\nreplicated cluster: {expected} tasks, broker back after {back_after_s:.1f} s, "
          f"all delivered {recovered_after_s:.1f} s after the kill")  # fmt: skip
    for name in UTILITIES:
        simulator = utilities[name][0]
        received = sorted(task.task_id for task in simulator.tasks())
        assert (name, received) == (name, sorted(expectation.tasks.get(name, set())))
        assert (name, simulator.stats().key_conflicts) == (name, 0)
    restarted = [e for e in _events(log) if e["event"] in ("child_exited", "child_failed")]
    assert restarted == [], "a child of ubridge run had to be started again"
