"""The complaint loop's stage: task statuses, return visits and department closes → the 清零 ledger and 督办.

Inputs (at least once, offsets committed after every output is acknowledged, :mod:`connectors.runtime.stage`):

* ``ubridge.task-status.v1`` (key task id): the sink's RECEIVED carrying a COMPLAINT task opens its order
  (:func:`routing.complaints.open_order`); the utility's VERIFIED, HANDLED, ANSWERED move it. Statuses of other
  tasks are filtered. A loop stage of a task the loop never saw received is dead-lettered with that reason.
* ``ubridge.hotline.return-visits.v1`` (key order id): the platform's 回访 (:func:`routing.complaints.apply_visit`).
* ``ubridge.complaints.closes.v1`` (key order id): the department's close with a reason (``ubridge complaints close``).

Outputs: each order's entry on the compacted ``ubridge.complaints.ledger.v1`` (key order id), read back whole
when the stage starts, and each 督办 once on ``ubridge.complaints.escalations.v1`` (key order id). Every
operation is idempotent (the earliest stage time counts, a visit id is recorded once, an escalation id is a
function of order, reason and deadline), so a repeat after a crash changes nothing.

An ANSWERED report sends the answer (the status's ``detail``) to the hotline platform
(:class:`~connectors.complaints.platform.PlatformClient`); once the platform took it, the entry remembers
that answer's time and a repeat is not sent again. If the platform refuses it, keeps failing, or the report has
no answer text, the stage still records the stage and dead-letters the status with the reason: replaying it
from the dead-letter topic sends it again. Other orders go on meanwhile.

State is every order (a visit is keyed by order, a status by task: they cannot be co-partitioned), so the
stage runs in one process of the installation at a time (``ubridge run`` leases it, like a source).

A visit or close of an order not opened yet (topics are read in no particular order among themselves) is held,
on the ledger topic under a ``held/`` key, until the order's RECEIVED opens it.

Clock: ``wall`` checks deadlines at the real time a few seconds after each change (a backlog's later reports
are in by then) and whenever one passes (a heap by next deadline); ``event`` checks each order at its own latest
reported time after each change, for replays and the demo in compressed time (an order that goes silent is then
never found late: use ``wall`` in production).
"""

import heapq
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.complaints.metrics import ComplaintMetrics
from connectors.complaints.platform import PlatformClient
from connectors.ledger.changelog import held_key, held_value, is_held_key, original
from connectors.runtime.dlq import dead_letter
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.calendar import CalendarError, WorkingCalendar
from routing.complaints import (
    LOOP_STAGES,
    ComplaintPolicy,
    answer_sent,
    apply_stage,
    apply_visit,
    check_deadlines,
    close_by_department,
    is_overdue,
    needs_sending,
    next_check,
    open_order,
    state_of,
    visits_of,
)
from routing.errors import DataError
from routing.privacy import mask_text
from routing.records import ComplaintClose, ComplaintLedgerEntry, ComplaintVisitResult, Escalation, TaskStatus
from routing.satisfaction import SatisfactionPolicy, month_of, monthly_figures
from schemas import Codec

log = structlog.get_logger(__name__)

Clock = Literal["wall", "event"]
STAGE = "complaints"
_FIGURES_EVERY_S = 10.0
# A changed order is checked this long after the change: a backlog read after a restart brings an order's later
# reports in the next batches, and its deadlines must not be judged before they are in.
_SETTLE = timedelta(seconds=5)


class _Held(NamedTuple):
    """A visit or close waiting for its order: where it is kept on the ledger topic, and the record."""

    partition: int
    key: bytes
    record: ConsumerRecord


def _wall() -> datetime:
    return datetime.now(UTC)


class ComplaintLoop:
    """Keeps every work order's loop and its place on the 清零 ledger; see the module docstring.

    Args:
        status_topic: The task-status topic.
        visits_topic: The platform's return visits.
        closes_topic: The department's closes.
        ledger_topic: Compacted; the entries, key order id.
        escalations_topic: Where 督办 go.
        dlq_topic: The stage's dead-letter topic (for answers that could not be sent).
        policy: The loop's limits.
        satisfaction: Which visits count as satisfied; the month's figures.
        calendar: Working time.
        codec: Avro codec.
        metrics: The loop's collectors.
        restore: Reads the ledger topic's latest record per key of each partition (on the first assignment).
        platform: Sends answers; None: answers are recorded, not sent.
        clock: ``wall`` or ``event``.
        max_held: Visits and closes held for orders not opened yet, at most; the oldest beyond is dead-lettered.
        wall_clock: Swap point for tests.
    """

    stage = STAGE

    def __init__(
        self,
        *,
        status_topic: str,
        visits_topic: str,
        closes_topic: str,
        ledger_topic: str,
        escalations_topic: str,
        dlq_topic: str,
        policy: ComplaintPolicy,
        satisfaction: SatisfactionPolicy,
        calendar: WorkingCalendar,
        codec: Codec,
        metrics: ComplaintMetrics,
        restore: Callable[[], Mapping[int, Mapping[bytes, ConsumerRecord]]],
        platform: PlatformClient | None = None,
        clock: Clock = "wall",
        max_held: int = 10_000,
        wall_clock: Callable[[], datetime] = _wall,
    ) -> None:
        self.input_topics = (status_topic, visits_topic, closes_topic)
        self._status_topic, self._visits_topic, self._closes_topic = self.input_topics
        self._ledger = ledger_topic
        self._escalations = escalations_topic
        self._dlq = dlq_topic
        self._policy = policy
        self._satisfaction = satisfaction
        self._calendar = calendar
        self._codec = codec
        self._metrics = metrics
        self._restore = restore
        self._platform = platform
        self._clock = clock
        self._wall = wall_clock
        self.orders: dict[str, ComplaintLedgerEntry] = {}
        self._by_task: dict[str, str] = {}
        self._restored = False
        self._max_held = max_held
        self._held: dict[str, list[_Held]] = {}  # order id → its visits and closes waiting for the order to open
        self._due: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._figures_at = 0.0
        metrics.target.set(satisfaction.target.rate)

    # --- Processor -------------------------------------------------------------------------------

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per record: the ledger entries and escalations it caused, or its DataError."""
        return each_record(records, self._handle)

    def tick(self, now: datetime) -> Sequence[Output]:
        """Check the orders whose next deadline passed (wall clock); refresh the figures now and then."""
        outputs: list[Output] = []
        if self._clock == "wall":
            while self._due and self._due[0][0] <= now:
                _, _, order_id = heapq.heappop(self._due)
                entry = self.orders.get(order_id)
                if entry is not None:
                    outputs += self._checked(entry, now)
        self._refresh_figures(now)
        return outputs

    def close(self) -> None:
        """Release the platform client."""
        if self._platform is not None:
            self._platform.close()

    # --- Stateful --------------------------------------------------------------------------------

    def on_assigned(self, _partitions: Sequence[TopicPartition]) -> None:
        """Read every order from the ledger topic, once (the state is not per partition)."""
        if self._restored:
            return
        for partition, latest in self._restore().items():
            for key, record in latest.items():
                if is_held_key(key):
                    held = original(record)
                    self._held.setdefault(self._order_id_of(held), []).append(_Held(partition, key, held))
                    continue
                entry = cast(ComplaintLedgerEntry, self._codec.decode_as("ComplaintLedgerEntry", record.value))
                self._keep(None, entry)
                self._schedule(entry)
        for waiting in self._held.values():
            waiting.sort(key=lambda item: item.record.offset)
        self._restored = True
        held = sum(len(waiting) for waiting in self._held.values())
        log.info("complaint_ledger_restored", stage=self.stage, orders=len(self.orders), held=held)

    def on_revoked(self, _partitions: Sequence[TopicPartition]) -> None:
        """Keep the orders: every write to the ledger topic is this stage's own (it runs in one process)."""

    # --- records ---------------------------------------------------------------------------------

    def _handle(self, record: ConsumerRecord) -> Delivered:
        if record.topic == self._status_topic:
            return self._on_status(record)
        order_id = self._order_id_of(record)
        before = self.orders.get(order_id)
        if before is None:
            return Delivered(outputs=tuple(self._hold(order_id, record)))
        return Delivered(outputs=tuple(self._changed(before, self._apply(before, record))))

    def _on_status(self, record: ConsumerRecord) -> Delivered:
        status = cast(TaskStatus, self._codec.decode_as("TaskStatus", record.value))
        order_id = self._by_task.get(status["task_id"])
        if order_id is None:
            task = status["task"]
            if status["stage"] == "RECEIVED" and task is not None and task["kind"] == "COMPLAINT":
                if task["action"] == "CANCEL":
                    return Delivered(filtered_reason="complaint_cancelled_unopened")
                entry = open_order(
                    task, received_at=status["occurred_at"], policy=self._policy, calendar=self._calendar
                )
                log.info("complaint_opened", stage=self.stage, order_id=entry["order_id"], utility=entry["utility_id"])
                released: list[Output] = []
                entry = self._release(entry, released)
                return Delivered(outputs=tuple(self._changed(None, entry) + released))
            if status["stage"] in LOOP_STAGES:
                reason = f"{status['stage']} for a task the complaint loop never saw received as a COMPLAINT task"
                raise DataError("task_id", reason)
            return Delivered(filtered_reason="not_a_complaint")
        before = self.orders[order_id]
        if status["utility_id"] != before["utility_id"]:
            raise DataError("utility_id", f"{status['utility_id']} reported on another utility's work order")
        entry = apply_stage(before, status["stage"], status["occurred_at"])
        outputs: list[Output] = []
        if status["stage"] == "ANSWERED" and needs_sending(entry, status["occurred_at"]):
            entry = self._answer(entry, status, record, outputs)
        return Delivered(outputs=tuple(self._changed(before, entry) + outputs))

    def _answer(
        self, entry: ComplaintLedgerEntry, status: TaskStatus, record: ConsumerRecord, outputs: list[Output]
    ) -> ComplaintLedgerEntry:
        """Send the answer; the entry marked sent, or a dead letter of the status added to ``outputs``."""
        utility = entry["utility_id"]
        if self._platform is None:
            self._metrics.answers.labels(utility, "unsent").inc()
            log.warning("complaint_answer_not_sent", stage=self.stage, order_id=entry["order_id"], reason="no platform")
            return entry
        try:
            answer = (status["detail"] or "").strip()
            if not answer:
                raise DataError("detail", "ANSWERED without the answer (detail): nothing to send to the platform")
            self._platform.send_answer(
                order_id=entry["order_id"], utility_id=utility, answer=answer, answered_at=status["occurred_at"]
            )
        except DataError as exc:
            self._metrics.answers.labels(utility, "failed").inc()
            reason = mask_text(exc.reason)  # the platform's answer is quoted: it may echo a caller's number
            log.warning("complaint_answer_failed", stage=self.stage, order_id=entry["order_id"], reason=reason)
            outputs.append(dead_letter(record, exc, stage=self.stage, topic=self._dlq, now=self._wall()))
            return entry
        self._metrics.answers.labels(utility, "sent").inc()
        return answer_sent(entry, status["occurred_at"])

    def _order_id_of(self, record: ConsumerRecord) -> str:
        """The order a visit or a close is about (raises DataError for bytes that are neither)."""
        name = "ReturnVisit" if record.topic == self._visits_topic else "ComplaintClose"
        return str(self._codec.decode_as(name, record.value)["order_id"])

    def _apply(self, before: ComplaintLedgerEntry, record: ConsumerRecord) -> ComplaintLedgerEntry:
        """The order with a return visit or a department close applied."""
        if record.topic != self._visits_topic:
            close = cast(ComplaintClose, self._codec.decode_as("ComplaintClose", record.value))
            entry = close_by_department(
                before, reason=close["reason"], closed_by=close["closed_by"], closed_at=close["closed_at"]
            )
            if entry is not before:
                log.info("complaint_closed_by_department", stage=self.stage, order_id=entry["order_id"])
            return entry
        visit = self._codec.decode_as("ReturnVisit", record.value)
        result = cast(ComplaintVisitResult, visit["result"])
        entry = apply_visit(
            before,
            visit_id=str(visit["visit_id"]),
            result=result,
            visited_at=cast(datetime, visit["visited_at"]),
            satisfied=self._satisfaction.satisfied,
            policy=self._policy,
            calendar=self._calendar,
        )
        if entry is not before:
            self._metrics.visits.labels(entry["utility_id"], entry["region_code"], result).inc()
            self._figures_at = 0.0
        return entry

    def _hold(self, order_id: str, record: ConsumerRecord) -> list[Output]:
        """Keep a visit or close of an order not opened yet (its task's RECEIVED is on another topic).

        Kept on the ledger topic under a ``held/`` key in the record's partition, without the visitor's comment,
        so that a restart still holds it; beyond ``max_held`` the oldest is dead-lettered.
        """
        value = record.value
        if record.topic == self._visits_topic:
            visit = self._codec.decode_as("ReturnVisit", record.value)
            value = self._codec.encode("ReturnVisit", {**visit, "comment": None})
        key = held_key(record)
        _, headers = held_value(record)
        self._held.setdefault(order_id, []).append(_Held(record.partition, key, record))
        outputs = [Output(self._ledger, key, value, headers, partition=record.partition)]
        log.info("complaint_record_held", stage=self.stage, order_id=order_id, topic=record.topic)
        while sum(len(waiting) for waiting in self._held.values()) > self._max_held:
            oldest_order = min(self._held, key=lambda o: self._held[o][0].record.timestamp)
            oldest = self._held[oldest_order].pop(0)
            if not self._held[oldest_order]:
                del self._held[oldest_order]
            reason = f"work order {oldest_order} never opened (no COMPLAINT task seen) while {self._max_held} were held"
            outputs.append(
                dead_letter(
                    oldest.record, DataError("order_id", reason), stage=self.stage, topic=self._dlq, now=self._wall()
                )
            )
            outputs.append(Output(self._ledger, oldest.key, None, partition=oldest.partition))
        return outputs

    def _release(self, entry: ComplaintLedgerEntry, outputs: list[Output]) -> ComplaintLedgerEntry:
        """Apply the visits and closes held for an order that has just opened, oldest first."""
        for held in self._held.pop(entry["order_id"], []):
            outputs.append(Output(self._ledger, held.key, None, partition=held.partition))
            try:
                entry = self._apply(entry, held.record)
            except DataError as exc:
                outputs.append(dead_letter(held.record, exc, stage=self.stage, topic=self._dlq, now=self._wall()))
        return entry

    # --- state -----------------------------------------------------------------------------------

    def _changed(self, before: ComplaintLedgerEntry | None, entry: ComplaintLedgerEntry) -> list[Output]:
        """Keep the entry and write it if anything changed (with the event clock, after checking its deadlines).

        With the wall clock its deadlines are checked a few seconds later, on a tick: a backlog must not find a
        stage late that a later record (of this batch or the next ones) reports done in time.
        """
        raised: list[Output] = []
        if self._clock == "event":
            entry, raised = self._escalate(entry, entry["updated_at"])
        if entry == before:
            return []
        self._keep(before, entry)
        if self._clock == "wall":
            heapq.heappush(self._due, (self._wall() + _SETTLE, next(self._seq), entry["order_id"]))
        value = self._codec.encode("ComplaintLedgerEntry", dict(entry))
        return [*raised, Output(self._ledger, entry["order_id"].encode(), value)]

    def _checked(self, entry: ComplaintLedgerEntry, now: datetime) -> list[Output]:
        """A deadline check on the tick: the escalations and the entry, if it changed."""
        checked, outputs = self._escalate(entry, now)
        if checked == entry:
            self._schedule(entry)
            return []
        self._keep(entry, checked)
        self._schedule(checked)
        value = self._codec.encode("ComplaintLedgerEntry", dict(checked))
        return [*outputs, Output(self._ledger, checked["order_id"].encode(), value)]

    def _escalate(self, entry: ComplaintLedgerEntry, now: datetime) -> tuple[ComplaintLedgerEntry, list[Output]]:
        try:
            checked, raised = check_deadlines(entry, self._policy, self._calendar, now)
        except CalendarError as exc:
            log.warning("complaint_clock_unavailable", stage=self.stage, order_id=entry["order_id"], reason=str(exc))
            return entry, []
        return checked, [self._escalation(event) for event in raised]

    def _escalation(self, event: Escalation) -> Output:
        self._metrics.escalations.labels(event["utility_id"], event["reason"]).inc()
        log.info("complaint_escalated", stage=self.stage, order_id=event["order_id"], reason=event["reason"])
        return Output(self._escalations, event["order_id"].encode(), self._codec.encode("Escalation", dict(event)))

    def _keep(self, before: ComplaintLedgerEntry | None, entry: ComplaintLedgerEntry) -> None:
        if before is not None:
            self._metrics.orders.labels(before["utility_id"], state_of(before)).dec()
        self._metrics.orders.labels(entry["utility_id"], state_of(entry)).inc()
        self.orders[entry["order_id"]] = entry
        self._by_task[entry["task_id"]] = entry["order_id"]

    def _schedule(self, entry: ComplaintLedgerEntry) -> None:
        if self._clock != "wall":
            return
        try:
            due = next_check(entry, self._policy, self._calendar)
        except CalendarError:
            return
        if due is not None:
            heapq.heappush(self._due, (due, next(self._seq), entry["order_id"]))

    def _refresh_figures(self, now: datetime) -> None:
        """The overdue gauge and this month's satisfaction gauges, at most every few seconds (they read every order)."""
        wall = self._wall().timestamp()
        if wall < self._figures_at:
            return
        self._figures_at = wall + _FIGURES_EVERY_S
        clock = now if self._clock == "wall" else max((e["updated_at"] for e in self.orders.values()), default=now)
        overdue: dict[str, int] = {}
        for entry in self.orders.values():
            overdue[entry["utility_id"]] = overdue.get(entry["utility_id"], 0) + is_overdue(entry, clock)
        for utility, count in overdue.items():
            self._metrics.overdue.labels(utility).set(count)
        month = month_of(clock)
        visits = visits_of(self.orders.values())
        for gauge in (self._metrics.satisfaction, self._metrics.score, self._metrics.counted):
            gauge.clear()  # last month's groups must not linger once the month turns
        for level in ("utility", "district"):
            figures = monthly_figures(visits, self._satisfaction, by=level)
            for (figure_month, group), figure in figures.items():
                if figure_month != month or figure.rate is None or figure.score is None:
                    continue
                self._metrics.satisfaction.labels(level, group).set(figure.rate)
                self._metrics.score.labels(level, group).set(figure.score)
                self._metrics.counted.labels(level, group).set(figure.counted)
