"""A local three-node KRaft cluster on 127.0.0.1: replication as a provincial cluster has it, for the tests.

Each node is broker and controller (a quorum of three static voters), with its own home under the cluster's
(``node-1`` …) and its own ports; ``cluster.json`` records them. Topics are replicated three times with
``min.insync.replicas`` 2, the group and transaction state too, so the cluster keeps serving ``acks=all``
producers and transactions with one node down. A node can be killed (SIGKILL) and started again alone, to
see what a broker's death does to work in flight.

Example::

    info = start_cluster(Path("/tmp/cluster"))
    kill_node(info.home, 2)
    restart_node(info.home, 2)
    stop_cluster(info.home)
"""

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from connectors.broker.kafka_install import (
    BrokerError,
    ensure_kafka,
    find_java,
    free_port,
    kafka_cache,
    new_cluster_id,
    server_properties,
)
from connectors.broker.node import configure_node, is_our_broker, launch, terminate, wait_until_answering

STATE_FILE: Final = "cluster.json"
NODES: Final = 3
MIN_INSYNC: Final = 2
_HEAP: Final = "384m"  # three JVMs on a laptop: each gets less than the single broker's 512 MiB
_log = structlog.get_logger()


@dataclass(frozen=True)
class Node:
    """One node of the cluster: its id, client and controller ports, pid (0: not running) and home."""

    node_id: int
    port: int
    controller_port: int
    pid: int
    home: Path

    @property
    def bootstrap(self) -> str:
        """Where clients reach this node alone."""
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class ClusterInfo:
    """A running local cluster: every node, and the bootstrap list naming them all."""

    home: Path
    nodes: tuple[Node, ...]

    @property
    def bootstrap(self) -> str:
        """Every node's address: clients find the cluster through whichever answers."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> Node:
        """The node with this id."""
        return next(node for node in self.nodes if node.node_id == node_id)


def node_properties(node: Node, voters: str) -> dict[str, str]:
    """A node's settings: the single broker's, with the quorum of three and replication of three."""
    settings = server_properties(port=node.port, controller_port=node.controller_port, data_dir=node.home / "data")
    del settings["controller.quorum.bootstrap.servers"]
    replicated = str(NODES)
    settings |= {
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "default.replication.factor": replicated,
        "min.insync.replicas": str(MIN_INSYNC),
        "offsets.topic.replication.factor": replicated,
        "transaction.state.log.replication.factor": replicated,
        "transaction.state.log.min.isr": str(MIN_INSYNC),
        "share.coordinator.state.topic.replication.factor": replicated,
        "share.coordinator.state.topic.min.isr": str(MIN_INSYNC),
    }
    return settings


def cluster_status(home: Path) -> ClusterInfo | None:
    """The cluster of ``home`` if every node of it runs, else None."""
    info = _read_state(home.expanduser().resolve())
    if info is None or not all(is_our_broker(node.pid, node.home) for node in info.nodes):
        return None
    return info


def start_cluster(home: Path, *, progress: Callable[[str], None] | None = None) -> ClusterInfo:
    """Start the three nodes of ``home`` (a new cluster when the home is new) and wait until each answers.

    Raises:
        PrerequisiteError: No JDK 17+, or no Maven when the jars are not cached yet.
        BrokerError: The jars could not be fetched, or a node did not come up within 60 s.
    """
    home = home.expanduser().resolve()
    running = cluster_status(home)
    if running is not None:
        return running
    report = progress or (lambda _line: None)
    began = time.monotonic()
    java, libs = find_java(), ensure_kafka(kafka_cache(), report)
    known = _read_state(home)
    nodes = (
        known.nodes
        if known is not None
        else tuple(Node(n, free_port(), free_port(), 0, home / f"node-{n}") for n in range(1, NODES + 1))
    )
    voters = ",".join(f"{node.node_id}@127.0.0.1:{node.controller_port}" for node in nodes)
    cluster_id = _cluster_id(home)
    for node in nodes:
        configure_node(
            node.home,
            node_properties(node, voters),
            java=java,
            libs=libs,
            cluster_id=cluster_id,
            what=f"node {node.node_id} of a new three-node KRaft cluster",
            report=report,
        )
    info = ClusterInfo(home, tuple(_started(node, java, libs) for node in nodes))
    _write_state(info)
    try:
        for node in info.nodes:
            wait_until_answering(node.bootstrap, pid=node.pid, home=node.home, report=report)
    except BaseException:
        stop_cluster(home)
        raise
    _log.info("cluster_started", bootstrap=info.bootstrap, home=str(home), elapsed_s=round(time.monotonic() - began, 1))
    return info


def kill_node(home: Path, node_id: int) -> None:
    """SIGKILL one node, as a machine failure would stop it: no shutdown, no leadership handed over."""
    info = _required(home)
    node = info.node(node_id)
    with contextlib.suppress(ProcessLookupError):
        os.kill(node.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_our_broker(node.pid, node.home) and time.monotonic() < deadline:
        time.sleep(0.1)
    _log.info("cluster_node_killed", node=node_id, pid=node.pid)


def restart_node(home: Path, node_id: int, *, progress: Callable[[str], None] | None = None) -> Node:
    """Start one stopped node again on its ports and data, and wait until it answers."""
    info = _required(home)
    java, libs = find_java(), ensure_kafka(kafka_cache(), progress or (lambda _line: None))
    node = _started(info.node(node_id), java, libs)
    _write_state(ClusterInfo(info.home, tuple(node if n.node_id == node_id else n for n in info.nodes)))
    wait_until_answering(node.bootstrap, pid=node.pid, home=node.home, report=progress or (lambda _line: None))
    _log.info("cluster_node_restarted", node=node_id, pid=node.pid)
    return node


def stop_cluster(home: Path) -> bool:
    """Stop every node of ``home`` (SIGTERM, then SIGKILL after 30 s); True if one was running."""
    home = home.expanduser().resolve()
    info = _read_state(home)
    if info is None:
        return False
    running = [node for node in info.nodes if is_our_broker(node.pid, node.home)]
    for node in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(node.pid, signal.SIGTERM)
    for node in running:
        terminate(node.pid, node.home)
    (home / STATE_FILE).unlink(missing_ok=True)
    if running:
        _log.info("cluster_stopped", home=str(home), nodes=len(running))
    return bool(running)


def _started(node: Node, java: str, libs: Path) -> Node:
    return Node(node.node_id, node.port, node.controller_port, launch(java, libs, node.home, heap=_HEAP), node.home)


def _cluster_id(home: Path) -> str:
    """The cluster's id, made once: every node is formatted with the same one."""
    path = home / "cluster.id"
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(new_cluster_id(), encoding="ascii")
    return path.read_text(encoding="ascii").strip()


def _required(home: Path) -> ClusterInfo:
    info = _read_state(home.expanduser().resolve())
    if info is None:
        msg = f"no cluster was started in {home}"
        raise BrokerError(msg)
    return info


def _read_state(home: Path) -> ClusterInfo | None:
    path = home / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        nodes = tuple(
            Node(int(n["id"]), int(n["port"]), int(n["controller_port"]), int(n["pid"]), home / f"node-{n['id']}")
            for n in raw["nodes"]
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        _log.warning("cluster_state_ignored", path=str(path))
        return None
    return ClusterInfo(home, nodes)


def _write_state(info: ClusterInfo) -> None:
    nodes = [{"id": n.node_id, "port": n.port, "controller_port": n.controller_port, "pid": n.pid} for n in info.nodes]
    (info.home / STATE_FILE).write_text(json.dumps({"nodes": nodes}, indent=1), encoding="utf-8")
