"""``ubridge tasks show <task_id>``: one task's timeline from the ledger's changelog, against its SLA policy.

Reads the latest ``TaskLedgerEntry`` of the task from every partition of the changelog (no consumer group),
and prints each stage and the ``first_contact`` and ``total`` rules: start, end (Asia/Shanghai), elapsed
and allowed working hours, state, and ``provisional`` or ``unclocked`` where the working-day calendar is not
official for the days counted; then the scenario and the policy's source document.

Example::

    ubridge tasks show yantai-water-3f2a… --config ubridge.yaml
    ubridge tasks show yantai-water-3f2a… --bootstrap 127.0.0.1:9092 --topic-prefix demo.
"""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.table import Table

from connectors.ledger.changelog import read_latest
from connectors.runtime.kafka import make_consumer
from connectors.settings import ConfigError, KafkaSettings, LedgerSettings, load_settings
from routing.calendar import SHANGHAI, load_calendar
from routing.ledger import TimelineRow, timeline
from routing.records import TaskLedgerEntry
from routing.sla import PolicyNotFoundError, load_policies
from schemas import Codec

CHANGELOG_TOPIC = "ubridge.ledger.changelog.v1"
_CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
DEFAULT_CALENDAR = _CONFIG_DIR / "calendar.yaml"
DEFAULT_POLICIES = _CONFIG_DIR / "sla-policies.yaml"
_PIPE_WIDTH = 120
_STATE_STYLE = {"met": "green", "open": "", "warning": "yellow", "breached": "bold red"}


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``tasks show`` to the ``ubridge`` command."""
    tasks = subparsers.add_parser("tasks", help="the SLA ledger's tasks")
    commands = tasks.add_subparsers(title="tasks commands")
    show = commands.add_parser("show", help="one task's timeline against its SLA limits")
    show.add_argument("task_id")
    where = show.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help="take the broker and topic prefix from this configuration")
    where.add_argument("--bootstrap", help="host:port (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)")
    show.add_argument("--topic-prefix", default=None, help="prepended to the changelog topic's name")
    show.add_argument("--calendar", type=Path, help="working-time calendar YAML (default: the config's, or shipped)")
    show.add_argument("--policies", type=Path, help="SLA policy YAML (default: the config's, or shipped)")
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the task's timeline; 2 when the task, the topic or the configuration is unknown."""
    try:
        kafka, topic, ledger = _where(args)
        entry = find_entry(kafka, topic, args.task_id)
    except (ConfigError, LookupError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    if entry is None:
        print(f"ubridge: task {args.task_id} is not in the ledger (topic {topic})", file=sys.stderr)
        return 2
    try:
        calendar = load_calendar(args.calendar or (ledger.calendar if ledger else DEFAULT_CALENDAR))
        policies = load_policies(args.policies or (ledger.policies if ledger else DEFAULT_POLICIES))
        policy = policies.policy_for(entry["region_code"], entry["scenario"])
    except (OSError, ValueError, PolicyNotFoundError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    rows = timeline(entry, policy, calendar, datetime.now(UTC))
    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold the table into 80 columns
        console = Console(width=_PIPE_WIDTH)
    console.print(render(entry, rows))
    console.print(f"scenario: {entry['scenario']}    policy: {policy.policy_id}")
    console.print(f"source: {policy.source}")
    if any(row.calendar == "provisional" for row in rows):
        console.print(
            "provisional: these figures count days of a year without the State Council's holiday notice (days off "
            "from the statutory rules, no make-up days); they may move once overrides.<year> is added"
        )
    if entry["unclocked_reason"]:
        console.print(f"unclocked: {entry['unclocked_reason']}")
    return 0


def _where(args: argparse.Namespace) -> tuple[KafkaSettings, str, LedgerSettings | None]:
    prefix = args.topic_prefix
    if args.config is not None:
        settings = load_settings(args.config)
        kafka = settings.kafka
        if prefix is not None:
            kafka = kafka.model_copy(update={"topic_prefix": prefix})
        return kafka, kafka.topic_prefix + settings.topics.ledger_changelog, settings.ledger
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix or "")
    return kafka, kafka.topic_prefix + CHANGELOG_TOPIC, None


def find_entry(kafka: KafkaSettings, topic: str, task_id: str) -> TaskLedgerEntry | None:
    """The latest ledger entry of ``task_id`` on the changelog, or None.

    Raises:
        LookupError: The changelog topic does not exist.
    """
    key = task_id.encode()
    consumer = make_consumer(kafka, group_id=None)
    try:
        latest = read_latest(consumer, topic, only=key)
    finally:
        consumer.close()
    found = [records[key] for records in latest.values() if key in records]
    if not found:
        return None
    record = max(found, key=lambda r: r.timestamp)
    return cast(TaskLedgerEntry, Codec.default().decode_as("TaskLedgerEntry", record.value))


def render(entry: TaskLedgerEntry, rows: list[TimelineRow]) -> Table:
    """The timeline as a rich table, times in Asia/Shanghai."""
    title = (
        f"{entry['task_id']}  {entry['utility_id']}  {entry['kind']} {entry['service']}  region {entry['region_code']}"
    )
    table = Table(title=title, caption="times: Asia/Shanghai; hours: working hours")
    for column in ("stage", "started", "ended", "elapsed h", "allowed h", "state", "calendar"):
        table.add_column(column, justify="right" if column.endswith(" h") else "left", no_wrap=True)
    for row in rows:
        style = _STATE_STYLE.get(row.state, "")
        table.add_row(
            row.name,
            _local(row.started),
            _local(row.ended),
            _hours(row.elapsed_working_hours),
            _hours(row.allowed_working_hours),
            f"[{style}]{row.state}[/]" if style else row.state,
            "" if row.calendar == "official" else f"[yellow]{row.calendar}[/]",
        )
    return table


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
