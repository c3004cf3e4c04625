"""The local three-node cluster's settings and the replication checks (issue 15 item 3), without starting Java."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.broker.cluster import Node, node_properties
from connectors.cli import main as broker_main
from connectors.runtime.kafka import under_replicated
from connectors.settings import KafkaSettings

VOTERS = "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"


def test_each_node_is_a_voter_of_three_with_replication_three_and_two_in_sync(tmp_path: Path) -> None:
    """A node's properties: its own id and listeners, the static quorum, and replication settings for every topic."""
    node = Node(2, 9092, 9102, 0, tmp_path / "node-2")
    settings = node_properties(node, VOTERS)
    assert {key: settings[key] for key in (
        "node.id", "controller.quorum.voters", "default.replication.factor", "min.insync.replicas",
        "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr", "advertised.listeners", "log.dirs",
    )} == {
        "node.id": "2",
        "controller.quorum.voters": VOTERS,
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
        "log.dirs": str(tmp_path / "node-2" / "data"),
    }  # fmt: skip
    assert "controller.quorum.bootstrap.servers" not in settings


def test_topics_with_fewer_replicas_than_configured_are_named() -> None:
    """Only the topics below the configured factor are reported, with how many replicas they have."""
    actual = {"a": 1, "b": 3, "c": 2}
    assert (under_replicated(actual, 3), under_replicated(actual, 1)) == ({"a": 1, "c": 2}, {})


def test_min_insync_above_the_replication_factor_is_refused_naming_both() -> None:
    """min.insync.replicas 3 with 2 replicas would refuse every acks=all write: a configuration error."""
    with pytest.raises(ValidationError, match=r"min_insync_replicas \(3\) above replication_factor \(2\)"):
        KafkaSettings(replication_factor=2, min_insync_replicas=3)


def test_the_cluster_takes_no_fixed_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`broker start --nodes 3 --port 9092` is refused: each node takes free ports of its own."""
    assert broker_main(["broker", "start", "--nodes", "3", "--port", "9092", "--home", str(tmp_path)]) == 1
    assert "--nodes 3 takes no --sasl-ssl, --authorizer or --port" in capsys.readouterr().err
