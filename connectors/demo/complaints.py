"""The demo's 12345 loop on ubridge's side: where answers go, the utilities' second answers, and the summary.

The complaint stage answers the platform simulator of :mod:`connectors.demo.hotline` (its answer interface, with
the bearer token of its feeds). When a caller was unsatisfied the order goes on the 清零 ledger; its utility
handles it again and reports a second ANSWERED through the status callbacks, as its business system would
(:func:`answer_again`), which the stage sends to the platform, whose second visit then strikes it off.

Example:
    >>> document.update(complaints_config(hotline.url, FEED_TOKEN))
    >>> answer_again(settings, unsatisfied, token_of=callback_token)
    >>> console.print(complaints_table(read_orders(...), policy))
"""

import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
from rich.table import Table

from connectors.complaints.cli import read_orders
from connectors.settings import Settings
from routing.complaints import state_of
from routing.records import ComplaintLedgerEntry
from routing.satisfaction import SatisfactionPolicy, satisfaction

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
SECOND_ANSWER: Final = "已复查：更换损坏部件并回访确认，问题已彻底解决"
_AFTER_VISIT: Final = timedelta(hours=4)  # the utility answers again the same day the caller was unsatisfied


def complaints_config(platform_url: str, token: str) -> dict[str, Any]:
    """The ``complaints`` section of the demo's configuration (event clock: the utilities' simulated office hours)."""
    return {
        "complaints": {
            "policy": str(CONFIG_DIR / "complaints.yaml"),
            "satisfaction": str(CONFIG_DIR / "satisfaction.yaml"),
            "calendar": str(CONFIG_DIR / "calendar.yaml"),
            "clock": "event",
            "platform": {"url": platform_url, "token": token, "attempts": 4, "backoff_s": 0.05},
        }
    }


def answer_again(settings: Settings, order_ids: Iterable[str], *, token_of: Callable[[str], str]) -> int:
    """Each utility reports a second ANSWERED for its orders on the 清零 ledger; returns how many were taken.

    Raises:
        LookupError: An order is not on the complaint ledger.
    """
    callbacks = settings.status_callbacks
    if callbacks is None:
        message = "the demo's configuration has no status_callbacks"
        raise LookupError(message)
    entries = read_orders(settings.kafka, settings.topics)
    taken = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{callbacks.port}", timeout=10) as client:
        for order_id in order_ids:
            entry = entries[order_id]
            last_visit = max(visit["visited_at"] for visit in entry["visits"])
            body = {
                "utility_id": entry["utility_id"],
                "stage": "ANSWERED",
                "occurred_at": (last_visit + _AFTER_VISIT).isoformat(timespec="milliseconds"),
                "detail": SECOND_ANSWER,
            }
            response = client.post(
                f"/v1/tasks/{quote(entry['task_id'], safe='')}/status",
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={
                    "Authorization": f"Bearer {token_of(entry['utility_id'])}",
                    "Content-Type": "application/json; charset=utf-8",
                },
            )
            taken += response.is_success
    return taken


def complaints_table(entries: Iterable[ComplaintLedgerEntry], policy: SatisfactionPolicy) -> Table:
    """Per utility: received, answered, on the 清零 ledger, cleared, escalated, satisfaction against the target."""
    target = policy.target.rate
    table = Table(
        "utility", "received", "answered", "on 清零 ledger", "cleared (销号)", "escalated (督办)",
        f"satisfaction (target {target:.1%})", title="12345 complaints",
    )  # fmt: skip
    by_utility: dict[str, list[ComplaintLedgerEntry]] = {}
    for entry in entries:
        by_utility.setdefault(entry["utility_id"], []).append(entry)
    for utility, orders in sorted(by_utility.items()):
        figures = satisfaction([v["result"] for e in orders for v in e["visits"]], policy)
        rate = "—" if figures.rate is None else f"{figures.rate:.1%}"
        verdict = (
            "" if figures.meets_target is None else (" [green]met[/]" if figures.meets_target else " [red]below[/]")
        )
        table.add_row(
            utility,
            str(len(orders)),
            str(sum(1 for e in orders if e["answered_at"] is not None)),
            str(sum(1 for e in orders if e["on_clearing_ledger"])),
            str(sum(1 for e in orders if state_of(e) == "cleared")),
            str(sum(1 for e in orders if e["escalations"])),
            rate + verdict,
        )
    return table
