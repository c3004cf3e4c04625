"""``ubridge complaints close|show|list``: the 清零 ledger for operators and the department's close.

``close ORDER --reason TEXT`` writes a ``ComplaintClose`` the complaint stage applies (销号 with a reason; an
order already closed stays as it was). ``show ORDER`` prints one order's loop; ``list`` every order, or with
``--clearing`` only those on the 清零 ledger and not struck off. They read the compacted ledger topic (no
consumer group), so they show what the stage has written.

Example::

    ubridge complaints close GD-20261125-0001 --reason "超出供水范围，已解释" --by 聊城市城管局 --config ubridge.yaml
    ubridge complaints list --clearing --config ubridge.yaml
"""

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.table import Table

from connectors.complaints.build import ledger_values
from connectors.runtime.kafka import make_producer
from connectors.runtime.schema_registry import SchemaRegistryError, codec_for
from connectors.settings import ConfigError, KafkaSettings, TopicNames, load_settings
from routing.calendar import SHANGHAI
from routing.complaints import is_overdue, state_of
from routing.records import ComplaintClose, ComplaintLedgerEntry
from schemas import Codec

_PIPE_WIDTH = 140


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``complaints close|show|list`` to the ``ubridge`` command."""
    complaints = subparsers.add_parser("complaints", help="the 12345 complaint loop and its 清零 ledger")
    commands = complaints.add_subparsers(title="complaints commands")
    close = commands.add_parser("close", help="strike an order off with the department's reason (销号)")
    close.add_argument("order_id")
    close.add_argument("--reason", required=True, help="why the order is closed without a satisfied visit")
    close.add_argument("--by", default=None, help="who closes it (default: the login name)")
    close.set_defaults(func=run_close)
    show = commands.add_parser("show", help="one order's loop: stages, visits, 清零, 督办")
    show.add_argument("order_id")
    show.set_defaults(func=run_show)
    listing = commands.add_parser("list", help="every order, or those on the 清零 ledger")
    listing.add_argument("--clearing", action="store_true", help="only orders on the 清零 ledger, not struck off")
    listing.set_defaults(func=run_list)
    for command in (close, show, listing):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--config", type=Path, help="take the broker and topic prefix from this configuration")
        where.add_argument("--bootstrap", help="host:port (default: $KAFKA_BOOTSTRAP or 127.0.0.1:9092)")
        command.add_argument("--topic-prefix", default=None, help="prepended to the topics' names")


def _where(args: argparse.Namespace) -> tuple[KafkaSettings, TopicNames]:
    if args.config is not None:
        settings = load_settings(args.config)
        Codec.install(codec_for(settings))  # this command's start-up: the configured value encoding
        kafka = settings.kafka
        if args.topic_prefix is not None:
            kafka = kafka.model_copy(update={"topic_prefix": args.topic_prefix})
        return kafka, settings.topics
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    return KafkaSettings(bootstrap=bootstrap, topic_prefix=args.topic_prefix or ""), TopicNames()


def read_orders(kafka: KafkaSettings, topics: TopicNames) -> dict[str, ComplaintLedgerEntry]:
    """Every order on the ledger topic, by order id.

    Raises:
        LookupError: The topic does not exist.
    """
    codec = Codec.default()
    values = ledger_values(kafka, kafka.topic_prefix + topics.complaints_ledger)
    entries = [cast(ComplaintLedgerEntry, codec.decode_as("ComplaintLedgerEntry", value)) for value in values]
    return {entry["order_id"]: entry for entry in entries}


def close_order(kafka: KafkaSettings, topics: TopicNames, *, order_id: str, reason: str, closed_by: str) -> None:
    """Write the department's close of ``order_id`` for the complaint stage.

    Raises:
        ValueError: A blank reason.
    """
    if not reason.strip():
        message = "--reason must say why the order is closed"
        raise ValueError(message)
    close: ComplaintClose = {
        "order_id": order_id,
        "reason": reason.strip(),
        "closed_by": closed_by,
        "closed_at": datetime.now(UTC),
    }
    producer = make_producer(kafka)
    try:
        value = Codec.default().encode("ComplaintClose", dict(close))
        producer.send(kafka.topic_prefix + topics.complaints_closes, key=order_id.encode(), value=value).get(30)
    finally:
        producer.close()


def run_close(args: argparse.Namespace) -> int:
    """Close the order; 2 when it is unknown, the reason blank or the configuration bad."""
    try:
        kafka, topics = _where(args)
        if args.order_id not in read_orders(kafka, topics):
            print(f"ubridge: work order {args.order_id} is not in the complaint ledger", file=sys.stderr)
            return 2
        close_order(kafka, topics, order_id=args.order_id, reason=args.reason, closed_by=args.by or getpass.getuser())
    except (ConfigError, LookupError, SchemaRegistryError, ValueError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    print(f"close of {args.order_id} written; the complaint stage strikes it off")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one order's loop; 2 when it is unknown."""
    try:
        kafka, topics = _where(args)
        entry = read_orders(kafka, topics).get(args.order_id)
    except (ConfigError, LookupError, SchemaRegistryError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    if entry is None:
        print(f"ubridge: work order {args.order_id} is not in the complaint ledger", file=sys.stderr)
        return 2
    console = _console()
    for line in render_order(entry, datetime.now(UTC)):
        console.print(line)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the orders (on the 清零 ledger only with ``--clearing``)."""
    try:
        kafka, topics = _where(args)
        orders = read_orders(kafka, topics)
    except (ConfigError, LookupError, SchemaRegistryError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    rows = [e for e in orders.values() if not args.clearing or state_of(e) == "clearing"]
    table = Table("工单", "单位", "区县", "状态", "反馈期限", "清零期限", "督办", "逾期", title="诉求清零台账")
    for entry in sorted(rows, key=lambda e: e["order_id"]):
        table.add_row(
            entry["order_id"],
            entry["utility_id"],
            entry["region_code"],
            state_of(entry),
            _local(entry["answer_due"]),
            _local(entry["clearing_due"]),
            str(len(entry["escalations"])),
            "是" if is_overdue(entry, now) else "",
        )
    _console().print(table)
    return 0


def render_order(entry: ComplaintLedgerEntry, now: datetime) -> list[Table | str]:
    """One order: its stages with their deadlines, its visits, its place on the 清零 ledger."""
    stages = Table(
        "环节", "时间", "期限", title=f"工单 {entry['order_id']}（{entry['utility_id']}，{entry['region_code']}）"
    )
    stages.add_row("接收诉求 RECEIVED", _local(entry["received_at"]), "")
    stages.add_row("情况核实 VERIFIED", _local(entry["verified_at"]), _local(entry["verify_due"]))
    stages.add_row("分类办理 HANDLED", _local(entry["handled_at"]), "")
    due_from = "平台" if entry["answer_due_from"] == "platform" else "政策默认"
    stages.add_row("限期反馈 ANSWERED", _local(entry["answered_at"]), f"{_local(entry['answer_due'])}（{due_from}）")
    visits = Table("回访", "时间", "结果", title="结果回访")
    for visit in entry["visits"]:
        visits.add_row(visit["visit_id"], _local(visit["visited_at"]), visit["result"])
    lines: list[Table | str] = [
        stages,
        visits,
        f"状态: {state_of(entry)}{'（逾期）' if is_overdue(entry, now) else ''}",
    ]
    if entry["on_clearing_ledger"]:
        since, due = _local(entry["clearing_since"]), _local(entry["clearing_due"])
        lines.append(f"清零台账: {entry['clearing_reason']} 自 {since}，期限 {due}")
    if entry["closed_at"] is not None:
        how = entry["closed_how"] or ""
        reason = f"，理由: {entry['close_reason']}（{entry['closed_by']}）" if entry["close_reason"] else ""
        lines.append(f"{'销号' if entry['on_clearing_ledger'] else '办结'}: {_local(entry['closed_at'])} {how}{reason}")
    lines.append(f"督办: {len(entry['escalations'])}")
    return lines


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=_PIPE_WIDTH)
