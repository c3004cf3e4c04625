import argparse
import threading
import time
from datetime import datetime, timedelta
from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from connectors.app import App
from connectors.ledger import build_ledger
from connectors.ledger.show import find_entry, register
from connectors.ledger.stage import TaskLedger
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import KafkaSettings
from routing.calendar import SHANGHAI
from routing.records import SlaEvent, TaskLedgerEntry, TaskStage, TaskStatus
from schemas import Codec
from tests.support import NOW, ROOT, make_task, read_topic, settings_for, wait_until

pytestmark = pytest.mark.integration

CODEC = Codec.default()
HOUR = timedelta(hours=1)
PARTITIONS = 3


class Ledger:
    """The ledger's topics on the test broker, and runs of the stage against them."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.kafka = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix)
        self.status, self.changelog = f"{prefix}ubridge.task-status.v1", f"{prefix}ubridge.ledger.changelog.v1"
        self.sla, self.dlq = f"{prefix}ubridge.sla.v1", f"{prefix}ubridge.dlq.ledger.v1"
        specs = [TopicSpec(self.status, PARTITIONS), TopicSpec(self.changelog, PARTITIONS, compacted=True)]
        ensure_topics(self.kafka, [*specs, TopicSpec(self.sla, 1), TopicSpec(self.dlq, 1)])
        self.registry = CollectorRegistry()

    def produce(self, *statuses: bytes) -> None:
        producer = make_producer(self.kafka)
        for value in statuses:
            task_id = CODEC.decode_as("TaskStatus", value)["task_id"]
            producer.send(self.status, key=task_id.encode(), value=value)
        producer.flush()
        producer.close()

    def start(
        self, *, retention: timedelta = timedelta(days=30)
    ) -> tuple[StageLoop, threading.Event, threading.Thread]:
        stop = threading.Event()
        self.registry = CollectorRegistry()
        loop = build_ledger(
            kafka=self.kafka,
            status_topic=self.status,
            changelog_topic=self.changelog,
            sla_topic=self.sla,
            dlq_topic=self.dlq,
            calendar_path=ROOT / "deploy" / "config" / "calendar.yaml",
            policies_path=ROOT / "deploy" / "config" / "sla-policies.yaml",
            clock="event",
            metrics=Metrics(self.registry),
            stop=stop,
            closed_retention=retention,
        )
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        return loop, stop, thread

    def records_in(self) -> float:
        return self.registry.get_sample_value("ubridge_records_in_total", {"stage": "ledger"}) or 0.0

    def events(self) -> list[tuple[str, str, str]]:
        values = [
            cast(SlaEvent, CODEC.decode_as("SlaEvent", r.value)) for r in read_topic(self.kafka.bootstrap, self.sla)
        ]
        return sorted((e["task_id"], e["rule"], e["kind"]) for e in values)

    def entry(self, task_id: str) -> TaskLedgerEntry | None:
        return find_entry(self.kafka, self.changelog, task_id)

    def stages(self, task_id: str) -> list[str]:
        entry = self.entry(task_id)
        return [] if entry is None else [s["stage"] for s in entry["stages"]]


def status(n: int, stage: TaskStage, at: datetime, *, created: datetime = NOW, reason: str | None = None) -> bytes:
    # a connection application filed and created NOW by default: Wednesday 10:00 in Shanghai; 3 h first contact
    task = {
        **make_task("yantai-water", n),
        "created_at": created,
        "kind": "APPLICATION",
        "application_kind": "CONNECTION",
        "application_filed_at": created,
    }
    value: TaskStatus = {
        "task_id": task["task_id"],
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at,
        "pipe_length_m": None,
        "reason": reason,
        "detail": None,
        "reporter": "sink" if stage == "RECEIVED" else "callback",
        "task": task if stage == "RECEIVED" else None,
    }
    return CODEC.encode("TaskStatus", dict(value))


def task_id(n: int) -> str:
    return make_task("yantai-water", n)["task_id"]


def stopped(run: tuple[StageLoop, threading.Event, threading.Thread]) -> StageLoop:
    loop, stop, thread = run
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert not loop.state.failed
    return loop


@pytest.fixture
def ledger(kafka_bootstrap: str, unique_prefix: str) -> Ledger:
    return Ledger(kafka_bootstrap, unique_prefix)


def test_sla_events_changelog_and_a_rebuilt_instance(ledger: Ledger) -> None:
    """Statuses make SLA events and co-partitioned changelog entries; a new instance continues without repeats."""
    ledger.produce(
        status(1, "RECEIVED", NOW),
        status(2, "RECEIVED", NOW),
        status(1, "CONTACTED", NOW + HOUR),
        status(4, "CONTACTED", NOW + HOUR),  # before its RECEIVED: held
    )
    first = ledger.start()
    wait_until(lambda: ledger.records_in() >= 4, timeout_s=60, what="the first statuses")
    # Each task's event clock moves with its own reports: task 2 contacts late, task 3 is opened late.
    ledger.produce(status(2, "CONTACTED", NOW + 6 * HOUR), status(3, "RECEIVED", NOW + 6 * HOUR))
    expected = [
        (task_id(1), "first_contact", "MET"),
        (task_id(2), "first_contact", "BREACHED"),
        *[(task_id(3), "first_contact", kind) for kind in ("BREACHED", "WARNING")],
    ]
    wait_until(lambda: ledger.events() == sorted(expected), timeout_s=60, what="the SLA events of the first run")
    stopped(first)

    changelog = {r.key: r.partition for r in read_topic(ledger.kafka.bootstrap, ledger.changelog)}
    inputs = {r.key: r.partition for r in read_topic(ledger.kafka.bootstrap, ledger.status)}
    held = {k: p for k, p in changelog.items() if k.startswith(b"held/")}
    opened = {task_id(n).encode() for n in (1, 2, 3)}
    assert {k: p for k, p in changelog.items() if k not in held} == {k: p for k, p in inputs.items() if k in opened}
    assert list(held.values()) == [inputs[task_id(4).encode()]]
    assert ledger.stages(task_id(1)) == ["RECEIVED", "CONTACTED"]
    assert ledger.stages(task_id(4)) == []

    second = ledger.start()
    ledger.produce(status(1, "SURVEYED", NOW + 2 * HOUR), status(4, "RECEIVED", NOW))
    wait_until(lambda: ledger.records_in() >= 2, timeout_s=60, what="the second run to consume the new statuses")
    wait_until(lambda: ledger.stages(task_id(4)) == ["RECEIVED", "CONTACTED"], timeout_s=30, what="task 4 opened")
    time.sleep(2.5)  # a few ticks over the rebuilt state
    second_loop = stopped(second)
    assert ledger.stages(task_id(1)) == ["RECEIVED", "CONTACTED", "SURVEYED"]
    assert ledger.events() == sorted([*expected, (task_id(4), "first_contact", "MET")])
    assert second_loop.state.ready


def test_a_closed_task_past_its_retention_is_tombstoned_and_not_rebuilt(ledger: Ledger) -> None:
    """After the retention the changelog's latest record of a closed task is a tombstone; a new instance skips it."""
    ledger.produce(status(1, "RECEIVED", NOW), status(1, "REJECTED", NOW + HOUR, reason="no capacity"))
    ledger.produce(status(2, "RECEIVED", NOW))
    run = ledger.start(retention=timedelta(days=1))
    wait_until(lambda: ledger.records_in() >= 3, timeout_s=60, what="the first statuses")
    assert ledger.entry(task_id(1)) is not None
    ledger.produce(status(3, "RECEIVED", NOW + timedelta(days=2), created=NOW + timedelta(days=2)))
    expired = "ubridge_ledger_expired_total"
    wait_until(lambda: ledger.registry.get_sample_value(expired) == 1, timeout_s=60, what="task 1 to expire")
    stopped(run)
    assert ledger.entry(task_id(1)) is None
    assert ledger.stages(task_id(2)) == ["RECEIVED"]
    rebuilt = ledger.start()
    restored = cast(TaskLedger, rebuilt[0].processor)

    def known() -> set[str]:
        return {task for entries in list(restored.entries.values()) for task in entries}

    wait_until(lambda: known() == {task_id(2), task_id(3)}, timeout_s=60, what="the rebuilt ledger without task 1")
    stopped(rebuilt)


def test_tasks_show_prints_the_timeline_and_rejects_unknown_tasks(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ubridge tasks show` prints stages and rules of a known task; an unknown task exits 2."""
    ledger.produce(status(1, "RECEIVED", NOW), status(1, "CONTACTED", NOW + HOUR))
    run_ = ledger.start()
    wait_until(lambda: ledger.stages(task_id(1)) == ["RECEIVED", "CONTACTED"], timeout_s=60, what="the entry")
    stopped(run_)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    where = ["--bootstrap", ledger.kafka.bootstrap, "--topic-prefix", ledger.kafka.topic_prefix]

    def show(task: str) -> int:
        args = parser.parse_args(["tasks", "show", task, *where])
        code: int = args.func(args)
        return code

    assert show(task_id(1)) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("RECEIVED", "CONTACTED", "first_contact", "total", "2026-11-25 10:00"))
    assert all(word in out for word in ("no_external_works", "yantai-004-connection", "shandong-000-first-contact"))
    assert all(quote in out for quote in ("烟城〔2020〕28号", "原则上应于3小时内与用户取得联系"))
    assert show("no-such-task") == 2
    assert "no-such-task is not in the ledger" in capsys.readouterr().err


def test_clocks_across_new_year_2027_are_provisional_and_shown_so(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task of 2026-12-31 contacted on 2027-01-04: a breach flagged provisional, and `tasks show` says so."""
    eve, contact = datetime(2026, 12, 31, 16, tzinfo=SHANGHAI), datetime(2027, 1, 4, 11, tzinfo=SHANGHAI)
    ledger.produce(status(7, "RECEIVED", eve, created=eve), status(7, "CONTACTED", contact, created=eve))
    run_ = ledger.start()
    wait_until(lambda: len(ledger.events()) >= 1, timeout_s=60, what="the first-contact event")
    stopped(run_)
    events = [
        cast(SlaEvent, CODEC.decode_as("SlaEvent", r.value)) for r in read_topic(ledger.kafka.bootstrap, ledger.sla)
    ]
    assert [("first_contact", "BREACHED", True, datetime(2027, 1, 4, 10, tzinfo=SHANGHAI))] == [
        (e["rule"], e["kind"], e["provisional_calendar"], e["due_at"]) for e in events
    ]
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "tasks",
            "show",
            task_id(7),
            "--bootstrap",
            ledger.kafka.bootstrap,
            "--topic-prefix",
            ledger.kafka.topic_prefix,
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert ("provisional" in out, "2027-01-04 11:00" in out) == (True, True)


def test_the_process_exposes_when_official_holiday_data_ends(kafka_bootstrap: str, unique_prefix: str) -> None:
    """`ubridge_calendar_official_until` is the end of 2026-12-31 in Shanghai with the shipped calendar."""
    config = ROOT / "deploy" / "config"
    ledger = {"calendar": str(config / "calendar.yaml"), "policies": str(config / "sla-policies.yaml")}
    registry = CollectorRegistry()
    app = App(
        settings_for(kafka_bootstrap, unique_prefix, ledger=ledger),
        only=["ledger"],
        registry=registry,
        serve_metrics=False,
    )
    app.start()
    app.stop()
    assert app.wait(timeout_s=30)
    expected = datetime(2027, 1, 1, tzinfo=SHANGHAI).timestamp()
    assert (expected, False) == (registry.get_sample_value("ubridge_calendar_official_until"), app.failed)
