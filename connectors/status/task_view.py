"""The callbacks stage's own view of the delivered tasks, built by reading the task-status topic.

Every process serving callbacks reads every partition of ``ubridge.task-status.v1`` (no consumer group) and
folds each record into an SQLite table (:func:`connectors.status.admission.learn`): one row per task, on
disk, so memory stays bounded however many tasks there are. With ``path`` the table and the offsets read
survive a restart and reading resumes where it stopped; without, a temporary file is rebuilt from the
topic's start.

**The race with the sink.** A sink writes the task's RECEIVED after the utility answered the delivery, and a
utility may report at once. :meth:`TaskView.decide` therefore never answers 404 from a stale view: it waits
until the view has read everything that was on the topic when the report arrived (the end offsets, fetched
after it arrived), and until ``wait_s`` has passed without the task's RECEIVED appearing. A known task is
judged at once.

Reports accepted by this process but not read back from the topic yet are *pending*: they count for the
next report on the same task (so two racing reports cannot both pass when only one fits), and are dropped
when read back, or when Kafka did not take them (:meth:`TaskView.forget`). Two conflicting reports on one
task sent within the same instant to two *different* processes can still both be accepted; the ledger then
dead-letters the later one with its reason.

Example:
    >>> view = TaskView(kafka, topic="ubridge.task-status.v1", path=Path("/var/lib/ubridge/tasks.sqlite"))
    >>> threading.Thread(target=view.run, args=(stop,), daemon=True).start()
    >>> view.wait_caught_up(30)
    >>> view.decide(status, ticket=1)      # None, or Refusal(404|403|409, reason)
"""

import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from connectors.runtime.kafka import make_consumer
from connectors.settings import KafkaSettings
from connectors.status.admission import KnownTask, Refusal, admit, learn
from routing.records import TaskStage, TaskStatus
from schemas import Codec

log = structlog.get_logger(__name__)

_POLL_MS: Final = 100
_SYNC_POLL_MS: Final = 10  # while reports wait for the view to be current
_RETRY_S: Final = 1.0
_BEHIND_LIMIT_S: Final = 5.0  # beyond the wait for an unknown task's RECEIVED, for the view to become current
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, utility_id TEXT NOT NULL, "
    "created_at TEXT NOT NULL, times TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS positions (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL)",
)


class TaskView:
    """Which tasks were delivered, to whom, and how far each went; see the module docstring.

    Args:
        kafka: The cluster.
        topic: The task-status topic (prefix applied).
        path: The SQLite file; None for a temporary one, rebuilt from the topic at each start.
        wait_s: How long a report of an unknown task waits for the task's RECEIVED before 404.
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        path: Path | None = None,
        wait_s: float = 3.0,
        codec: Codec | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._wait_s = wait_s
        self._codec = codec or Codec.default()
        self._temporary = tempfile.TemporaryDirectory(prefix="ubridge-task-view-") if path is None else None
        file = Path(self._temporary.name) / "tasks.sqlite" if self._temporary is not None else path
        self._db = sqlite3.connect(str(file), check_same_thread=False, isolation_level=None)
        # Every status is folded in here, one transaction per batch. In WAL mode with synchronous=NORMAL a commit
        # is a write to the log, not an fsync: a power cut may lose the last batches, and their offsets with
        # them, so they are read again; the table and its positions never disagree.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._changed = threading.Condition()
        # task → ticket → a report accepted here, not read back yet; per task, because a busy intake has
        # hundreds pending and every record read and every lookup would otherwise scan them all
        self._pending: dict[str, dict[int, TaskStatus]] = {}
        self._pending_task: dict[int, str] = {}  # ticket → its task
        self._waiting = 0
        self._synced_at = 0.0  # monotonic time whose end offsets the view has read up to
        self._caught_up = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Read the topic into the table until ``stop`` is set, waiting out Kafka outages."""
        while not stop.is_set():
            try:
                consumer = make_consumer(self._kafka, group_id=None)
                # End offsets on a connection of their own: behind the reader's long-polling fetches they
                # would wait out fetch_max_wait_ms each time.
                offsets = make_consumer(self._kafka, group_id=None)
            except KafkaError as exc:
                log.warning("task_view_kafka_unreachable", error=str(exc))
                stop.wait(_RETRY_S)
                continue
            try:
                self._follow(consumer, offsets, stop)
            except KafkaError as exc:
                log.warning("task_view_read_failed", error=str(exc))
                stop.wait(_RETRY_S)
            finally:
                consumer.close()
                offsets.close()
        self._db.close()
        if self._temporary is not None:
            self._temporary.cleanup()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until the view has read the topic to the end it had at start; False after ``timeout_s``."""
        return self._caught_up.wait(timeout_s)

    def decide(self, status: TaskStatus, *, ticket: int) -> Refusal | None:
        """Whether ``status`` can be accepted; when it can, it is pending under ``ticket`` until read back.

        A known task is judged at once on what the view has read and the reports pending here. An unknown one
        is refused only from a current view (see the module docstring): once the view has read what was on the
        topic when the report arrived, and ``wait_s`` has passed without its RECEIVED. When the view cannot
        become current (Kafka unreachable), the answer is 503: whether the task exists cannot be told.
        """
        with self._changed:
            known = self._await_known(status["task_id"])
            if isinstance(known, Refusal):
                return known
            refusal = admit(known, status)
            if refusal is None:
                self._pending.setdefault(status["task_id"], {})[ticket] = status
                self._pending_task[ticket] = status["task_id"]
            return refusal

    def find(self, task_id: str) -> KnownTask | Refusal | None:
        """``task_id`` as the view knows it; None: no such task was delivered; a 503 refusal: cannot tell now.

        An unknown task is waited for as :meth:`decide` waits for it (a current view, then ``wait_s``).
        """
        with self._changed:
            return self._await_known(task_id)

    def _await_known(self, task_id: str) -> KnownTask | Refusal | None:
        """What is known of ``task_id``, waiting for it when unknown; called holding ``_changed``."""
        asked = time.monotonic()
        patience, limit = asked + self._wait_s, asked + self._wait_s + _BEHIND_LIMIT_S
        self._waiting += 1
        try:
            while (known := self._known(task_id)) is None:
                now = time.monotonic()
                if self._synced_at >= asked and now >= patience:
                    break
                if now >= limit:
                    log.warning("task_view_behind", task_id=task_id, waited_s=round(now - asked, 3))
                    return Refusal(503, "cannot tell whether the task exists right now; retry shortly", "task_id")
                self._changed.wait((patience if now < patience else limit) - now)
        finally:
            self._waiting -= 1
        return known

    def pending(self) -> int:
        """How many reports accepted here were not read back from the topic yet."""
        with self._changed:
            return len(self._pending_task)

    def forget(self, ticket: int) -> None:
        """Drop the pending report of ``ticket``: Kafka did not take it."""
        with self._changed:
            self._settle(ticket)

    def known(self, task_id: str) -> KnownTask | None:
        """What is known of ``task_id`` now, pending reports included."""
        with self._changed:
            return self._known(task_id)

    def _known(self, task_id: str) -> KnownTask | None:
        known = self._stored(task_id)
        for status in self._pending.get(task_id, {}).values():
            known = learn(known, status)
        return known

    def _settle(self, ticket: int) -> None:
        """The report of ``ticket`` is pending no more (read back, or refused by Kafka)."""
        task_id = self._pending_task.pop(ticket, None)
        if task_id is None:
            return
        tickets = self._pending[task_id]
        del tickets[ticket]
        if not tickets:
            del self._pending[task_id]

    def _stored(self, task_id: str) -> KnownTask | None:
        row = self._db.execute(
            "SELECT utility_id, created_at, times FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        if row is None:
            return None
        utility_id, created_at, times = row
        stages = {cast(TaskStage, stage): datetime.fromisoformat(at) for stage, at in json.loads(times).items()}
        return KnownTask(utility_id, datetime.fromisoformat(created_at), stages)

    def _follow(self, consumer: KafkaConsumer, offsets: KafkaConsumer, stop: threading.Event) -> None:
        partitions = [TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())]
        if not partitions:
            message = f"topic {self._topic} has no partitions yet"
            raise KafkaError(message)
        consumer.assign(partitions)
        stored = dict(self._db.execute("SELECT partition, next_offset FROM positions").fetchall())
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        while not stop.is_set():
            asked = time.monotonic()
            syncing = bool(self._waiting) or not self._caught_up.is_set()
            ends = offsets.end_offsets(partitions) if syncing else None
            batches = consumer.poll(timeout_ms=_SYNC_POLL_MS if syncing else _POLL_MS)
            for tp, records in batches.items():
                self._apply(tp, records)
            if ends is not None and all(consumer.position(tp) >= ends[tp] for tp in partitions):
                with self._changed:
                    self._synced_at = asked
                    self._changed.notify_all()
                if not self._caught_up.is_set():
                    self._caught_up.set()
                    log.info("task_view_caught_up", topic=self._topic)

    def _apply(self, tp: TopicPartition, records: Iterable[Any]) -> None:
        """Fold a batch of records into the table, in one transaction, with the partition's next offset."""
        with self._changed:
            self._db.execute("BEGIN")
            next_offset = None
            for record in records:
                next_offset = record.offset + 1
                try:
                    status = cast(TaskStatus, self._codec.decode_as("TaskStatus", record.value))
                except Exception as exc:  # the ledger dead-letters such a record; the view skips it
                    log.warning("task_view_record_skipped", offset=record.offset, error=type(exc).__name__)
                    continue
                self._store(status)
                for ticket, pending in list(self._pending.get(status["task_id"], {}).items()):
                    if _same(pending, status):
                        self._settle(ticket)
            if next_offset is not None:
                self._db.execute(
                    "INSERT INTO positions VALUES (?, ?) ON CONFLICT(partition) DO UPDATE SET next_offset = ?",
                    (tp.partition, next_offset, next_offset),
                )
            self._db.execute("COMMIT")
            self._changed.notify_all()

    def _store(self, status: TaskStatus) -> None:
        task_id = status["task_id"]
        before = self._stored(task_id)
        after = learn(before, status)
        if after is None or after == before:
            return
        times = json.dumps({stage: at.isoformat() for stage, at in after.times.items()})
        self._db.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET times = excluded.times",
            (task_id, after.utility_id, after.created_at.isoformat(), times),
        )


def _same(pending: TaskStatus, read: TaskStatus) -> bool:
    """Whether ``read`` is the record of ``pending``, whose times Avro's timestamp-millis truncated on the way.

    Compared to the microsecond, a report stamped ``datetime.now()`` never matched its own record: it stayed
    pending for good, and every record read scanned a list that only grew.
    """
    if pending["utility_id"] != read["utility_id"] or pending["stage"] != read["stage"]:
        return False
    times = ("occurred_at", "reported_at")
    return all(_millis(pending[key]) == _millis(read[key]) for key in times)  # type: ignore[literal-required]


def _millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
