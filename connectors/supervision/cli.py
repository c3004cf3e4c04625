"""``ubridge report monthly``: the month's dispatch workbook (每月调度) from the ledger's changelog.

Reads every task's latest entry (no consumer group) and writes :mod:`connectors.supervision.workbook`, read at
the wall clock (with the configuration's ``ledger.clock: event``, at the latest report's time).

Example::

    ubridge report monthly --month 2026-11 --config ubridge.yaml            # writes ubridge-monthly-2026-11.xlsx
    ubridge report monthly --month 2026-11 --bootstrap 127.0.0.1:9092 --output /tmp/november.xlsx
"""

import argparse
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from connectors.complaints.cli import read_orders
from connectors.ledger.show import CHANGELOG_TOPIC, DEFAULT_CALENDAR, DEFAULT_POLICIES
from connectors.settings import ConfigError, KafkaSettings, load_settings
from connectors.supervision.entries import read_entries
from connectors.supervision.stage import latest_report, rules_of
from connectors.supervision.workbook import write_workbook
from routing.calendar import load_calendar
from routing.complaints import complaint_figures
from routing.monthly import MonthlyReport, monthly
from routing.satisfaction import load_satisfaction_policy
from routing.sla_policy import load_policies
from routing.supervision import with_complaints


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``report monthly`` to the ``ubridge`` command."""
    report = subparsers.add_parser("report", help="reports for the competent department")
    commands = report.add_subparsers(title="report commands")
    command = commands.add_parser("monthly", help="the month's dispatch workbook (Excel) from the ledger")
    command.add_argument("--month", required=True, help="YYYY-MM, months in Asia/Shanghai")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="take the broker, topics, calendar and policies from this file")
    where.add_argument("--bootstrap", help="host:port (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)")
    command.add_argument("--topic-prefix", default=None, help="prepended to the changelog topic's name")
    command.add_argument("--output", type=Path, help="the workbook to write (default: ubridge-monthly-<month>.xlsx)")
    command.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the workbook; 2 when the month, the topic or the configuration is wrong."""
    try:
        kafka, topic, calendar_path, policies_path, event_clock = _where(args)
        book, calendar = load_policies(policies_path), load_calendar(calendar_path)
        entries = read_entries(kafka, topic)
        now = latest_report(lambda: entries)() if event_clock else datetime.now(UTC)
        report = monthly(entries, book, calendar, month=args.month, now=now)
        report = _with_complaints(args, report)
    except (ConfigError, LookupError, OSError, ValueError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    output = args.output or Path(f"ubridge-monthly-{args.month}.xlsx")
    write_workbook(report, output)
    total = report.figures.total
    print(
        f"{output}: {total.tasks} tasks filed in {args.month}, {total.breached} with a breach; "
        f"{len(report.overdue)} open past due at the month's end"
    )
    return 0


def _with_complaints(args: argparse.Namespace, report: MonthlyReport) -> MonthlyReport:
    """The report with the month's complaint figures from the complaint ledger, when the configuration runs the loop."""
    if args.config is None:
        return report
    settings = load_settings(args.config)
    if settings.complaints is None:
        return report
    kafka = (
        settings.kafka
        if args.topic_prefix is None
        else settings.kafka.model_copy(update={"topic_prefix": args.topic_prefix})
    )
    orders = list(read_orders(kafka, settings.topics).values())
    policy = load_satisfaction_policy(settings.complaints.satisfaction)
    figures = complaint_figures(orders, policy, now=report.read_at, within=(report.start, report.end))
    return replace(report, figures=with_complaints(report.figures, figures))


def _where(args: argparse.Namespace) -> tuple[KafkaSettings, str, Path, Path, bool]:
    """Broker, changelog topic, calendar, policies, and whether the ledger runs on the event clock."""
    prefix = args.topic_prefix
    if args.config is not None:
        settings = load_settings(args.config)
        kafka = settings.kafka if prefix is None else settings.kafka.model_copy(update={"topic_prefix": prefix})
        calendar, policies = rules_of(settings)
        event_clock = settings.ledger is not None and settings.ledger.clock == "event"
        return kafka, kafka.topic_prefix + settings.topics.ledger_changelog, calendar, policies, event_clock
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix or "")
    return kafka, kafka.topic_prefix + CHANGELOG_TOPIC, DEFAULT_CALENDAR, DEFAULT_POLICIES, False
