"""``ubridge admin …``: the admin API from a shell (URL and token from options or the environment).

::

    ubridge admin stages
    ubridge admin pause --utility yantai-water --reason "utility maintenance until 18:00"
    ubridge admin resume sink-yantai-water
    ubridge admin restart router
    ubridge admin dlq list sink-yantai-water --error-class DataError
    ubridge admin dlq show sink-yantai-water 42
    ubridge admin dlq replay sink-yantai-water --offset 42 --reason "endpoint fixed"
    ubridge admin offsets reset router --to 2026-11-25T08:00:00+08:00 --reason "backfill after the mapping fix"

``--url`` defaults to ``$UBRIDGE_ADMIN_URL`` (else http://127.0.0.1:8093), ``--token`` to
``$UBRIDGE_ADMIN_TOKEN``; ``--as`` names the person acting (recorded on the audit topic); ``--json`` prints
the API's answer as JSON instead of a table.
"""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import httpx
from rich.console import Console
from rich.table import Table

DEFAULT_URL: Final = "http://127.0.0.1:8093"
_TIMEOUT_S: Final = 120.0  # a replay or listing reads a dead-letter topic to its end
_PREFIX: Final = "/admin/v1/stages"
_STAGE_COLUMNS: Final = ("stage", "state", "host", "pid", "lag", "records_in", "records_out", "restarts", "last_error")
_LETTER_COLUMNS: Final = ("offset", "timestamp", "error_class", "field", "message", "source_topic", "source_offset")
_FILTERS: Final = ("error_class", "field", "since", "until", "from_offset", "to_offset")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``admin`` and its subcommands to the ``ubridge`` command."""
    admin = subparsers.add_parser("admin", help="stages, pauses, dead letters and offsets, through the admin API")
    admin.add_argument("--url", default=os.environ.get("UBRIDGE_ADMIN_URL", DEFAULT_URL), help="the admin API")
    admin.add_argument("--token", default=os.environ.get("UBRIDGE_ADMIN_TOKEN"), help="($UBRIDGE_ADMIN_TOKEN)")
    admin.add_argument("--as", dest="operator", help="the person acting, for the audit record")
    admin.add_argument("--json", action="store_true", help="print the answer as JSON")
    commands = admin.add_subparsers(title="admin commands")
    commands.add_parser("stages", help="every stage of every process: state, lag, last error").set_defaults(
        func=run, request=_stages
    )
    for action in ("pause", "resume", "restart"):
        command = commands.add_parser(action, help=f"{action} a stage in every process")
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("stage", nargs="?")
        which.add_argument("--utility", metavar="ID", help="the utility's sink (sink-<ID>)")
        command.add_argument("--reason")
        command.set_defaults(func=run, request=_action, action=action)
    _register_dlq(commands)
    offsets = commands.add_parser("offsets", help="a stage's consumer-group offsets").add_subparsers(title="offsets")
    reset = offsets.add_parser("reset", help="move a stopped stage's group to a time or the start")
    reset.add_argument("stage")
    reset.add_argument("--to", required=True, help="'start', or an ISO-8601 time with its offset")
    reset.add_argument("--reason", required=True)
    reset.set_defaults(func=run, request=_reset)


def _register_dlq(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    dlq = commands.add_parser("dlq", help="a stage's dead letters").add_subparsers(title="dlq commands")
    listing = dlq.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    show = dlq.add_parser("show", help="one dead letter, decoded and masked")
    show.add_argument("stage")
    show.add_argument("offset", type=int)
    show.add_argument("--partition", type=int, default=0)
    show.set_defaults(func=run, request=_show)
    replay = dlq.add_parser("replay", help="send dead letters back to their source topic (or --topic)")
    replay.add_argument("--offset", type=int, action="append", dest="offsets", help="repeatable")
    replay.add_argument("--topic", help="replay to this topic instead (full name)")
    replay.add_argument("--reason", required=True)
    for command, request in ((listing, _list), (replay, _replay)):
        command.add_argument("stage")
        command.add_argument("--error-class")
        command.add_argument("--field")
        command.add_argument("--since", type=datetime.fromisoformat, help="ISO-8601 time with its offset")
        command.add_argument("--until", type=datetime.fromisoformat, help="ISO-8601 time with its offset")
        command.add_argument("--from-offset", type=int)
        command.add_argument("--to-offset", type=int)
        command.set_defaults(func=run, request=request)


def run(args: argparse.Namespace) -> int:
    """Send the command's request; print the answer; 1 when the API refused it, 2 without a token."""
    if not args.token:
        print("ubridge: an admin token is needed (--token or $UBRIDGE_ADMIN_TOKEN)", file=sys.stderr)
        return 2
    method, path, body = args.request(args)
    headers = {"Authorization": f"Bearer {args.token}"}
    if args.operator:
        headers["X-Ubridge-Operator"] = args.operator
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=_TIMEOUT_S) as client:
            if method == "GET":
                response = client.get(path, params=body)
            else:
                response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        print(f"ubridge: cannot reach the admin API at {args.url}: {exc}", file=sys.stderr)
        return 1
    if response.is_error:
        print(f"ubridge: {response.status_code} {_reason(response)}", file=sys.stderr)
        return 1
    _print(args, response.json())
    return 0


Request = tuple[str, str, dict[str, Any] | None]


def _stages(_: argparse.Namespace) -> Request:
    return "GET", _PREFIX, None


def _action(args: argparse.Namespace) -> Request:
    stage = args.stage if args.utility is None else f"sink-{args.utility}"
    return "POST", f"{_PREFIX}/{stage}/{args.action}", {"reason": args.reason}


def _list(args: argparse.Namespace) -> Request:
    return "GET", f"{_PREFIX}/{args.stage}/dead-letters", {**_criteria(args), "limit": args.limit}


def _show(args: argparse.Namespace) -> Request:
    return "GET", f"{_PREFIX}/{args.stage}/dead-letters/{args.partition}/{args.offset}", None


def _replay(args: argparse.Namespace) -> Request:
    body = {**_criteria(args), "reason": args.reason, "offsets": args.offsets, "topic": args.topic}
    return "POST", f"{_PREFIX}/{args.stage}/dead-letters/replay", body


def _reset(args: argparse.Namespace) -> Request:
    return "POST", f"{_PREFIX}/{args.stage}/offsets/reset", {"to": args.to, "reason": args.reason}


def _criteria(args: argparse.Namespace) -> dict[str, Any]:
    """The filters given, as the API takes them (times as ISO-8601)."""
    given = {name: getattr(args, name) for name in _FILTERS if getattr(args, name) is not None}
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in given.items()}


def _reason(response: httpx.Response) -> str:
    """The reason the API gave (``field: error``), else the body as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict) and "error" in body:
        return f"{body['field']}: {body['error']}" if body.get("field") else str(body["error"])
    return response.text


def _print(args: argparse.Namespace, answer: Any) -> None:
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
        return
    console = Console(width=160)
    if args.request is _stages:
        console.print(table(answer, _STAGE_COLUMNS, stale="stale"))
    elif args.request is _list:
        console.print(table(answer, _LETTER_COLUMNS))
    else:
        console.print_json(data=answer)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, stale: str | None = None) -> Table:
    """``rows`` as a table of ``columns``; a row whose ``stale`` field is true is dimmed and marked."""
    out = Table(*columns)
    for row in rows:
        cells = ["" if row.get(c) is None else str(row[c]) for c in columns]
        marked = stale is not None and bool(row.get(stale))
        if marked:
            cells[1] += " (stale)"
        out.add_row(*cells, style="dim" if marked else None)
    return out
