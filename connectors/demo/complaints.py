"""The demo's 12345 part: complaint work orders through their loop, return visits, and the per-utility summary.

The orders reach the complaint stage as the sinks and utilities would report them (the sink's RECEIVED carrying
the COMPLAINT task, then VERIFIED, HANDLED, ANSWERED with the answer text) and the platform's return visits, in
compressed time on the stage's ``event`` clock. Outcomes are mixed on purpose: most callers satisfied, some
unsatisfied and cleared on a revisit (清零 → 销号), some answered late (督办, then cleared), some left unsatisfied
past the clearing deadline (督办), some closed by the department. Answers go to a small in-process stand-in of
the platform's interface, which refuses the first try of some with 503 (the stage retries).

Example:
    >>> desk = AnswerDesk(); document.update(complaints_config(desk.url))
    >>> replay_complaints(settings, orders=60, seed=7)   # the utilities' reports
    >>> replay_visits(settings, orders=60, seed=7)       # later: the platform's visits, the department's closes
    >>> console.print(complaints_table(read_orders(...), policy))
"""

import json
import random
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from rich.table import Table

from connectors.runtime.kafka import make_producer
from connectors.settings import Settings
from routing.calendar import SHANGHAI
from routing.complaints import state_of
from routing.records import ComplaintLedgerEntry, Service, TaskStage, TaskStatus, UtilityTask
from routing.satisfaction import SatisfactionPolicy, satisfaction
from schemas import Codec

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
PLATFORM_TOKEN: Final = "demo-hotline-token"  # noqa: S105 - the demo's stand-in platform, not a secret
# (utility, district, service) of the demo's service areas the orders concern
PLACES: Final[tuple[tuple[str, str, Service], ...]] = (
    ("yantai-water", "370602", "WATER"),
    ("yantai-gas", "370611", "GAS"),
    ("liaocheng-water", "371502", "WATER"),
    ("liaocheng-gas", "371502", "GAS"),
    ("jinan-heat", "370102", "HEAT"),
)
_MATTERS: Final = ("水压低", "燃气表计量异常", "暖气不热", "停水未提前通知", "报装进度查询")
_DAYS_BACK: Final = 45  # the orders' loops end before now, so that no clock of the demo is pushed into the future


class AnswerDesk:
    """The platform's answer interface for the demo: takes every answer, refusing some first tries with 503."""

    def __init__(self, *, refuse_share: float = 0.1, seed: int = 7) -> None:
        self.answers: list[dict[str, Any]] = []
        self.refused = 0
        chance = random.Random(seed)  # noqa: S311 - fault injection, not security
        desk = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                with lock:
                    refuse = chance.random() < refuse_share
                    if refuse:
                        desk.refused += 1
                    else:
                        desk.answers.append(body)
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="demo-hotline-desk", daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def complaints_config(platform_url: str) -> dict[str, Any]:
    """The ``complaints`` section of the demo's configuration (event clock: the orders come in compressed time)."""
    return {
        "complaints": {
            "policy": str(CONFIG_DIR / "complaints.yaml"),
            "satisfaction": str(CONFIG_DIR / "satisfaction.yaml"),
            "calendar": str(CONFIG_DIR / "calendar.yaml"),
            "clock": "event",
            "platform": {"url": platform_url, "token": PLATFORM_TOKEN, "attempts": 4, "backoff_s": 0.05},
        }
    }


def replay_complaints(settings: Settings, *, orders: int, seed: int) -> None:
    """Produce ``orders`` work orders' stages (the utilities' reports) onto the broker."""
    codec = Codec.default()
    topic = settings.topic("task_status")
    producer = make_producer(settings.kafka)
    try:
        for task, chance in _orders(orders, seed):
            for stage, at, detail in _stages(task, chance):
                value = codec.encode("TaskStatus", dict(_status(task, stage, at, detail)))
                producer.send(topic, key=task["task_id"].encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def replay_visits(settings: Settings, *, orders: int, seed: int) -> None:
    """Produce the platform's return visits and the department's closes of the orders, once they were answered.

    Called after the stages were taken in: a visit comes days after the answer it judges.
    """
    codec = Codec.default()
    visits, closes = settings.topic("hotline_return_visits"), settings.topic("complaints_closes")
    producer = make_producer(settings.kafka)
    try:
        for n, (task, chance) in enumerate(_orders(orders, seed)):
            _stages(task, chance)  # the same draws as replay_complaints, so the visits follow the same orders
            order = str(task["work_order_id"])
            for visit_id, result, at in _visits(task, chance):
                visit = {
                    "order_id": order,
                    "visit_id": visit_id,
                    "result": result,
                    "visited_at": at,
                    "comment": None,
                    "source": "demo",
                    "source_event_id": visit_id,
                    "ingested_at": datetime.now(UTC),
                }
                producer.send(visits, key=order.encode(), value=codec.encode("ReturnVisit", visit))
            if n % 29 == 7:  # noqa: PLR2004 - one order in 29 the department closes
                close = {
                    "order_id": order,
                    "reason": "诉求属用户内部管网，已告知处理途径",
                    "closed_by": "demo-department",
                    "closed_at": task["occurred_at"] + timedelta(days=6),
                }
                producer.send(closes, key=order.encode(), value=codec.encode("ComplaintClose", close))
        producer.flush()
    finally:
        producer.close()


def _orders(orders: int, seed: int) -> Iterator[tuple[UtilityTask, random.Random]]:
    """The demo's work orders, each with the random draws that decide its course."""
    chance = random.Random(seed)  # noqa: S311 - demo traffic
    base = (datetime.now(SHANGHAI) - timedelta(days=_DAYS_BACK)).replace(hour=9, minute=0, second=0, microsecond=0)
    for n in range(orders):
        yield _task(n, base, chance), random.Random(seed * 1000 + n)  # noqa: S311 - demo traffic


def _task(n: int, base: datetime, chance: random.Random) -> UtilityTask:
    utility, region, service = PLACES[n % len(PLACES)]
    dispatched = base + timedelta(hours=3 * n + chance.randint(0, 2))
    order = f"GD-DEMO-{n:05d}"
    return {
        "task_id": f"complaint-{order}",
        "kind": "COMPLAINT",
        "action": "CREATE",
        "utility_id": utility,
        "service": service,
        "demand": None,
        "project_code": None,
        "project_name": None,
        "region_code": region,
        "site_address": "演示地址",
        "builder_name": None,
        "builder_uscc": None,
        "contact_name": None,
        "contact_mobile": None,
        "project_nature": None,
        "floor_area_m2": None,
        "land_area_m2": None,
        "trigger_stage": None,
        "documents": [],
        "missing_materials": [],
        "application_id": None,
        "source": "demo-hotline",
        "source_event_id": order,
        "occurred_at": dispatched,
        "ingested_at": dispatched,
        "created_at": dispatched,
        "contact_due": None,
        "contact_due_note": None,
        "flags": [],
        "application_filed_at": None,
        "application_kind": None,
        "permit_granted_at": None,
        "revision": 0,
        "materials_to_fetch": [],
        "dropped_materials": [],
        "user_category": "RESIDENT",
        "work_order_id": order,
        "answer_due": dispatched + timedelta(days=4),
        "complaint": _MATTERS[n % len(_MATTERS)],
    }


def _late(task: UtilityTask) -> bool:
    return int(str(task["work_order_id"])[-5:]) % 17 == 3  # noqa: PLR2004 - one order in 17 is answered late


def _stages(task: UtilityTask, chance: random.Random) -> list[tuple[TaskStage, datetime, str | None]]:
    """RECEIVED, VERIFIED, HANDLED, ANSWERED (late for some), a re-answer after an unsatisfied visit, CLOSED."""
    start = task["occurred_at"]
    answered = start + timedelta(days=6 if _late(task) else 1, hours=chance.randint(1, 5))
    stages: list[tuple[TaskStage, datetime, str | None]] = [
        ("RECEIVED", start + timedelta(minutes=5), None),
        ("VERIFIED", start + timedelta(hours=2), None),
        ("HANDLED", start + timedelta(hours=20), None),
        ("ANSWERED", answered, f"已处理：{task['complaint']}"),
    ]
    if _unsatisfied_first(task):
        stages.append(("ANSWERED", answered + timedelta(days=3), "已复查并彻底处理"))
    stages.append(("CLOSED", answered + timedelta(days=20), None))
    return stages


def _unsatisfied_first(task: UtilityTask) -> bool:
    return int(str(task["work_order_id"])[-5:]) % 23 in (2, 5)


def _visits(task: UtilityTask, chance: random.Random) -> Iterable[tuple[str, str, datetime]]:
    """The platform's visits: satisfied mostly; unsatisfied ones revisited (satisfied, or not within the limit)."""
    order = str(task["work_order_id"])
    first = task["occurred_at"] + timedelta(days=8)
    if not _unsatisfied_first(task):
        result = "BASICALLY_SATISFIED" if chance.random() < 0.2 else "SATISFIED"  # noqa: PLR2004 - demo mix
        if chance.random() < 0.05:  # noqa: PLR2004 - demo mix
            result = "UNREACHABLE"
        return [(f"{order}-v1", result, first)]
    never_cleared = int(order[-5:]) % 23 == 5  # noqa: PLR2004 - the revisit after the clearing deadline
    second = first + timedelta(days=30 if never_cleared else 4)
    return [
        (f"{order}-v1", "UNSATISFIED", first),
        (f"{order}-v2", "UNSATISFIED" if never_cleared else "SATISFIED", second),
    ]


def _status(task: UtilityTask, stage: TaskStage, at: datetime, detail: str | None) -> TaskStatus:
    return {
        "task_id": task["task_id"],
        "utility_id": task["utility_id"],
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": None,
        "detail": detail,
        "reporter": "sink" if stage == "RECEIVED" else "callback",
        "task": task if stage == "RECEIVED" else None,
    }


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
