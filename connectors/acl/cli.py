"""``ubridge acl plan|apply``: the least-privilege ACLs of a configuration's stage and utility principals.

::

    ubridge acl plan --config ubridge.yaml             the ACLs, one line per principal and resource
    ubridge acl apply --config admin.yaml [--prune]    create the topics and the missing ACLs (as a super user)

``apply`` takes the cluster and credentials from its configuration's ``kafka`` section, so it runs with an
administrator's configuration holding the same ``acl``, ``topics`` and ``utilities`` sections. ``--prune``
also deletes ACLs the planned principals hold beyond the plan. Exit codes: 0 done, 1 the cluster refused,
2 an invalid configuration or ``acl`` section.
"""

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectors.acl.apply import AclApplyError, apply
from connectors.acl.plan import AclError, plan, rows, why
from connectors.runtime.kafka_access import KafkaAccessError, check_access
from connectors.runtime.logs import configure_logging
from connectors.settings import ConfigError, Settings, load_settings


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``acl`` with ``plan`` and ``apply`` to the ``ubridge`` command."""
    acl = subparsers.add_parser("acl", help="least-privilege Kafka ACLs per stage and utility principal")
    commands = acl.add_subparsers(title="acl commands", required=True)
    show = commands.add_parser("plan", help="print the ACLs the configuration's principals need")
    show.add_argument("--config", type=Path, required=True)
    show.set_defaults(func=_plan)
    put = commands.add_parser("apply", help="create the topics and the missing ACLs (run as a super user)")
    put.add_argument("--config", type=Path, required=True)
    put.add_argument("--prune", action="store_true", help="also delete the principals' ACLs beyond the plan")
    put.set_defaults(func=_apply)


def _settings(path: Path) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"ubridge: invalid configuration\n{exc}", file=sys.stderr)
        return None


def _plan(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if settings is None:
        return 2
    try:
        reasons = why(settings)
    except AclError as exc:
        print(f"ubridge: {args.config}: {exc}", file=sys.stderr)
        return 2
    table = Table("principal", "resource", "name", "operations", "needed by", title="Kafka ACLs (ALLOW, any host)")
    for row in rows(reasons):
        table.add_row(*row)
    Console(width=200).print(table)
    print(f"{len(reasons)} ACLs for {len({acl.principal for acl in reasons})} principals")
    return 0


def _apply(args: argparse.Namespace) -> int:
    configure_logging(json=False, level="warning")
    settings = _settings(args.config)
    if settings is None:
        return 2
    try:
        planned = plan(settings)
    except AclError as exc:
        print(f"ubridge: {args.config}: {exc}", file=sys.stderr)
        return 2
    try:
        check_access(settings.kafka)
        diff = apply(settings, planned, prune=args.prune)
    except (AclApplyError, KafkaAccessError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 1
    print(f"created {len(diff.missing)} ACL(s); {len(planned) - len(diff.missing)} were in place")
    if diff.extra:
        verb = "deleted" if args.prune else "left (--prune deletes them)"
        print(f"{len(diff.extra)} ACL(s) of these principals beyond the plan {verb}:")
        for acl in diff.extra:
            print(f"  {acl.principal} {acl.operation} {acl.resource}:{acl.name}")
    return 0
