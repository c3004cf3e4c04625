"""``ubridge migrate tasks-topics``: the upgrade from the single task topic to one topic per utility.

::

    ubridge migrate tasks-topics --config ubridge.yaml --dry-run    what would be copied, nothing written
    ubridge migrate tasks-topics --config ubridge.yaml              copy (every ubridge process stopped)

Exit codes: 0 migrated (or nothing left to migrate), 1 the migration could not run (one line says why),
2 an invalid configuration.
"""

import argparse
import sys
from pathlib import Path

from connectors.migrate.task_topics import MigrationError, MigrationReport, migrate_task_topics
from connectors.runtime.kafka_access import KafkaAccessError, check_access
from connectors.runtime.logs import configure_logging
from connectors.settings import ConfigError, load_settings


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``migrate`` and its ``tasks-topics`` subcommand to the ``ubridge`` command."""
    migrate = subparsers.add_parser("migrate", help="upgrade an installation's topics")
    commands = migrate.add_subparsers(title="migrations", required=True)
    tasks = commands.add_parser(
        "tasks-topics", help="copy the undelivered tasks of ubridge.tasks.v1 to each utility's own topic"
    )
    tasks.add_argument("--config", type=Path, required=True)
    tasks.add_argument("--dry-run", action="store_true", help="say what would be copied; write nothing")
    tasks.set_defaults(func=_tasks_topics)


def _tasks_topics(args: argparse.Namespace) -> int:
    configure_logging(json=False, level="warning")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ubridge: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    try:
        check_access(settings.kafka)
        report = migrate_task_topics(settings, dry_run=args.dry_run)
    except (MigrationError, KafkaAccessError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 1
    _print(report, dry_run=args.dry_run)
    return 0


def _print(report: MigrationReport, *, dry_run: bool) -> None:
    verb = "would copy" if dry_run else "copied"
    for utility, count in sorted(report.copied.items()):
        print(f"{verb} {count} task(s) to {utility}'s topic")
    print(f"{report.delivered} record(s) already delivered, left; {report.revisions_translated} revision(s) moved")
    for utility, count in sorted(report.unconfigured.items()):
        print(f"left {count} task(s) of {utility}: no utilities[] entry configures its sink")
    if report.unreadable:
        where = ", ".join(f"{p}:{o}" for p, o in report.unreadable[:10])
        print(f"left {len(report.unreadable)} record(s) that are no UtilityTask (partition:offset {where})")
    if report.partitions_already_migrated:
        print(f"partitions migrated before: {report.partitions_already_migrated}")
    print(f"{report.legacy_topic}: {'not migrated (dry run)' if dry_run else 'migrated'}")
