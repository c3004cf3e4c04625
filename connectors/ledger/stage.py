"""The SLA ledger (台账) stage: task statuses → one entry per task, SLA events when a clock passes a limit.

Input: ``ubridge.task-status.v1`` (key task id, Avro ``TaskStatus``). The sink's ``RECEIVED`` (carrying the
task) opens the entry; later statuses move it (:func:`routing.ledger.apply_status`; an impossible
transition is a ``DataError`` and is dead-lettered). A status whose task was not opened yet is *held*, per
partition, and applied when the task appears; past ``max_held_per_partition`` the oldest held status is
dead-lettered with that reason. Nothing is dropped.

State is the entries of the owned partitions, kept on the compacted changelog
(:mod:`connectors.ledger.changelog`) in the same partition number as the status, and rebuilt from it when
partitions are assigned. After each status and on each tick, open entries due for a check are evaluated
(:func:`routing.sla.evaluate`) and new ``SlaEvent`` records go to ``ubridge.sla.v1`` (key task id); the
entry remembers their ids, so a replay or a rebuilt instance does not emit them again (event ids are
deterministic, so a crash between the two writes repeats an event with the same id, never a new one).

Clock: ``wall`` evaluates against the real time, right after each status and whenever a limit passes;
``event`` evaluates each task against its own latest reported time, at the next tick after a status, for
replays and simulations that report in compressed time (each task's clock moves only with its own reports,
so an open task breaches when a late report arrives, never because another task's clock ran ahead; use
``wall`` in production, where silence itself must raise a breach). Ticks stay cheap: entries sit in a heap
by their next warning or breach instant
(re-checked at least hourly), and a tick stops after ``_TICK_BUDGET_S``, leaving the rest for the next.

The calendar never stops the ledger: a task whose clocks cannot be computed (no holiday schedule for a year
they run through, :class:`~routing.calendar.CalendarError`) stays in the ledger with its stages, is marked
``unclocked_reason`` (``ubridge_ledger_unclocked_tasks``, log ``sla_clock_unavailable``) and is tried again at
every status and at least hourly; once the calendar covers it (a year's ``overrides`` added, a restart), it
is clocked and the mark cleared (``sla_clock_restored``).

Closed entries do not stay forever: ``closed_retention`` after a task's last event (by the ledger's clock)
its entry is dropped from memory and a tombstone on the changelog lets compaction remove it, so memory and
restore time follow the open tasks and one retention's worth of closed ones, not the history
(``ubridge_ledger_expired_total``, log ``ledger_entry_expired``). Its SLA events stay on ``ubridge.sla.v1``.
A status that arrives for an expired task finds no entry and is held like one whose task never opened.

Example:
    >>> ledger = TaskLedger(input_topic=..., changelog_topic=..., sla_topic=..., dlq_topic=...,
    ...                     calendar=calendar, policies=policies, codec=Codec.default(),
    ...                     metrics=LedgerMetrics(registry), reader=KafkaChangelogReader(kafka, changelog))
"""

import heapq
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.ledger.changelog import RELEASED, ChangelogReader, held_key, held_value, is_held_key, original
from connectors.ledger.metrics import LedgerMetrics, rule_kind
from connectors.runtime.dlq import dead_letter
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.calendar import CalendarError, WorkingCalendar
from routing.errors import DataError
from routing.ledger import apply_status, mark_emitted, open_entry, reclock
from routing.personal_data import strip_held_status
from routing.records import SlaEvent, TaskLedgerEntry, TaskStatus
from routing.sla import evaluate, reached, rule_views
from routing.sla_policy import PolicyBook
from schemas import Codec

log = structlog.get_logger(__name__)

Clock = Literal["wall", "event"]
_RECHECK = timedelta(hours=1)  # an open entry is evaluated at least this often (clock time), a safety net
_TICK_BUDGET_S = 0.25  # a tick stops after this long; the entries still due wait for the next one
_EPSILON = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "due at once"
DEFAULT_CLOSED_RETENTION = timedelta(days=30)


class _Held(NamedTuple):
    """A status kept until its task opens."""

    task_id: str
    record: ConsumerRecord


def _wall() -> datetime:
    return datetime.now(UTC)


class TaskLedger:
    """Keeps one ledger entry per task of the owned partitions and emits SLA events.

    Args:
        input_topic: The task-status topic.
        changelog_topic: Compacted, with as many partitions as ``input_topic``.
        sla_topic: Where SLA events go.
        dlq_topic: The stage's dead-letter topic (for held statuses dead-lettered later).
        calendar: Working days and hours.
        policies: The SLA rules (deploy/config/sla-policies.yaml).
        codec: Avro codec.
        metrics: The ledger's collectors.
        reader: Reads changelog partitions on assignment.
        clock: ``wall`` or ``event`` (see the module docstring).
        max_held_per_partition: Bound of the held-status buffer of each partition.
        closed_retention: How long a closed entry is kept after its task's last event.
        wall_clock: Swap point for tests.
    """

    stage = "ledger"

    def __init__(
        self,
        *,
        input_topic: str,
        changelog_topic: str,
        sla_topic: str,
        dlq_topic: str,
        calendar: WorkingCalendar,
        policies: PolicyBook,
        codec: Codec,
        metrics: LedgerMetrics,
        reader: ChangelogReader,
        clock: Clock = "wall",
        max_held_per_partition: int = 1000,
        closed_retention: timedelta = DEFAULT_CLOSED_RETENTION,
        wall_clock: Callable[[], datetime] = _wall,
    ) -> None:
        self.input_topics = (input_topic,)
        self._changelog = changelog_topic
        self._sla = sla_topic
        self._dlq = dlq_topic
        self._calendar = calendar
        self._policies = policies
        self._codec = codec
        self._metrics = metrics
        self._reader = reader
        self._clock = clock
        self._max_held = max_held_per_partition
        self._retention = closed_retention
        self._wall = wall_clock
        self.entries: dict[int, dict[str, TaskLedgerEntry]] = {}
        self._held: dict[int, dict[bytes, _Held]] = {}  # partition → changelog key → held status, oldest first
        self._where: dict[str, int] = {}
        self._due: list[tuple[datetime, int, str]] = []
        self._due_at: dict[str, datetime] = {}
        self._expiry: list[tuple[datetime, int, str]] = []  # closed entries by expiry instant, lazily cleaned
        self._seq = itertools.count()
        self.watermark: datetime | None = None

    # --- Processor -------------------------------------------------------------------------------

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per status: the changelog and SLA records it caused, or its DataError."""
        return each_record(records, self._handle)

    def tick(self, now: datetime) -> Sequence[Output]:
        """Evaluate the entries whose next check is due (within a time budget); SLA events and changelog updates."""
        clock = self._now(now)
        if clock is None:
            return ()
        outputs: list[Output] = []
        deadline = time.perf_counter() + _TICK_BUDGET_S
        while self._due and self._due[0][0] <= clock and time.perf_counter() < deadline:
            due, _, task_id = heapq.heappop(self._due)
            partition = self._where.get(task_id)
            if self._due_at.get(task_id) != due or partition is None:
                continue
            del self._due_at[task_id]
            entry = self.entries[partition][task_id]
            checked, events = self._check(entry, clock if self._clock == "wall" else _last_event_at(entry))
            outputs += events
            if checked != entry:
                outputs.append(self._store(partition, entry, checked))
        outputs += self._expire(clock, deadline)
        return outputs

    def close(self) -> None:
        """Nothing to release (the changelog reader opens a consumer per read)."""

    # --- Stateful --------------------------------------------------------------------------------

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebuild the entries and held statuses of ``partitions`` from the changelog."""
        numbers = sorted({tp.partition for tp in partitions if tp.partition not in self.entries})
        if not numbers:
            return
        restored = self._reader.read(numbers)
        for partition in numbers:
            entries: dict[str, TaskLedgerEntry] = {}
            held: dict[bytes, _Held] = {}
            for key, record in restored.get(partition, {}).items():
                if is_held_key(key):
                    status = original(record)
                    held[key] = _Held(self._codec.decode_as("TaskStatus", status.value)["task_id"], status)
                else:
                    entries[key.decode()] = cast(
                        TaskLedgerEntry, self._codec.decode_as("TaskLedgerEntry", record.value)
                    )
            self.entries[partition] = entries
            self._held[partition] = dict(sorted(held.items(), key=lambda item: item[1].record.offset))
            for task_id, entry in entries.items():
                self._where[task_id] = partition
                self._count_open(None, entry)
                self._advance_watermark(_last_event_at(entry))
                if entry["closed"]:
                    self._schedule_expiry(entry)
                if not entry["closed"] or self._clock == "event":
                    # Checked at the next tick; with the event clock a closed entry's last events may not
                    # have been emitted yet (they wait for a tick), so those are checked once too.
                    self._schedule(task_id, _EPOCH)
            log.info(
                "ledger_partition_restored", stage=self.stage, partition=partition, tasks=len(entries), held=len(held)
            )
        self._metrics.held_statuses.set(sum(len(h) for h in self._held.values()))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Forget the entries and held statuses of ``partitions``; the next owner rebuilds them."""
        for tp in partitions:
            for task_id, entry in self.entries.pop(tp.partition, {}).items():
                self._where.pop(task_id, None)
                self._due_at.pop(task_id, None)
                self._count_open(entry, None)
            self._held.pop(tp.partition, None)
        self._metrics.held_statuses.set(sum(len(h) for h in self._held.values()))

    # --- one status ------------------------------------------------------------------------------

    def _handle(self, record: ConsumerRecord) -> Delivered:
        status = cast(TaskStatus, self._codec.decode_as("TaskStatus", record.value))
        self._advance_watermark(status["occurred_at"])
        partition = record.partition
        entries = self.entries.setdefault(partition, {})
        self._held.setdefault(partition, {})
        task_id = status["task_id"]
        before = entries.get(task_id)
        outputs: list[Output] = []
        if before is not None:
            entry = apply_status(before, status, self._calendar)
        elif status["stage"] == "RECEIVED" and status["task"] is not None:
            entry = open_entry(status["task"], received_at=status["occurred_at"])
            self._where[task_id] = partition
            entry = self._release_held(partition, task_id, entry, outputs)
            log.info("ledger_task_opened", stage=self.stage, task_id=task_id, utility=entry["utility_id"])
        else:
            return Delivered(outputs=tuple(self._hold(record, status)))
        if self._clock == "wall":
            entry, events = self._check(entry, self._wall())
            outputs += events
        else:
            # The watermark may still move within this batch (other partitions, other tasks' reports):
            # evaluate at the next tick, after the whole batch, so a report later in it is not read as late.
            self._schedule(task_id, _EPOCH)
        if entry != before:
            outputs.append(self._store(partition, before, entry))
        return Delivered(outputs=tuple(outputs))

    def _release_held(
        self, partition: int, task_id: str, entry: TaskLedgerEntry, outputs: list[Output]
    ) -> TaskLedgerEntry:
        """Apply the statuses held for a task that has just opened, oldest first."""
        held = self._held[partition]
        for key in [key for key, item in held.items() if item.task_id == task_id]:
            record = held.pop(key).record
            outputs.append(Output(self._changelog, key, RELEASED, partition=partition))
            try:
                status = cast(TaskStatus, self._codec.decode_as("TaskStatus", record.value))
                entry = apply_status(entry, status, self._calendar)
            except DataError as exc:
                outputs.append(self._dead_letter(record, exc))
        self._metrics.held_statuses.set(sum(len(h) for h in self._held.values()))
        return entry

    def _hold(self, record: ConsumerRecord, status: TaskStatus) -> list[Output]:
        """Keep a status of a task not opened yet; dead-letter the oldest held beyond the bound.

        The changelog keeps it without personal data (:func:`routing.personal_data.strip_held_status`): a held
        status may stay there for as long as its task never opens.
        """
        task_id = status["task_id"]
        held = self._held[record.partition]
        key = held_key(record)
        value, headers = held_value(record)
        stripped = strip_held_status(status)
        if stripped != status:
            value = self._codec.encode("TaskStatus", dict(stripped))
        held[key] = _Held(task_id, record)
        outputs = [Output(self._changelog, key, value, headers, partition=record.partition)]
        while len(held) > self._max_held:
            oldest_key = next(iter(held))
            oldest = held.pop(oldest_key).record
            reason = f"no RECEIVED seen for this task while {self._max_held} later statuses were held"
            outputs.append(self._dead_letter(oldest, DataError("task_id", reason)))
            outputs.append(Output(self._changelog, oldest_key, RELEASED, partition=record.partition))
        self._metrics.held_statuses.set(sum(len(h) for h in self._held.values()))
        log.info("ledger_status_held", stage=self.stage, task_id=task_id, offset=record.offset, held=len(held))
        return outputs

    def _dead_letter(self, record: ConsumerRecord, error: DataError) -> Output:
        log.warning(
            "record_dead_lettered",
            stage=self.stage,
            partition=record.partition,
            offset=record.offset,
            reason=error.reason,
        )
        return dead_letter(record, error, stage=self.stage, topic=self._dlq, now=self._wall())

    # --- SLA -------------------------------------------------------------------------------------

    def _check(self, entry: TaskLedgerEntry, now: datetime) -> tuple[TaskLedgerEntry, list[Output]]:
        """Evaluate an entry at ``now``; the entry with the new events marked, and their outputs."""
        task_id = entry["task_id"]
        if entry["closed"]:
            self._due_at.pop(task_id, None)
        try:
            clocked = reclock(entry, self._calendar) if entry["unclocked_reason"] else entry
            events = evaluate(clocked, self._policies, self._calendar, now)
            due = self._next_due(clocked, now) if not entry["closed"] and self._clock == "wall" else None
        except CalendarError as exc:
            return self._unclocked(entry, str(exc), now), []
        if entry["unclocked_reason"] and not clocked["unclocked_reason"]:
            log.info("sla_clock_restored", stage=self.stage, task_id=task_id)
        entry = clocked
        if events:
            entry = mark_emitted(entry, events, now)
            for event in events:
                self._count_event(event)
        if due is not None:
            self._schedule(task_id, due)
        outputs = [Output(self._sla, task_id.encode(), self._codec.encode("SlaEvent", dict(e))) for e in events]
        return entry, outputs

    def _unclocked(self, entry: TaskLedgerEntry, reason: str, now: datetime) -> TaskLedgerEntry:
        """Mark an entry whose clocks cannot be computed; it is tried again at its next status or recheck."""
        task_id = entry["task_id"]
        if entry["unclocked_reason"] != reason:
            log.warning("sla_clock_unavailable", stage=self.stage, task_id=task_id, reason=reason)
        if not entry["closed"] and self._clock == "wall":
            self._schedule(task_id, now + _RECHECK)
        return {**entry, "unclocked_reason": reason}

    def _next_due(self, entry: TaskLedgerEntry, now: datetime) -> datetime | None:
        """The first instant after ``now`` when a running clock warns or breaches, at most ``_RECHECK`` ahead.

        None when no clock with a limit runs (a task no rule judges needs no checks until its next status).
        """
        due = now + _RECHECK
        fraction = self._policies.warning_fraction
        clocks = [
            clock
            for view in rule_views(entry, self._policies, self._calendar)
            for clock in view.clocks
            if clock.limit_hours is not None and clock.started_at is not None and clock.ended_at is None
        ]
        if not clocks:
            return None
        for clock in clocks:
            if clock.limit_hours is None:
                continue
            warning = clock.instant(self._calendar, clock.limit_hours * fraction, now)
            limit = clock.instant(self._calendar, clock.limit_hours, now)
            # BREACHED needs elapsed > limit: the first working instant after the limit is reached.
            breach = limit + _EPSILON if clock.natural else self._calendar.add_working_time(limit, _EPSILON)
            due = min([due, *(at for at in (warning, breach) if at > now)])
        return due

    def _schedule(self, task_id: str, due: datetime) -> None:
        self._due_at[task_id] = due
        heapq.heappush(self._due, (due, next(self._seq), task_id))

    def _schedule_expiry(self, entry: TaskLedgerEntry) -> None:
        heapq.heappush(self._expiry, (_last_event_at(entry) + self._retention, next(self._seq), entry["task_id"]))

    def _expire(self, clock: datetime, deadline: float) -> list[Output]:
        """Drop the closed entries past their retention and write their tombstones (within the tick's budget)."""
        outputs: list[Output] = []
        while self._expiry and self._expiry[0][0] <= clock and time.perf_counter() < deadline:
            _, _, task_id = heapq.heappop(self._expiry)
            partition = self._where.get(task_id)
            entries = self.entries.get(partition, {}) if partition is not None else {}
            entry = entries.get(task_id)
            # Re-opened, reported again since, or already gone with its partition: a later expiry stands.
            if entry is None or not entry["closed"] or _last_event_at(entry) + self._retention > clock:
                continue
            del entries[task_id]
            del self._where[task_id]
            self._due_at.pop(task_id, None)
            self._count_open(entry, None)
            self._metrics.expired_entries.inc()
            log.info("ledger_entry_expired", stage=self.stage, task_id=task_id, utility=entry["utility_id"])
            outputs.append(Output(self._changelog, task_id.encode(), None, partition=partition))
        return outputs

    def _now(self, wall: datetime) -> datetime | None:
        return wall if self._clock == "wall" else self.watermark

    def _advance_watermark(self, at: datetime) -> None:
        if self.watermark is None or at > self.watermark:
            self.watermark = at

    # --- state and metrics -----------------------------------------------------------------------

    def _store(self, partition: int, before: TaskLedgerEntry | None, entry: TaskLedgerEntry) -> Output:
        """Keep the new entry, update the metrics, and write it to the changelog."""
        task_id = entry["task_id"]
        self.entries[partition][task_id] = entry
        self._count_open(before, entry)
        if entry["closed"]:
            self._schedule_expiry(entry)
        contacted = reached(entry, "CONTACTED")  # as the first_contact rule reads it, from the filing if known
        if contacted is not None and (before is None or reached(before, "CONTACTED") is None):
            filed = entry["application_filed_at"] or entry["created_at"]
            try:
                elapsed = self._calendar.working_hours_between(filed, contacted)
            except CalendarError:
                pass  # the entry is marked unclocked by its check; the histogram misses this one task
            else:
                self._metrics.first_contact_hours.labels(entry["utility_id"]).observe(elapsed)
        value = self._codec.encode("TaskLedgerEntry", dict(entry))
        return Output(self._changelog, task_id.encode(), value, partition=partition)

    def _count_open(self, before: TaskLedgerEntry | None, after: TaskLedgerEntry | None) -> None:
        if before is not None and not before["closed"]:
            self._metrics.open_tasks.labels(before["utility_id"], before["stage"] or "NONE").dec()
        if after is not None and not after["closed"]:
            self._metrics.open_tasks.labels(after["utility_id"], after["stage"] or "NONE").inc()
        if before is not None and before["unclocked_reason"]:
            self._metrics.unclocked_tasks.labels(before["utility_id"]).dec()
        if after is not None and after["unclocked_reason"]:
            self._metrics.unclocked_tasks.labels(after["utility_id"]).inc()

    def _count_event(self, event: SlaEvent) -> None:
        utility = event["utility_id"]
        self._metrics.sla_events.labels(utility, rule_kind(event["rule"]), event["kind"]).inc()
        if event["provisional_calendar"]:
            self._metrics.provisional_events.labels(utility).inc()
        if event["kind"] == "BREACHED":
            self._metrics.sla_breaches.labels(utility).inc()
        log.info(
            "sla_event_emitted", stage=self.stage, task_id=event["task_id"], rule=event["rule"], kind=event["kind"]
        )


def _last_event_at(entry: TaskLedgerEntry) -> datetime:
    """The latest event time an entry records (restores the event-clock watermark)."""
    times = [entry["created_at"]]
    for span in entry["stages"]:
        times += [span["started_at"]] if span["ended_at"] is None else [span["started_at"], span["ended_at"]]
    return max(times)
