"""Start, stop and find a single-node Apache Kafka broker on 127.0.0.1, for the demo and the tests.

A broker lives in a *home* directory holding its ``server.properties``, its data, its logs and, while it
runs, ``broker.json`` with its pid and ports. The broker is detached from whoever started it, so it outlives
``ubridge broker start``; :func:`stop_broker` ends it with SIGTERM. The Kafka jars are shared by every home
(see :mod:`connectors.broker.kafka_install`).

Example::

    info = start_broker(Path("~/.cache/ubridge/broker").expanduser())
    print(info.bootstrap)  # 127.0.0.1:9092
    stop_broker(info.home)
"""

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from connectors.broker.kafka_install import (
    BrokerError,
    PrerequisiteError,
    authorizer_properties,
    choose_ports,
    ensure_kafka,
    find_java,
    free_port,
    kafka_cache,
    new_cluster_id,
    secure_properties,
    server_properties,
)
from connectors.broker.node import configure_node, is_our_broker, launch, terminate, wait_until_answering
from connectors.broker.tls import issue_local_pki

__all__ = ["BrokerError", "BrokerInfo", "PrerequisiteError", "broker_status", "start_broker", "stop_broker"]

STATE_FILE: Final = "broker.json"
TLS_DIR: Final = "tls"
_log = structlog.get_logger()


@dataclass(frozen=True)
class BrokerInfo:
    """A running local broker: where clients connect, its process id, and its home directory.

    A broker started with SASL users listens for clients with SASL_SSL on ``bootstrap`` (its CA in
    ``ca_file``) and, for its own tooling, with PLAINTEXT on ``internal_bootstrap`` (127.0.0.1 only).
    """

    bootstrap: str
    pid: int
    home: Path
    ca_file: Path | None = None
    internal_bootstrap: str | None = None


@dataclass(frozen=True)
class _State:
    pid: int
    port: int
    controller_port: int
    internal_port: int | None = None


def broker_status(home: Path) -> BrokerInfo | None:
    """The broker running from ``home``, or None; a state file whose process is gone counts as stopped."""
    home = home.expanduser().resolve()
    state = _read_state(home)
    if state is None or not is_our_broker(state.pid, home):
        return None
    return _info(home, state)


def _info(home: Path, state: _State) -> BrokerInfo:
    if state.internal_port is None:
        return BrokerInfo(bootstrap=f"127.0.0.1:{state.port}", pid=state.pid, home=home)
    return BrokerInfo(
        bootstrap=f"127.0.0.1:{state.port}",
        pid=state.pid,
        home=home,
        ca_file=home / TLS_DIR / "ca.pem",
        internal_bootstrap=f"127.0.0.1:{state.internal_port}",
    )


def start_broker(
    home: Path,
    *,
    port: int | None = None,
    progress: Callable[[str], None] | None = None,
    sasl_users: Mapping[str, str] | None = None,
    super_users: Sequence[str] | None = None,
) -> BrokerInfo:
    """Start the broker of ``home`` and wait until it answers; return the running one if there is one.

    Args:
        home: The broker's directory, created if missing; its data survives a restart.
        port: The client port: None for 9092 or, if taken, any free port; 0 for any free port.
        progress: Called with a line of text at each slow step (fetching, formatting, waiting).
        sasl_users: When given (name → password), clients connect with SASL_SSL (SCRAM-SHA-256, SCRAM-SHA-512 or
            PLAIN) over TLS from a CA made at the first start (``<home>/tls``); only at a home's first start.
        super_users: When given (names of ``sasl_users``), the broker's authorizer is on: every other user needs
            ACLs (``ubridge acl apply``), these may do anything.

    Returns:
        The running broker.

    Raises:
        PrerequisiteError: No JDK 17+, or no Maven when the jars are not cached yet.
        BrokerError: The jars could not be fetched, or the broker did not come up within 60 s.
    """
    if super_users is not None and sasl_users is None:
        msg = "an authorizer needs SASL users: without them every client would be the broker's own super user"
        raise ValueError(msg)
    home = home.expanduser().resolve()
    running = broker_status(home)
    if running is not None:
        return running
    report = progress or (lambda _line: None)
    began = time.monotonic()
    java = find_java()
    libs = ensure_kafka(kafka_cache(), report)
    broker_port, controller_port = choose_ports(port)
    internal_port = None if sasl_users is None else free_port()
    settings = server_properties(port=broker_port, controller_port=controller_port, data_dir=home / "data")
    if sasl_users is not None and internal_port is not None:
        pki = issue_local_pki(home / TLS_DIR)
        settings |= secure_properties(
            port=broker_port, internal_port=internal_port, controller_port=controller_port, pki=pki, users=sasl_users
        )
    if super_users is not None:
        settings |= authorizer_properties(super_users)
    scram = [
        arg
        for name, password in (sasl_users or {}).items()
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]
    configure_node(
        home,
        settings,
        java=java,
        libs=libs,
        cluster_id=new_cluster_id(),
        format_args=["--standalone", *scram],
        what="a new single-node KRaft cluster",
        report=report,
    )
    pid = launch(java, libs, home)
    state = _State(pid=pid, port=broker_port, controller_port=controller_port, internal_port=internal_port)
    _write_state(home, state)
    info = _info(home, state)
    try:
        wait_until_answering(info.internal_bootstrap or info.bootstrap, pid=pid, home=home, report=report)
    except BaseException:
        # A broker that never answered is of no use to anyone, and would hold its ports.
        stop_broker(home)
        raise
    elapsed_s = round(time.monotonic() - began, 1)
    _log.info("broker_started", bootstrap=info.bootstrap, pid=pid, home=str(home), elapsed_s=elapsed_s)
    return info


def stop_broker(home: Path) -> bool:
    """Stop the broker of ``home``: SIGTERM, then SIGKILL after 30 s; True if one was running."""
    home = home.expanduser().resolve()
    state = _read_state(home)
    if state is None:
        return False
    running = is_our_broker(state.pid, home)
    if running:
        terminate(state.pid, home)
        _log.info("broker_stopped", pid=state.pid, home=str(home))
    (home / STATE_FILE).unlink(missing_ok=True)
    return running


def _read_state(home: Path) -> _State | None:
    path = home / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        internal = raw.get("internal_port")
        return _State(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            controller_port=int(raw["controller_port"]),
            internal_port=None if internal is None else int(internal),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        _log.warning("broker_state_ignored", path=str(path))
        return None


def _write_state(home: Path, state: _State) -> None:
    text = json.dumps(
        {
            "pid": state.pid,
            "port": state.port,
            "controller_port": state.controller_port,
            "internal_port": state.internal_port,
        }
    )
    (home / STATE_FILE).write_text(text + "\n", encoding="utf-8")
