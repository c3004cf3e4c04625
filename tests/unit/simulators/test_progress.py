"""Task progression in the utility simulator: office-hour arithmetic, plans, the feed, callbacks, stopping."""

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulators.utility import UtilitySimulator
from simulators.utility.progress import (
    CALLBACK_ATTEMPTS,
    OFFICE_TZ,
    ProgressConfig,
    Step,
    add_office_hours,
    plan_steps,
)
from tests.support import wait_until

UTILITY = "yantai-water"
TOKEN = "tasks-token"
ORDER = ["RECEIVED", "CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED"]
TERMINAL = ("CLOSED", "REJECTED")


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026 at UTC+08:00 (2 November is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=OFFICE_TZ)


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (cst(2, 9), 1, cst(2, 10)),
        (cst(2, 11, 30), 1, cst(2, 14)),
        (cst(2, 12, 30), 0.5, cst(2, 14)),
        (cst(2, 7), 1, cst(2, 9, 30)),
        (cst(2, 17), 1, cst(3, 9)),
        (cst(2, 20), 2.5, cst(3, 11)),
        (cst(6, 17), 1, cst(9, 9)),
        (cst(7, 10), 1, cst(9, 9, 30)),
        (cst(2, 8, 30), 7.5, cst(2, 17, 30)),
        (cst(2, 8, 30), 15, cst(3, 17, 30)),
        (cst(2, 8, 30), 3.5, cst(2, 12)),
        (cst(6, 8, 30), 37.5, cst(12, 17, 30)),
        (datetime(2026, 11, 2, 1, 7, tzinfo=UTC), 2, cst(2, 11, 7)),
        (cst(7, 10), 0, cst(7, 10)),
    ],
    ids=[
        "within-morning", "over-lunch", "from-lunch", "before-opening", "over-night", "from-evening",
        "over-weekend", "from-saturday", "one-day", "two-days", "to-noon", "five-days-over-a-weekend", "from-utc",
        "zero-stays",
    ],
)  # fmt: skip
def test_office_hours_are_counted_only_on_weekdays_in_office(start: datetime, hours: float, expected: datetime) -> None:
    """Working hours pass 08:30-12:00 and 13:30-17:30 Monday to Friday at UTC+08:00, nowhere else."""
    result = add_office_hours(start, hours)
    assert result == expected
    assert result.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(("start", "hours"), [(datetime(2026, 11, 2, 9), 1.0), (cst(2, 9), -1.0)])  # noqa: DTZ001
def test_office_hours_refuse_naive_times_and_negative_hours(start: datetime, hours: float) -> None:
    """A naive start or negative hours are a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        add_office_hours(start, hours)


_STARTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(  # noqa: DTZ001
    lambda moment: moment.replace(tzinfo=timezone(timedelta(hours=8)))
)
_HOURS = st.floats(min_value=0.001, max_value=200, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(start=_STARTS, first=_HOURS, second=_HOURS)
@example(start=datetime(2026, 1, 1, tzinfo=OFFICE_TZ), first=1.5, second=2.00001)  # ends 36 ms after 13:30
def test_office_hours_add_up_and_land_in_office(start: datetime, first: float, second: float) -> None:
    """Adding a then b equals adding a + b, and a positive sum always ends inside an office window."""
    stepwise = add_office_hours(add_office_hours(start, first), second)
    at_once = add_office_hours(start, first + second)
    assert abs(stepwise - at_once) <= timedelta(milliseconds=1)
    local = at_once.astimezone(OFFICE_TZ)
    minutes = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    assert local.weekday() < 5
    assert 8 * 60 + 30 < minutes <= 12 * 60 or 13 * 60 + 30 < minutes <= 17 * 60 + 30
    assert at_once > start


def _is_valid_plan(steps: list[Step]) -> bool:
    stages = [s.stage for s in steps]
    if stages[-1] == "REJECTED":
        return stages[:-1] in (ORDER[:2], ORDER[:3]) and steps[-1].reason is not None
    return stages in ([s for s in ORDER if s != "EXTERNAL_WORKS"], ORDER)


def test_plans_walk_the_stages_in_order_with_their_data() -> None:
    """Every plan starts RECEIVED, follows the stage order and ends CLOSED or REJECTED, with in-range data."""
    rng = random.Random(7)
    config = ProgressConfig(slow_rate=0.3, external_works_rate=0.5, reject_rate=0.3)
    plans = [plan_steps(rng, config) for _ in range(500)]
    assert all(_is_valid_plan(plan) for plan in plans)
    steps = [step for plan in plans for step in plan]
    lengths = [s.pipe_length_m for s in steps if s.stage == "EXTERNAL_WORKS"]
    assert all(length is not None and 5 <= length <= 180 for length in lengths)
    assert all(s.pipe_length_m is None for s in steps if s.stage != "EXTERNAL_WORKS")
    assert all(s.reason is None for s in steps if s.stage != "REJECTED")
    assert all(s.hours == 0 for s in steps if s.stage == "RECEIVED")
    contact = [s.hours for s in steps if s.stage == "CONTACTED"]
    assert all(1 <= h <= 2.5 or 4 <= h <= 6 for h in contact)
    assert all(2 <= s.hours <= 6 for s in steps if s.stage == "SURVEYED")
    assert all(4 <= s.hours <= 8 for s in steps if s.stage == "PLAN_CONFIRMED")
    assert all(2 <= s.hours <= 48 for s in steps if s.stage == "CONNECTED")


def test_a_complaint_walks_the_complaint_loop_with_its_answer() -> None:
    """A COMPLAINT task is verified, handled and answered (the answer in the detail), never connected."""
    rng = random.Random(7)
    config = ProgressConfig(slow_rate=0.5)
    plans = [plan_steps(rng, config, kind="COMPLAINT") for _ in range(200)]
    assert {tuple(s.stage for s in plan) for plan in plans} == {("RECEIVED", "VERIFIED", "HANDLED", "ANSWERED")}
    answer_hours = [plan[-1].hours for plan in plans]
    assert any(h >= 40 for h in answer_hours) and any(h <= 2 for h in answer_hours)


def test_rates_give_those_shares_with_a_fixed_seed() -> None:
    """With seed 42 over 4000 tasks, slow contact, external works and rejection occur at about their rates."""
    rng = random.Random(42)
    config = ProgressConfig(slow_rate=0.2, external_works_rate=0.3, reject_rate=0.1)
    plans = [[s.stage for s in plan_steps(rng, config)] for _ in range(4000)]
    rejected = [p for p in plans if p[-1] == "REJECTED"]
    completed = [p for p in plans if p[-1] == "CLOSED"]
    assert len(rejected) + len(completed) == 4000
    assert 0.08 < len(rejected) / 4000 < 0.12
    assert 0.27 < sum("EXTERNAL_WORKS" in p for p in completed) / len(completed) < 0.33
    rng = random.Random(42)
    slow = sum(plan_steps(rng, config)[1].hours >= 4 for _ in range(4000))
    assert 0.17 < slow / 4000 < 0.23


@pytest.mark.parametrize(("rate", "expected"), [(0.0, False), (1.0, True)])
def test_extreme_rates_are_all_or_nothing(rate: float, expected: bool) -> None:
    """Rate 0 never draws the outcome and rate 1 always does."""
    rng = random.Random(1)
    config = ProgressConfig(external_works_rate=rate, reject_rate=0.0, slow_rate=rate)
    plans = [plan_steps(rng, config) for _ in range(200)]
    assert {any(s.stage == "EXTERNAL_WORKS" for s in plan) for plan in plans} == {expected}
    assert {plan[1].hours >= 4 for plan in plans} == {expected}


@pytest.mark.parametrize(
    "changes",
    [{"slow_rate": 1.5}, {"reject_rate": -0.1}, {"hours_per_second": 0}, {"callback_url": "ftp://x"}],
)
def test_bad_plans_are_refused(changes: dict[str, Any]) -> None:
    """Rates outside [0, 1], a non-positive speed and non-HTTP callback URLs are refused."""
    with pytest.raises(ValueError, match="must"):
        ProgressConfig(**changes)


@pytest.fixture
def simulator() -> Iterator[UtilitySimulator]:
    """A running water-company simulator."""
    simulator = UtilitySimulator(UTILITY, token=TOKEN, seed=11)
    simulator.start()
    yield simulator
    simulator.stop()


def deliver(simulator: UtilitySimulator, count: int, *, created_at: str = "2026-11-06T08:00:00Z", **extra: Any) -> None:
    """POST ``count`` new tasks to the simulator."""
    with httpx.Client(base_url=simulator.start(), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(count):
            task_id = f"t-{len(simulator.tasks())}"
            body = {"task_id": task_id, "utility_id": simulator.utility_id, "created_at": created_at} | extra
            client.post("/v1/tasks", json=body, headers={"Idempotency-Key": task_id}).raise_for_status()


def wait_finished(simulator: UtilitySimulator, tasks: int) -> None:
    """Wait until ``tasks`` tasks reached CLOSED or REJECTED."""
    wait_until(
        lambda: sum(s.stage in TERMINAL for s in simulator.statuses()) == tasks,
        timeout_s=15,
        what=f"{tasks} tasks to finish",
    )


def test_tasks_progress_in_order_with_office_hour_times(simulator: UtilitySimulator) -> None:
    """Each task's statuses come in stage order, RECEIVED at created_at, later ones in office hours."""
    simulator.set_progress(hours_per_second=5000, external_works_rate=0.5, reject_rate=0.2, seed=3)
    deliver(simulator, 20, created_at="2026-11-06T10:00:00Z")  # Friday 18:00 at UTC+08:00
    wait_finished(simulator, 20)
    statuses = simulator.statuses()
    assert [s.seq for s in statuses] == list(range(1, len(statuses) + 1))
    for task_id in {s.task_id for s in statuses}:
        own = [s for s in statuses if s.task_id == task_id]
        plan = [Step(s.stage, 0.0, s.pipe_length_m, s.reason) for s in own]
        assert _is_valid_plan(plan), [s.stage for s in own]
        assert own[0].occurred_at == datetime(2026, 11, 6, 10, tzinfo=UTC)
        assert all(a.occurred_at < b.occurred_at for a, b in itertools.pairwise(own))
        assert own[1].occurred_at >= cst(9, 9, 30)  # first contact: Monday, at least an hour after opening
    assert simulator.stats().statuses_reported == len(statuses)


def test_time_is_compressed_by_hours_per_second(simulator: UtilitySimulator) -> None:
    """At 2 working hours per second, contact (at least 1 working hour) comes no sooner than 0.5 s."""
    simulator.set_progress(hours_per_second=2)
    started = time.monotonic()
    deliver(simulator, 1)
    wait_until(lambda: len(simulator.statuses()) == 1, timeout_s=2, what="RECEIVED")
    wait_until(lambda: len(simulator.statuses()) == 2, timeout_s=5, what="CONTACTED")
    assert time.monotonic() - started >= 0.5
    assert [s.stage for s in simulator.statuses()] == ["RECEIVED", "CONTACTED"]


def test_no_progress_without_a_plan_or_for_cancellations(simulator: UtilitySimulator) -> None:
    """Tasks stored before set_progress and CANCEL tasks never progress."""
    deliver(simulator, 1)
    simulator.set_progress(hours_per_second=5000)
    deliver(simulator, 1, action="CANCEL")
    deliver(simulator, 1)
    wait_finished(simulator, 1)
    assert {s.task_id for s in simulator.statuses()} == {"t-2"}


def test_feed_pages_with_bearer_auth(simulator: UtilitySimulator) -> None:
    """GET /v1/task-status pages through the statuses by cursor; bad tokens and cursors are refused."""
    simulator.set_progress(hours_per_second=5000, reject_rate=0.0, external_works_rate=1.0)
    deliver(simulator, 3)
    wait_finished(simulator, 3)
    url = f"{simulator.start()}/v1/task-status"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    entries, cursor, pages = [], 0, 0
    while True:
        page = httpx.get(url, params={"cursor": cursor, "limit": 5}, headers=auth).json()
        entries += page["statuses"]
        cursor, pages = page["next_cursor"], pages + 1
        if not page["has_more"]:
            break
    assert (len(entries), cursor, pages) == (21, 21, 5)
    assert entries == [s.to_json() for s in simulator.statuses()]
    works = next(e for e in entries if e["stage"] == "EXTERNAL_WORKS")
    assert set(works) == {"seq", "task_id", "stage", "occurred_at", "pipe_length_m", "detail"}
    assert datetime.fromisoformat(works["occurred_at"]).utcoffset() == timedelta(hours=8)
    assert httpx.get(url, params={"cursor": 21}, headers=auth).json() == {
        "statuses": [],
        "next_cursor": 21,
        "has_more": False,
    }
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, params={"cursor": "x"}, headers=auth).status_code == 400
    assert httpx.get(url, params={"limit": 0}, headers=auth).status_code == 400


class CallbackReceiver:
    """A tiny HTTP server recording status callbacks and answering from a script (then 202)."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.script = list(script or [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.requests.append((self.path, self.headers.get("Authorization", ""), body))
                    status = receiver.script.pop(0) if receiver.script else 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A callback receiver that answers 202."""
    running = CallbackReceiver()
    yield running
    running.close()


def test_statuses_are_called_back_with_the_token(simulator: UtilitySimulator, receiver: CallbackReceiver) -> None:
    """Each status is POSTed, in feed order, to {callback_url}/v1/tasks/{id}/status with the callback token."""
    simulator.set_progress(callback_url=receiver.url + "/", callback_token="cb-token", hours_per_second=5000)
    deliver(simulator, 5)
    wait_finished(simulator, 5)
    wait_until(lambda: simulator.stats().callbacks_delivered == len(simulator.statuses()), timeout_s=10, what="calls")
    expected = [
        (f"/v1/tasks/{s.task_id}/status", "Bearer cb-token", {"utility_id": UTILITY} | _body(s.to_json()))
        for s in simulator.statuses()
    ]
    assert receiver.requests == expected
    assert simulator.stats().callback_failures == 0


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("seq", "task_id")}


def test_failed_callbacks_are_retried_then_counted(simulator: UtilitySimulator) -> None:
    """503s are retried until accepted; a 422 is not retried and counts as a callback failure."""
    receiver = CallbackReceiver(script=[503, 503, 422])
    try:
        simulator.set_progress(callback_url=receiver.url, hours_per_second=5000, reject_rate=1.0)
        deliver(simulator, 1)
        wait_finished(simulator, 1)
        reported = len(simulator.statuses())
        wait_until(
            lambda: simulator.stats().callbacks_delivered + simulator.stats().callback_failures == reported,
            timeout_s=10,
            what="every callback settled",
        )
    finally:
        receiver.close()
    stats = simulator.stats()
    assert (stats.callbacks_delivered, stats.callback_failures) == (reported - 1, 1)
    assert len(receiver.requests) == reported + 2
    assert {auth for _, auth, _ in receiver.requests} == {""}
    assert CALLBACK_ATTEMPTS >= 3, "two 503s must be retried within the attempts"


def test_stop_ends_the_progression_promptly(receiver: CallbackReceiver) -> None:
    """stop() returns at once with tasks still pending, its threads end and nothing more is reported."""
    simulator = UtilitySimulator("stop-water", token=TOKEN)
    simulator.start()
    simulator.set_progress(callback_url=receiver.url, hours_per_second=1)
    deliver(simulator, 3)
    wait_until(lambda: len(simulator.statuses()) == 3, timeout_s=5, what="RECEIVED thrice")
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 1
    assert not [t for t in threading.enumerate() if t.name.startswith("stop-water-")]
    time.sleep(1.1)
    assert len(simulator.statuses()) == 3


def test_restarted_simulator_keeps_progressing(simulator: UtilitySimulator) -> None:
    """After stop() and start() a configured simulator progresses newly stored tasks again."""
    simulator.set_progress(hours_per_second=5000)
    simulator.stop()
    simulator.start()
    deliver(simulator, 1)
    wait_finished(simulator, 1)


def test_control_plane_sets_and_shows_progress(simulator: UtilitySimulator) -> None:
    """POST /_sim/progress takes the set_progress names (204, bad plans 400); GET shows plan and counters."""
    url = simulator.start()
    plan = {"hours_per_second": 5000, "reject_rate": 0, "external_works_rate": 0, "slow_rate": 0, "seed": 1}
    assert httpx.post(f"{url}/_sim/progress", json=plan).status_code == 204
    deliver(simulator, 1)
    wait_finished(simulator, 1)
    assert httpx.get(f"{url}/_sim/progress").json() == {
        "settings": {
            "callback_url": None,
            "hours_per_second": 5000.0,
            "slow_rate": 0.0,
            "external_works_rate": 0.0,
            "reject_rate": 0.0,
        },
        "statuses_reported": 6,
        "callbacks_delivered": 0,
        "callback_failures": 0,
    }
    assert set(httpx.get(f"{url}/_sim/stats").json()) == {
        "requests",
        "unique",
        "repeats",
        "faults_injected",
        "rejected",
        "revisions",
        "superseded",
        "key_conflicts",
    }
    assert httpx.post(f"{url}/_sim/progress", json={"reject_rate": 2}).status_code == 400
    assert httpx.post(f"{url}/_sim/progress", json={"speed": 2}).status_code == 400


def test_a_cancelled_task_stops_progressing(simulator: UtilitySimulator) -> None:
    """A CANCEL revision drops the statuses not reported yet: a cancelled task is not worked on."""
    simulator.set_progress(hours_per_second=2, reject_rate=0.0, slow_rate=0.0)  # contact 1–2.5 h: 0.5–1.25 s
    with httpx.Client(base_url=simulator.start(), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        body = {"task_id": "t-0", "utility_id": simulator.utility_id, "created_at": "2026-11-06T08:00:00Z"}
        client.post("/v1/tasks", json=body | {"revision": 1}, headers={"Idempotency-Key": "t-0:1"}).raise_for_status()
        wait_until(lambda: len(simulator.statuses()) == 1, timeout_s=2, what="RECEIVED")
        cancel = body | {"revision": 2, "action": "CANCEL"}
        assert (
            client.post("/v1/tasks", json=cancel, headers={"Idempotency-Key": "t-0:2"}).json()["status"] == "cancelled"
        )
    time.sleep(1.5)  # without the cancellation, CONTACTED would have been reported by now
    assert [s.stage for s in simulator.statuses()] == ["RECEIVED"]
