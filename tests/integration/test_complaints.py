"""The complaint loop's stage on the real broker (issue 16 item 2): order to closed, 清零 and 销号, 督办, answers."""

import argparse
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import pytest
from openpyxl import load_workbook
from prometheus_client import CollectorRegistry

from connectors.complaints.build import build_complaints
from connectors.complaints.cli import close_order, read_orders, run_close, run_list, run_show
from connectors.complaints.follower import ComplaintFollower, follower_figures
from connectors.runtime.dlq import error_context
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.web_server import WebServer
from connectors.settings import Settings
from connectors.supervision.pages import LedgerView
from connectors.supervision.stage import supervision_app
from routing.calendar import SHANGHAI, load_calendar
from routing.complaints import after_working_days, state_of
from routing.records import ComplaintLedgerEntry, Escalation, TaskStage, TaskStatus, UtilityTask
from routing.satisfaction import load_satisfaction_policy
from schemas import Codec
from tests.supervision_data import BOOK, CALENDAR, november
from tests.support import ROOT, make_task, read_topic, settings_for, wait_until

pytestmark = pytest.mark.integration

CODEC = Codec.default()
CONFIG = ROOT / "deploy" / "config"
TOKEN = "platform-token"
VIEW_TOKEN = "supervision-token-0123456789"
SATISFACTION = load_satisfaction_policy(CONFIG / "satisfaction.yaml")


class FakePlatform:
    """The 12345 platform's answer interface: records each POST and answers from a script (then 200)."""

    def __init__(self, *answers: int) -> None:
        self.script = list(answers)
        self.refused: set[str] = set()  # order ids answered 400 always
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                platform.requests.append((self.path, dict(self.headers), body))
                status = platform.script.pop(0) if platform.script else 200
                if self.path.split("/")[-2] in platform.refused:
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Loop:
    """The complaint stage's topics on the test broker, and runs of the stage against them."""

    def __init__(self, bootstrap: str, prefix: str, platform: FakePlatform) -> None:
        self.settings: Settings = settings_for(
            bootstrap,
            prefix,
            complaints={
                "policy": str(CONFIG / "complaints.yaml"),
                "satisfaction": str(CONFIG / "satisfaction.yaml"),
                "calendar": str(CONFIG / "calendar.yaml"),
                "platform": {"url": platform.url, "token": TOKEN, "attempts": 3, "backoff_s": 0.05},
            },
        )
        self.kafka = self.settings.kafka
        topic = self.settings.topic
        self.dlq = self.settings.dlq_topic("complaints")
        plain = ["task_status", "hotline_return_visits", "complaints_closes", "complaints_escalations"]
        specs = [TopicSpec(topic(name), 2) for name in plain]
        ensure_topics(
            self.kafka, [*specs, TopicSpec(topic("complaints_ledger"), 2, compacted=True), TopicSpec(self.dlq, 1)]
        )
        self.registry = CollectorRegistry()

    @property
    def topic(self) -> Any:
        return self.settings.topic

    def produce(self, topic: str, *records: tuple[str, bytes]) -> None:
        producer = make_producer(self.kafka)
        for key, value in records:
            producer.send(self.topic(topic), key=key.encode(), value=value)
        producer.flush()
        producer.close()

    def statuses(self, *values: TaskStatus) -> None:
        self.produce("task_status", *((v["task_id"], CODEC.encode("TaskStatus", dict(v))) for v in values))

    def visit(self, order_id: str, visit_id: str, result: str, at: datetime) -> None:
        value = {
            "order_id": order_id,
            "visit_id": visit_id,
            "result": result,
            "visited_at": at,
            "comment": None,
            "source": "hotline-pull",
            "source_event_id": visit_id,
            "ingested_at": at,
        }
        self.produce("hotline_return_visits", (order_id, CODEC.encode("ReturnVisit", value)))

    def start(self) -> tuple[threading.Event, threading.Thread]:
        stop = threading.Event()
        self.registry = CollectorRegistry()
        loop = build_complaints(self.settings, metrics=Metrics(self.registry), stop=stop)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        return stop, thread

    def orders(self) -> dict[str, ComplaintLedgerEntry]:
        return read_orders(self.kafka, self.settings.topics)

    def order(self, order_id: str) -> ComplaintLedgerEntry | None:
        return self.orders().get(order_id)

    def answer_sent(self, order_id: str) -> bool:
        entry = self.order(order_id)
        return entry is not None and entry["answer_sent_for"] is not None

    def state(self, order_id: str) -> str | None:
        entry = self.order(order_id)
        return None if entry is None else state_of(entry)

    def escalations(self) -> list[Escalation]:
        records = read_topic(self.kafka.bootstrap, self.topic("complaints_escalations"))
        return [cast(Escalation, CODEC.decode_as("Escalation", r.value)) for r in records]

    def dead_letters(self) -> list[dict[str, str]]:
        return [error_context(r.headers) for r in read_topic(self.kafka.bootstrap, self.dlq)]


def _now() -> datetime:
    """Now, to the millisecond Avro keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stopped(run: tuple[threading.Event, threading.Thread]) -> None:
    stop, thread = run
    stop.set()
    thread.join(timeout=30)


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    fake = FakePlatform()
    yield fake
    fake.close()


@pytest.fixture
def loop(kafka_bootstrap: str, unique_prefix: str, platform: FakePlatform) -> Loop:
    return Loop(kafka_bootstrap, unique_prefix, platform)


def complaint(n: int, *, dispatched: datetime, answer_due: datetime) -> UtilityTask:
    task: UtilityTask = {
        **make_task("liaocheng-water", n),
        "kind": "COMPLAINT",
        "occurred_at": dispatched,
        "created_at": dispatched,
        "work_order_id": f"GD-{n}",
        "answer_due": answer_due,
        "complaint": "水压低",
        "region_code": "371502",
    }
    return task


def status(task: UtilityTask, stage: TaskStage, at: datetime, detail: str | None = None) -> TaskStatus:
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


def loop_of(task: UtilityTask, start: datetime, answer: str = "已更换减压阀，水压恢复") -> list[TaskStatus]:
    """RECEIVED, VERIFIED, HANDLED, ANSWERED, ten minutes apart from ``start``."""
    stages: list[TaskStage] = ["RECEIVED", "VERIFIED", "HANDLED", "ANSWERED"]
    return [
        status(task, stage, start + timedelta(minutes=10 * i), answer if stage == "ANSWERED" else None)
        for i, stage in enumerate(stages)
    ]


def test_an_order_runs_its_loop_to_a_satisfied_close_and_the_answer_is_retried(
    loop: Loop, platform: FakePlatform
) -> None:
    """Stages in, the answer POSTed (a 503 first, then taken), a satisfied visit closes it; no 督办."""
    platform.script = [503]
    now = _now()
    task = complaint(1, dispatched=now - timedelta(hours=1), answer_due=now + timedelta(days=7))
    loop.statuses(*loop_of(task, now - timedelta(minutes=50)))
    run = loop.start()
    try:
        wait_until(lambda: loop.answer_sent("GD-1"), timeout_s=60, what="the answer sent")
        loop.visit("GD-1", "v1", "SATISFIED", now)
        wait_until(lambda: loop.state("GD-1") == "closed", timeout_s=30, what="the satisfied close")
    finally:
        _stopped(run)
    assert [path for path, _, _ in platform.requests] == ["/api/v1/work-orders/GD-1/answer"] * 2
    _, headers, body = platform.requests[-1]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Idempotency-Key"] == platform.requests[0][1]["Idempotency-Key"]
    assert (body["order_id"], body["utility_id"], body["result"]) == (
        "GD-1",
        "liaocheng-water",
        "已更换减压阀，水压恢复",
    )
    entry = loop.order("GD-1")
    assert entry is not None
    assert (entry["closed_how"], entry["on_clearing_ledger"], entry["escalations"]) == ("SATISFIED_VISIT", False, [])
    assert loop.escalations() == []
    assert (
        loop.registry.get_sample_value(
            "ubridge_complaint_answers_total", {"utility": "liaocheng-water", "outcome": "sent"}
        )
        == 1.0
    )


def test_unsatisfied_goes_on_the_clearing_ledger_and_a_satisfied_revisit_strikes_it_off(
    loop: Loop, platform: FakePlatform
) -> None:
    """不满意 → 清零 with its deadline; the re-answer is sent; 基本满意 on the revisit → 销号; a department close."""
    now = _now()
    first = complaint(1, dispatched=now - timedelta(hours=3), answer_due=now + timedelta(days=7))
    second = complaint(2, dispatched=now - timedelta(hours=3), answer_due=now + timedelta(days=7))
    loop.statuses(*loop_of(first, now - timedelta(hours=2)), *loop_of(second, now - timedelta(hours=2)))
    loop.visit("GD-1", "v1", "UNSATISFIED", now - timedelta(hours=1))
    loop.visit("GD-2", "v1", "UNSATISFIED", now - timedelta(hours=1))
    run = loop.start()
    try:
        wait_until(
            lambda: all(state_of(e) == "clearing" for e in loop.orders().values()) and len(loop.orders()) == 2,
            timeout_s=60,
            what="both orders on the 清零 ledger",
        )
        clearing = loop.order("GD-1")
        loop.statuses(status(first, "ANSWERED", now - timedelta(minutes=30), "复查后已加装增压泵"))
        loop.visit("GD-1", "v2", "BASICALLY_SATISFIED", now - timedelta(minutes=10))
        close_order(
            loop.kafka,
            loop.settings.topics,
            order_id="GD-2",
            reason="用户诉求属物业管网，已转物业",
            closed_by="聊城市城管局",
        )
        wait_until(
            lambda: {state_of(e) for e in loop.orders().values()} == {"cleared"}, timeout_s=30, what="both struck off"
        )
    finally:
        _stopped(run)
    assert clearing is not None
    assert (clearing["clearing_reason"], clearing["clearing_since"]) == ("UNSATISFIED", now - timedelta(hours=1))
    ten_working_days = after_working_days(load_calendar(CONFIG / "calendar.yaml"), now - timedelta(hours=1), 10)
    assert clearing["clearing_due"] == ten_working_days
    one, two = loop.order("GD-1"), loop.order("GD-2")
    assert one is not None and two is not None
    assert (one["closed_how"], [v["result"] for v in one["visits"]]) == (
        "SATISFIED_VISIT",
        ["UNSATISFIED", "BASICALLY_SATISFIED"],
    )
    assert (two["closed_how"], two["close_reason"], two["closed_by"]) == (
        "DEPARTMENT_CLOSE",
        "用户诉求属物业管网，已转物业",
        "聊城市城管局",
    )
    answers = [body["result"] for path, _, body in platform.requests if path.endswith("GD-1/answer")]
    assert answers == ["已更换减压阀，水压恢复", "复查后已加装增压泵"]


def test_an_overdue_order_raises_each_escalation_once_across_ticks_and_restarts(loop: Loop) -> None:
    """Verified in time, never answered: one ANSWER_OVERDUE, then 清零 whose deadline passed: one CLEARING_OVERDUE."""
    dispatched = datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
    task = complaint(1, dispatched=dispatched, answer_due=datetime(2026, 11, 6, 17, tzinfo=SHANGHAI))
    loop.statuses(status(task, "RECEIVED", dispatched), status(task, "VERIFIED", dispatched + timedelta(hours=1)))
    run = loop.start()
    try:
        wait_until(lambda: len(loop.escalations()) >= 2, timeout_s=60, what="the escalations")
        wait_until(
            lambda: loop.registry.get_sample_value("ubridge_records_in_total", {"stage": "complaints"}) == 2,
            timeout_s=30,
            what="both statuses",
        )
    finally:
        _stopped(run)
    run = loop.start()  # restored from the ledger topic: nothing is raised again
    try:
        wait_until(
            lambda: loop.registry.get_sample_value("ubridge_stage_up", {"stage": "complaints"}) == 1.0,
            timeout_s=30,
            what="the restarted stage",
        )
        threading.Event().wait(3)  # a few ticks
    finally:
        _stopped(run)
    escalations = loop.escalations()
    assert sorted(e["reason"] for e in escalations) == ["ANSWER_OVERDUE", "CLEARING_OVERDUE"]
    assert {(e["order_id"], e["utility_id"], e["region_code"]) for e in escalations} == {
        ("GD-1", "liaocheng-water", "371502")
    }
    entry = loop.order("GD-1")
    assert entry is not None
    assert (state_of(entry), entry["clearing_reason"], len(entry["escalations"])) == ("clearing", "ANSWER_OVERDUE", 2)


def test_bad_records_go_to_the_dead_letter_topic_while_the_others_go_on(loop: Loop, platform: FakePlatform) -> None:
    """Garbage, an answer the platform refuses, stages out of order: DLQ with their reasons; the others go on."""
    now = _now()
    refused = complaint(1, dispatched=now - timedelta(hours=1), answer_due=now + timedelta(days=7))
    good = complaint(2, dispatched=now - timedelta(hours=1), answer_due=now + timedelta(days=7))
    platform.refused = {"GD-1"}
    loop.statuses(*loop_of(refused, now - timedelta(minutes=50)))
    loop.statuses(
        status(good, "RECEIVED", now - timedelta(minutes=50)), status(good, "HANDLED", now - timedelta(minutes=20))
    )
    loop.statuses(status(good, "VERIFIED", now - timedelta(minutes=10)))  # after HANDLED: nonsense
    loop.produce("hotline_return_visits", ("GD-9", b"not avro"))
    loop.statuses(status(good, "ANSWERED", now - timedelta(minutes=5), "已处理"))
    loop.visit("GD-2", "v1", "SATISFIED", now)
    run = loop.start()
    try:
        wait_until(lambda: loop.state("GD-2") == "closed", timeout_s=60, what="the good order")
        wait_until(lambda: len(loop.dead_letters()) == 3, timeout_s=30, what="three dead letters")
    finally:
        _stopped(run)
    reasons = sorted(letter["message"] for letter in loop.dead_letters())
    assert any("HTTP 400" in reason for reason in reasons)
    assert any("Avro" in reason or "decode" in reason.lower() for reason in reasons)
    assert any("HANDLED at" in reason and "precedes VERIFIED" in reason for reason in reasons)
    assert len(reasons) == 3
    refused_entry = loop.order("GD-1")
    assert refused_entry is not None
    assert (refused_entry["answered_at"] is not None, refused_entry["answer_sent_for"]) == (True, None)


def _four_gas_orders(loop: Loop, now: datetime) -> None:
    """November: one satisfied, one unsatisfied then basically satisfied (cleared), one open, one never answered."""
    base = datetime(2026, 11, 20, 9, tzinfo=SHANGHAI)
    orders = [complaint(n, dispatched=base, answer_due=now + timedelta(days=7)) for n in (1, 2, 3)]
    late = complaint(4, dispatched=datetime(2026, 11, 2, 9, tzinfo=SHANGHAI), answer_due=base - timedelta(days=10))
    for task in (*orders, late):
        task["utility_id"], task["region_code"] = "yantai-gas", "370602"
    loop.statuses(*loop_of(orders[0], base + timedelta(hours=1)), *loop_of(orders[1], base + timedelta(hours=1)))
    loop.statuses(status(orders[2], "RECEIVED", base), status(late, "RECEIVED", late["occurred_at"]))
    loop.visit("GD-1", "v1", "SATISFIED", base + timedelta(hours=5))
    loop.visit("GD-2", "v1", "UNSATISFIED", base + timedelta(hours=5))
    loop.visit("GD-2", "v2", "BASICALLY_SATISFIED", base + timedelta(hours=6))


def test_the_supervision_view_reads_its_complaint_figures_from_the_ledger_topic(loop: Loop) -> None:
    """Orders through the stage; the view follows the ledger topic: open, overdue, cleared, satisfaction per utility."""
    now = _now()
    _four_gas_orders(loop, now)
    run = loop.start()
    try:
        wait_until(lambda: loop.state("GD-2") == "cleared" and len(loop.orders()) == 4, timeout_s=60, what="the orders")
    finally:
        _stopped(run)
    follower = ComplaintFollower(loop.kafka, loop.topic("complaints_ledger"))
    stop = threading.Event()
    reader = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    reader.start()
    try:
        assert follower.wait_caught_up(30)
        wait_until(lambda: len(follower.entries()) == 4, timeout_s=10, what="the follower")
    finally:
        stop.set()
        reader.join(timeout=10)
    figures = follower_figures(follower, SATISFACTION)(now, None)
    gas = figures[("utility", "yantai-gas")]
    assert (gas.open, gas.overdue, gas.cleared) == (2, 1, 1)
    assert (gas.satisfaction, gas.target, gas.weighted_score) == (2 / 3, 0.995, 60.0)
    assert figures[("district", "370602")] == gas
    entries = {e["task_id"]: e for e in november()}
    source = follower_figures(follower, SATISFACTION)
    view = LedgerView(lambda: list(entries.values()), entries.get, BOOK, CALENDAR, now=lambda: now, complaints=source)
    server = WebServer(supervision_app(view, VIEW_TOKEN), host="127.0.0.1", port=0, name="supervision-test")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {VIEW_TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers=headers) as http:
            page = http.get("/").text
            download = http.get("/report/monthly", params={"month": "2026-11"}).content
    finally:
        server.stop()
    assert "12345 投诉：办理中 2，逾期 1，已清零 1，满意度 66.7%（目标 99.5%），满意度分值 60.0" in page
    rows = [[c.value for c in row] for row in load_workbook(io.BytesIO(download))["单位"].iter_rows()]
    gas_row = next(row for row in rows if row[0] == "yantai-gas")
    assert dict(zip(rows[1][-5:], gas_row[-5:], strict=True)) == {
        "投诉办理中": 2,
        "投诉逾期": 1,
        "已清零": 1,
        "满意度": 2 / 3,
        "满意度分值": 60.0,
    }


def test_operators_list_show_and_close_orders_from_the_command_line(
    loop: Loop, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --clearing` lists the unsatisfied order, `show` prints its loop, `close` refuses an unknown order."""
    now = _now()
    task = complaint(1, dispatched=now - timedelta(hours=3), answer_due=now + timedelta(days=7))
    loop.statuses(*loop_of(task, now - timedelta(hours=2)))
    loop.visit("GD-1", "v1", "UNSATISFIED", now - timedelta(hours=1))
    run = loop.start()
    try:
        wait_until(lambda: loop.state("GD-1") == "clearing", timeout_s=60, what="the order on the 清零 ledger")
    finally:
        _stopped(run)
    where = {"config": None, "bootstrap": loop.kafka.bootstrap, "topic_prefix": loop.kafka.topic_prefix}
    assert run_list(argparse.Namespace(clearing=True, **where)) == 0
    listed = capsys.readouterr().out
    assert "GD-1" in listed and "clearing" in listed
    assert run_show(argparse.Namespace(order_id="GD-1", **where)) == 0
    shown = capsys.readouterr().out
    assert "情况核实 VERIFIED" in shown and "UNSATISFIED" in shown and "清零台账: UNSATISFIED" in shown
    unknown = argparse.Namespace(order_id="GD-404", reason="重复", by="dept", **where)
    assert run_close(unknown) == 2
    assert "GD-404 is not in the complaint ledger" in capsys.readouterr().err
