"""``ubridge broker start|stop|status``: the local Kafka broker for the demo and the tests.

Progress goes to stderr and results to stdout, whose last line after a successful ``start`` or ``status`` is
machine-readable::

    $ ubridge broker start
    bootstrap=127.0.0.1:9092

Exit codes: 0 done (``status``: running), 1 the broker failed, 2 a tool to install is missing, 3 ``status``
found no broker.
"""

import argparse
import secrets
import sys
from pathlib import Path
from typing import Final

from connectors.broker.cluster import NODES, ClusterInfo, cluster_status, start_cluster, stop_cluster
from connectors.broker.local_kafka import (
    BrokerError,
    BrokerInfo,
    PrerequisiteError,
    broker_status,
    start_broker,
    stop_broker,
)

DEFAULT_HOME: Final = Path.home() / ".cache" / "ubridge" / "broker"
EXIT_FAILED: Final = 1
EXIT_MISSING_TOOL: Final = 2
EXIT_STOPPED: Final = 3


# Quoted because _SubParsersAction is generic only to type checkers; subscripting it at run time fails.
def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``broker`` command and its ``start``, ``stop`` and ``status`` subcommands to ``subparsers``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help=f"the broker's directory (default: {DEFAULT_HOME})"
    )
    broker = subparsers.add_parser("broker", help="run a local Apache Kafka broker for the demo and the tests")
    commands = broker.add_subparsers(dest="broker_command", required=True)
    start = commands.add_parser(
        "start", parents=[common], help="start the broker (fetches Kafka from Maven Central the first time)"
    )
    start.add_argument(
        "--port", type=int, default=None, help="client port (default: 9092, or a free one if 9092 is taken)"
    )
    start.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="clients connect with SASL_SSL as user 'ubridge' (password in <home>/tls/password), TLS from a "
        "throwaway CA (<home>/tls/ca.pem); only when the home is new",
    )
    start.add_argument(
        "--authorizer",
        action="store_true",
        help="with --sasl-ssl: turn on the KRaft StandardAuthorizer, 'ubridge' its super user; other users need "
        "the ACLs `ubridge acl apply` grants",
    )
    start.add_argument(
        "--nodes",
        type=int,
        choices=(1, NODES),
        default=1,
        help=f"{NODES}: a replicated KRaft cluster (replication 3, min.insync.replicas 2) on free ports",
    )
    start.set_defaults(func=_start)
    commands.add_parser("stop", parents=[common], help="stop the broker").set_defaults(func=_stop)
    status = commands.add_parser("status", parents=[common], help="say whether the broker runs (exit 3 if not)")
    status.set_defaults(func=_status)


def _start(args: argparse.Namespace) -> int:
    if args.nodes == NODES:
        return _start_cluster(args)
    running = broker_status(args.home)
    if running is not None:
        return _report("already running", running)
    users = None
    if args.authorizer and not args.sasl_ssl:
        print("ubridge: --authorizer needs --sasl-ssl (it authorizes SASL users)", file=sys.stderr)
        return EXIT_FAILED
    if args.sasl_ssl:
        password_file = args.home.expanduser() / "tls" / "password"
        if not password_file.is_file():
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.touch(mode=0o600)
            password_file.write_text(secrets.token_urlsafe(18), encoding="utf-8")
        users = {"ubridge": password_file.read_text(encoding="utf-8").strip()}
    try:
        super_users = ["ubridge"] if args.authorizer else None
        info = start_broker(args.home, port=args.port, progress=_progress, sasl_users=users, super_users=super_users)
    except PrerequisiteError as exc:
        return _fail(exc, EXIT_MISSING_TOOL)
    except BrokerError as exc:
        return _fail(exc, EXIT_FAILED)
    return _report("started", info)


def _start_cluster(args: argparse.Namespace) -> int:
    if args.sasl_ssl or args.authorizer or args.port is not None:
        print("ubridge: --nodes 3 takes no --sasl-ssl, --authorizer or --port (free ports each)", file=sys.stderr)
        return EXIT_FAILED
    try:
        info = start_cluster(args.home, progress=_progress)
    except PrerequisiteError as exc:
        return _fail(exc, EXIT_MISSING_TOOL)
    except BrokerError as exc:
        return _fail(exc, EXIT_FAILED)
    return _report_cluster("started", info)


def _stop(args: argparse.Namespace) -> int:
    home = args.home.expanduser()
    stopped = stop_cluster(home) if cluster_status(home) is not None else stop_broker(home)
    print(f"stopped the broker in {home}" if stopped else f"no broker was running in {home}")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = cluster_status(args.home)
    if cluster is not None:
        return _report_cluster("running", cluster)
    info = broker_status(args.home)
    if info is None:
        print(f"stopped: no broker running in {args.home.expanduser()}")
        return EXIT_STOPPED
    return _report("running", info)


def _report(state: str, info: BrokerInfo) -> int:
    print(f"{state}: Kafka broker pid {info.pid} in {info.home}")
    print(f"bootstrap={info.bootstrap}")
    if info.ca_file is not None:
        print("security: SASL_SSL; in ubridge.yaml:")
        print(f'  kafka: {{bootstrap: "{info.bootstrap}", security: {{protocol: SASL_SSL, ca_file: "{info.ca_file}",')
        print('         sasl: {mechanism: SCRAM-SHA-512, username: ubridge, password: "${KAFKA_PASSWORD}"}}}')
        print(f"  KAFKA_PASSWORD=$(cat {info.ca_file.parent / 'password'})")
    return 0


def _report_cluster(state: str, info: ClusterInfo) -> int:
    pids = ", ".join(f"{node.node_id}: {node.pid}" for node in info.nodes)
    print(f"{state}: {len(info.nodes)}-node Kafka cluster in {info.home} (pids {pids})")
    print("  in ubridge.yaml: kafka: {replication_factor: 3, min_insync_replicas: 2}")
    print(f"bootstrap={info.bootstrap}")
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fail(exc: BrokerError, code: int) -> int:
    print(f"ubridge: {exc}", file=sys.stderr)
    return code
