"""``ubridge tasks show <task_id>``: one task's timeline from the ledger's changelog, against its SLA policy.

Reads the latest ``TaskLedgerEntry`` of the task from every partition of the changelog (no consumer group),
and prints its stages (the 台账), then each rule of ``sla-policies.yaml`` governing the task: its citation
(document and quoted sentence), what starts and stops it, unit and counting, and per clock (the rule's own and
one per step): the limit, the due instant, used and remaining time, met/breached/open (or how the task ended),
the excluded intervals with their reason, and ``provisional`` or ``unclocked`` where the working-day calendar
is not official for the days counted. A task no rule governs says what applies instead. Last, the task's joint
site survey (联合踏勘), once however many rounds it took, from the surveys topic.

Example::

    ubridge tasks show yantai-water-3f2a… --config ubridge.yaml
    ubridge tasks show yantai-water-3f2a… --bootstrap 127.0.0.1:9092 --topic-prefix demo.
"""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from connectors.runtime.compacted import decoded_to_end, read_latest
from connectors.runtime.kafka import make_consumer
from connectors.runtime.schema_registry import SchemaRegistryError, codec_for
from connectors.settings import ConfigError, KafkaSettings, LedgerSettings, load_settings
from routing.calendar import SHANGHAI, load_calendar
from routing.ledger import RuleTimeline, StageRow, Timeline, timeline
from routing.records import TaskLedgerEntry
from routing.sla_policy import load_policies
from routing.surveys import standing
from schemas import Codec

CHANGELOG_TOPIC = "ubridge.ledger.changelog.v1"
SURVEYS_TOPIC = "ubridge.surveys.v1"
_CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
DEFAULT_CALENDAR = _CONFIG_DIR / "calendar.yaml"
DEFAULT_POLICIES = _CONFIG_DIR / "sla-policies.yaml"
_PIPE_WIDTH = 120
_STATE_STYLE = {"met": "green", "done": "green", "warning": "yellow", "breached": "bold red"}


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
        kafka, topic, ledger, surveys_topic = _where(args)
        entry = find_entry(kafka, topic, args.task_id)
    except (ConfigError, LookupError, SchemaRegistryError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    if entry is None:
        print(f"ubridge: task {args.task_id} is not in the ledger (topic {topic})", file=sys.stderr)
        return 2
    try:
        calendar = load_calendar(args.calendar or (ledger.calendar if ledger else DEFAULT_CALENDAR))
        book = load_policies(args.policies or (ledger.policies if ledger else DEFAULT_POLICIES))
    except (OSError, ValueError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    view = timeline(entry, book, calendar, datetime.now(UTC))
    console = Console()
    if not console.is_terminal:  # piped or captured: do not fold the table into 80 columns
        console = Console(width=_PIPE_WIDTH)
    for line in render(entry, view, uncovered=book.uncovered):
        console.print(line)
    survey = survey_line(find_surveys(kafka, surveys_topic), args.task_id)
    if survey is not None:
        console.print(survey)
    return 0


def _where(args: argparse.Namespace) -> tuple[KafkaSettings, str, LedgerSettings | None, str]:
    prefix = args.topic_prefix
    if args.config is not None:
        settings = load_settings(args.config)
        Codec.install(codec_for(settings))  # this command's start-up: the configured value encoding
        kafka = settings.kafka
        if prefix is not None:
            kafka = kafka.model_copy(update={"topic_prefix": prefix})
        changelog, surveys = settings.topics.ledger_changelog, settings.topics.surveys
        return kafka, kafka.topic_prefix + changelog, settings.ledger, kafka.topic_prefix + surveys
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix or "")
    return kafka, kafka.topic_prefix + CHANGELOG_TOPIC, None, kafka.topic_prefix + SURVEYS_TOPIC


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


def find_surveys(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """Every record of the surveys topic (none when joint surveys never ran), in the order written."""
    consumer = make_consumer(kafka, group_id=None)
    try:
        if topic not in consumer.topics():  # asking for an absent topic's partitions may have the broker create it
            return []
        return list(decoded_to_end(consumer, topic, "SurveyProposal", Codec.default()))
    finally:
        consumer.close()


def survey_line(surveys: list[dict[str, Any]], task_id: str) -> str | None:
    """The task's joint survey (联合踏勘) as it stands last: once per task, whatever its rounds; None without one."""
    mine = [s for s in standing(surveys).values() if any(p["task_id"] == task_id for p in s["participants"])]
    if not mine:
        return None
    last = mine[-1]
    (utility,) = [p["utility_id"] for p in last["participants"] if p["task_id"] == task_id]
    others = ", ".join(p["utility_id"] for p in last["participants"] if p["utility_id"] != utility)
    lead = f"; led by {last['lead_department']}" if last["lead_department"] else ""
    slot = f"{_local(last['slot_start'])}–{last['slot_end'].astimezone(SHANGHAI):%H:%M}"
    return (
        f"joint survey (联合踏勘) {last['survey_id']}: {last['state']} {slot} (round {last['round']}), "
        f"with {others}{lead}"
    )


def render(entry: TaskLedgerEntry, view: Timeline, *, uncovered: str) -> list[Table | str]:
    """The stages table, then per rule its citation and clocks table, then notes; times in Asia/Shanghai."""
    title = (
        f"{entry['task_id']}  {entry['utility_id']}  {entry['kind']} {entry['service']}  region {entry['region_code']}"
        f"  pipe {entry['scenario']}"
    )
    out: list[Table | str] = [_stages(title, view.stages)]
    for rule in view.rules:
        out += _rule(rule)
    if not view.rules:
        out.append(f"no rule governs this task: {uncovered}")
    if view.ended:
        out.append(f"ended: {view.ended}; every clock still running then closed with that outcome")
    calendars = [row.calendar for row in view.stages] + [r.calendar for rule in view.rules for r in rule.rows]
    if "provisional" in calendars:
        out.append(
            "provisional: these figures count days of a year without the State Council's holiday notice (days off "
            "from the statutory rules, no make-up days); they may move once overrides.<year> is added"
        )
    if entry["unclocked_reason"]:
        out.append(f"unclocked: {entry['unclocked_reason']}")
    return out


def _stages(title: str, rows: list[StageRow]) -> Table:
    table = Table(title=title, caption="stages (台账); times: Asia/Shanghai; hours: working hours")
    for column in ("stage", "started", "ended", "elapsed h", "calendar"):
        table.add_column(column, justify="right" if column.endswith(" h") else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            row.name, _local(row.started), _local(row.ended), _hours(row.elapsed_working_hours), _calendar(row.calendar)
        )
    return table


def _rule(rule: RuleTimeline) -> list[Table | str]:
    lines: list[Table | str] = [
        f"rule {rule.rule_id} (variant {rule.variant or 'none'}): {rule.citation}",
        f"  starts: {rule.starts}; stops: {rule.stops}; unit: {rule.unit}; {rule.counting}",
    ]
    if rule.start_note:
        lines.append(f"  note: {rule.start_note}")
    hours = "natural hours" if rule.unit.startswith("natural") else "working hours"
    table = Table(caption=f"{rule.rule_id}: hours are {hours}")
    columns = ("clock", "started", "due", "stopped", "limit h", "used h", "left h", "state", "excluded", "calendar")
    for column in columns:
        table.add_column(column, justify="right" if column.endswith(" h") else "left", no_wrap=column != "excluded")
    for row in rule.rows:
        style = _STATE_STYLE.get(row.state, "")
        excluded = "; ".join(f"{span.reason} {_local(span.start)}–{_local(span.end) or 'now'}" for span in row.excluded)
        table.add_row(
            row.name,
            _local(row.started),
            _local(row.due),
            _local(row.ended),
            "no limit" if row.limit_hours is None else _hours(row.limit_hours),
            _hours(row.used_hours),
            _hours(row.remaining_hours),
            f"[{style}]{row.state}[/]" if style else row.state,
            excluded,
            _calendar(row.calendar),
        )
    lines.append(table)
    return lines


def _calendar(basis: str) -> str:
    return "" if basis == "official" else f"[yellow]{basis}[/]"


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
