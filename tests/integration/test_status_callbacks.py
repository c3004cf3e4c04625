import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.runtime.http_intake import HttpIntake
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from connectors.status import StatusCallbackSettings, build_callback_intake
from connectors.status.task_view import TaskView
from routing.calendar import load_calendar
from routing.errors import DataError
from routing.ledger import apply_status, open_entry
from routing.records import TaskLedgerEntry, TaskStatus
from schemas import Codec
from tests.support import ROOT, read_topic, received_status

pytestmark = pytest.mark.integration

TOKENS = {"water-callback": "yantai-water", "gas-callback": "yantai-gas"}
CREATED = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
CODEC = Codec.default()


@dataclass
class Callbacks:
    """The callback intake on the test broker, with the topic the sinks write RECEIVED to."""

    kafka: KafkaSettings
    topic: str
    intake: HttpIntake
    metrics: Metrics

    def deliver(self, utility: str, task_id: str, *, created: datetime = CREATED) -> None:
        """Write the sink's RECEIVED of a task, as a sink does once the utility took it."""
        received = received_status(utility, task_id, created)
        producer = make_producer(self.kafka)
        try:
            producer.send(self.topic, key=task_id.encode(), value=CODEC.encode("TaskStatus", dict(received))).get(10)
        finally:
            producer.close()

    def post(self, token: str, task_id: str, body: dict[str, Any]) -> httpx.Response:
        url = f"http://127.0.0.1:{self.intake.port}/v1/tasks/{task_id}/status"
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def statuses(self) -> list[tuple[str, TaskStatus]]:
        records = read_topic(self.kafka.bootstrap, self.topic)
        return [(r.key.decode(), cast(TaskStatus, CODEC.decode_as("TaskStatus", r.value))) for r in records]


@contextmanager
def callbacks(kafka_bootstrap: str, unique_prefix: str, **settings: Any) -> Iterator[Callbacks]:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    topic = f"{unique_prefix}ubridge.task-status.v1"
    ensure_topics(kafka, [TopicSpec(topic, 3)])
    stop, metrics = threading.Event(), Metrics(CollectorRegistry())
    intake = build_callback_intake(
        StatusCallbackSettings(port=0, **settings), tokens=TOKENS, kafka=kafka, topic=topic, metrics=metrics, stop=stop
    )
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    try:
        yield Callbacks(kafka, topic, intake, metrics)
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def test_callbacks_land_on_the_task_status_topic(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Accepted callbacks are on the topic, keyed by task id, before their 202; refused ones never are."""
    reports = [
        ("water-callback", "w-1", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}),
        ("water-callback", "w-1", {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00",
                                   "pipe_length_m": 42.5}),
        ("gas-callback", "g-7", {"stage": "REJECTED", "occurred_at": "2026-11-04T09:00:00+08:00",
                                 "reason": "市政管网未覆盖", "utility_id": "yantai-gas"}),
        ("water-callback", "w-2", {"stage": "CLOSED", "occurred_at": "2026-11-05T16:00:00+08:00", "detail": "办结"}),
    ]  # fmt: skip
    refused = [
        ("wrong-token", "w-3", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}),
        ("water-callback", "g-8", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00",
                                   "utility_id": "yantai-gas"}),
        ("water-callback", "w-4", {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00"}),
    ]  # fmt: skip
    with callbacks(kafka_bootstrap, unique_prefix) as cb:
        for utility, task_id in [("yantai-water", "w-1"), ("yantai-water", "w-2"), ("yantai-gas", "g-7")]:
            cb.deliver(utility, task_id)
        answers = [cb.post(token, task_id, body) for token, task_id, body in reports + refused]
        received = [(key, s) for key, s in cb.statuses() if s["reporter"] == "callback"]
        records = [r for r in read_topic(kafka_bootstrap, cb.topic) if r.key == b"w-1"]
        out = cb.metrics.registry.get_sample_value("ubridge_records_out_total", {"stage": "status-callbacks"})
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 401, 403, 422]
    assert answers[2].json() == {"accepted": True, "task_id": "g-7"}
    summary = [(key, s["utility_id"], s["stage"], s["occurred_at"], s["reporter"]) for key, s in received]
    assert sorted(summary) == [
        ("g-7", "yantai-gas", "REJECTED", datetime(2026, 11, 4, 1, 0, tzinfo=UTC), "callback"),
        ("w-1", "yantai-water", "CONTACTED", datetime(2026, 11, 2, 2, 15, tzinfo=UTC), "callback"),
        ("w-1", "yantai-water", "EXTERNAL_WORKS", datetime(2026, 11, 3, 6, 5, tzinfo=UTC), "callback"),
        ("w-2", "yantai-water", "CLOSED", datetime(2026, 11, 5, 8, 0, tzinfo=UTC), "callback"),
    ]
    by_stage = {s["stage"]: s for _, s in received}
    assert (by_stage["EXTERNAL_WORKS"]["pipe_length_m"], by_stage["REJECTED"]["reason"]) == (42.5, "市政管网未覆盖")
    assert by_stage["CLOSED"]["detail"] == "办结"
    assert len({r.partition for r in records}) == 1  # one task's records stay in order on one partition
    stages = [CODEC.decode_as("TaskStatus", r.value)["stage"] for r in sorted(records, key=lambda r: r.offset)]
    assert stages == ["RECEIVED", "CONTACTED", "EXTERNAL_WORKS"]
    assert out == 4


def test_each_report_gets_a_true_answer_and_every_accepted_one_fits_the_ledger(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """Unknown task 404, another utility's 403, one the ledger would refuse 409 with its reason, else 202."""
    contacted = {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}
    with callbacks(kafka_bootstrap, unique_prefix, unknown_task_wait_s=0.3) as cb:
        cb.deliver("yantai-water", "w-1")
        cb.deliver("yantai-gas", "g-1")
        answers = {
            "unknown": cb.post("water-callback", "w-404", contacted),
            "foreign": cb.post("water-callback", "g-1", contacted),
            "before creation": cb.post("water-callback", "w-1", {**contacted, "occurred_at": "2026-10-31T08:00:00Z"}),
            "closed": cb.post("water-callback", "w-1", {"stage": "CLOSED", "occurred_at": "2026-11-03T09:00:00Z"}),
            "after closing": cb.post("water-callback", "w-1", {**contacted, "occurred_at": "2026-11-04T09:00:00Z"}),
            "rejected too": cb.post(
                "water-callback", "w-1", {"stage": "REJECTED", "occurred_at": "2026-11-03T10:00:00Z", "reason": "x"}
            ),
            "contacted": cb.post("water-callback", "w-1", contacted),
            "malformed": cb.post("water-callback", "w-1", {"stage": "CONTACTED"}),
        }
        statuses = cb.statuses()
    codes = {name: answer.status_code for name, answer in answers.items()}
    assert codes == {
        "unknown": 404, "foreign": 403, "before creation": 409, "closed": 202, "after closing": 409,
        "rejected too": 409, "contacted": 202, "malformed": 422,
    }  # fmt: skip
    reasons = {name: answers[name].json() for name in ("unknown", "foreign", "before creation", "after closing")}
    assert reasons["unknown"]["field"] == "task_id" and "w-404" in reasons["unknown"]["error"]
    assert "another utility" in reasons["foreign"]["error"] and "yantai-gas" not in reasons["foreign"]["error"]
    assert "before the task was created" in reasons["before creation"]["error"]
    assert "after the task was CLOSED" in reasons["after closing"]["error"]
    accepted = [s for _, s in statuses if s["reporter"] == "callback"]
    assert sorted(s["stage"] for s in accepted) == ["CLOSED", "CONTACTED"]
    _fold_like_the_ledger(statuses)  # nothing accepted is refused (dead-lettered) by the ledger


def _fold_like_the_ledger(statuses: list[tuple[str, TaskStatus]]) -> None:
    calendar = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
    entries: dict[str, TaskLedgerEntry] = {}
    for task_id, status in statuses:
        task = status["task"]
        try:
            if task_id in entries:
                entries[task_id] = apply_status(entries[task_id], status, calendar)
            elif task is not None:
                entries[task_id] = open_entry(task, received_at=status["occurred_at"])
        except DataError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"the ledger refuses an accepted report of {task_id}: {exc}")


def test_a_report_racing_the_sinks_received_waits_for_it(kafka_bootstrap: str, unique_prefix: str) -> None:
    """A report sent before the sink's RECEIVED reached the topic is answered 202 once it does, not 404."""
    contacted = {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}
    with callbacks(kafka_bootstrap, unique_prefix, unknown_task_wait_s=5.0) as cb:
        with ThreadPoolExecutor(1) as pool:
            began = time.monotonic()
            early = pool.submit(cb.post, "water-callback", "w-race", contacted)
            time.sleep(1.0)  # the utility answered the delivery and reported at once; the sink writes RECEIVED now
            cb.deliver("yantai-water", "w-race")
            answer = early.result()
            elapsed = time.monotonic() - began
        began = time.monotonic()
        never = cb.post("water-callback", "w-never", contacted)
        waited = time.monotonic() - began
    assert answer.status_code == 202
    assert 1.0 <= elapsed < 4.0  # answered once the RECEIVED was read, well before the 5 s wait ended
    assert never.status_code == 404
    assert waited >= 5.0  # an unknown task is refused only after the wait for its RECEIVED


def test_racing_reports_cannot_both_pass_when_only_one_fits(kafka_bootstrap: str, unique_prefix: str) -> None:
    """CLOSED and REJECTED sent at once for one task: one 202, the other 409; the ledger can apply what is taken."""
    bodies = [
        {"stage": "CLOSED", "occurred_at": "2026-11-03T09:00:00Z"},
        {"stage": "REJECTED", "occurred_at": "2026-11-03T09:00:00Z", "reason": "no capacity"},
    ]
    with callbacks(kafka_bootstrap, unique_prefix) as cb:
        cb.deliver("yantai-water", "w-1")
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda body: cb.post("water-callback", "w-1", body), bodies))
        statuses = cb.statuses()
    assert sorted(a.status_code for a in answers) == [202, 409]
    assert len([s for _, s in statuses if s["reporter"] == "callback"]) == 1
    _fold_like_the_ledger(statuses)


def test_reports_for_unknown_ids_never_reach_the_topic(kafka_bootstrap: str, unique_prefix: str) -> None:
    """1,200 reports for task ids that do not exist are all 404 and none is stored: no hold to fill."""
    contacted = {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}
    with callbacks(kafka_bootstrap, unique_prefix, unknown_task_wait_s=0.05) as cb:
        cb.deliver("yantai-water", "w-1")

        def flood(batch: int) -> list[int]:
            url = f"http://127.0.0.1:{cb.intake.port}"
            with httpx.Client(base_url=url, headers={"Authorization": "Bearer water-callback"}, timeout=30) as c:
                return [c.post(f"/v1/tasks/ghost-{batch}-{n}/status", json=contacted).status_code for n in range(75)]

        with ThreadPoolExecutor(16) as pool:
            codes = [code for batch in pool.map(flood, range(16)) for code in batch]
        real = cb.post("water-callback", "w-1", contacted)
        statuses = cb.statuses()
    assert (len(codes), set(codes)) == (1200, {404})
    assert real.status_code == 202
    assert [key for key, s in statuses if s["reporter"] == "callback"] == ["w-1"]


def test_the_view_survives_a_restart_in_its_file(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    """With task_view_path, a restarted intake knows the tasks at once from its file and resumes the topic."""
    contacted = {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}
    path = tmp_path / "tasks.sqlite"
    with callbacks(kafka_bootstrap, unique_prefix, task_view_path=path) as cb:
        cb.deliver("yantai-water", "w-1")
        assert cb.post("water-callback", "w-1", contacted).status_code == 202
    with callbacks(kafka_bootstrap, unique_prefix, task_view_path=path) as cb:
        cb.deliver("yantai-water", "w-2")
        later = cb.post("water-callback", "w-1", {**contacted, "occurred_at": "2026-11-06T09:00:00Z"})
        second = cb.post("water-callback", "w-2", contacted)
        closed = cb.post("water-callback", "w-1", {"stage": "CLOSED", "occurred_at": "2026-11-01T20:00:00Z"})
    assert (later.status_code, second.status_code) == (202, 202)
    assert closed.status_code == 409  # CLOSED before the CONTACTED stored before the restart


def test_an_accepted_report_stamped_to_the_microsecond_stops_pending_once_read_back(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """A report the view accepted is pending only until its record is read back, though Avro kept milliseconds."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    topic = f"{unique_prefix}ubridge.task-status.v1"
    ensure_topics(kafka, [TopicSpec(topic, 3)])
    view, stop = TaskView(kafka, topic, wait_s=1.0), threading.Event()
    thread = threading.Thread(target=view.run, args=(stop,), daemon=True)
    thread.start()
    producer = make_producer(kafka)
    try:
        received = received_status("yantai-water", "w-micro", CREATED)
        producer.send(topic, key=b"w-micro", value=CODEC.encode("TaskStatus", dict(received))).get(10)
        assert view.wait_caught_up(30)
        occurred, reported = datetime(2026, 11, 2, 2, 15, 0, 123456, UTC), datetime(2026, 11, 2, 2, 16, 0, 654321, UTC)
        contacted: TaskStatus = {
            **received, "stage": "CONTACTED", "occurred_at": occurred, "reported_at": reported,
            "reporter": "callback", "task": None,
        }  # fmt: skip
        assert view.decide(contacted, ticket=1) is None
        assert view.pending() == 1
        producer.send(topic, key=b"w-micro", value=CODEC.encode("TaskStatus", dict(contacted))).get(10)
        deadline = time.monotonic() + 20
        while view.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        known = view.known("w-micro")
    finally:
        producer.close()
        stop.set()
        thread.join(timeout=15)
    assert view.pending() == 0
    assert known is not None and "CONTACTED" in known.times
