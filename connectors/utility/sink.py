"""Sink to one utility's business system: its own ``ubridge.tasks.<utility>.v1`` → ``POST /v1/tasks``.

Every utility runs its own sink with its own consumer group, HTTP client and retry state, so a utility that is
down holds back only its own tasks: the others' groups keep consuming. Tasks of different projects are
delivered concurrently (``max_in_flight`` requests, aiohttp, :mod:`connectors.utility.lanes`) while each
project's tasks go one after another, in order, so one task stuck in retries does not hold up every other
project; the stage runs pipelined (:mod:`connectors.utility.pipeline`), so neither does it hold up later
polls. The sink reads only its utility's topic; a task of another utility found there all the same is skipped
(filtered ``other_utility``). Each accepted task is reported on the task-status topic as ``RECEIVED``
(reporter ``sink``, carrying the task with its revision), which opens the task's entry in the SLA ledger.

Revisions (:mod:`routing.revisions`): the sink numbers what it delivers. A task whose content differs from
the revision last delivered is sent as the next revision, with ``Idempotency-Key: <task id>:<revision>``;
one whose content is the same, or a record read again at or below the offset of the last revision, is a
repeat and is filtered (``repeated_revision``) without a request. The
last revision of each task is kept in memory for the owned partitions and written, after the utility
accepted it, to the compacted revision topic (:mod:`connectors.utility.revisions`) in the task's partition;
on assignment the sink reads it back, so numbers are stable across restarts, rebalances and reprocessing.
A revision the utility refused keeps its number in this process (the next change gets a new one); after a
restart a refused, dead-lettered revision's number may be given to the next change.

Example:
    >>> sink = UtilitySink(settings.utilities[0], input_topic="ubridge.tasks.yantai-water.v1",
    ...                    status_topic="ubridge.task-status.v1", codec=Codec.default(), metrics=metrics, stop=stop)
"""

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import RecordFailed, RetriableError, StopRequested
from connectors.runtime.interface import RECORD_ATTEMPTS, Delivered, Outcome, Output
from connectors.runtime.metrics import Metrics
from connectors.runtime.trace_context import child, of_headers, trace_id, traced
from connectors.settings import UtilitySettings
from connectors.utility.client import UtilityClient
from connectors.utility.lanes import Done, Lanes, Pending
from connectors.utility.payload import task_body
from connectors.utility.revisions import RevisionReader, revision_key
from routing.errors import DataError
from routing.records import TaskStatus, UtilityTask
from routing.revisions import Revision, already_delivered, content_digest, encode_revision, next_revision
from schemas import Codec

log = structlog.get_logger(__name__)

_OTHER_UTILITY = Delivered(filtered_reason="other_utility")
_REPEATED = Delivered(filtered_reason="repeated_revision")
_RECORD_BACKOFF_S = 0.1


def stage_name(utility_id: str) -> str:
    """The stage (and consumer group suffix) of a utility's sink."""
    return f"sink-{utility_id}"


class UtilitySink:
    """Delivers the tasks addressed to one utility, in order per project, each change as a new revision.

    Args:
        settings: The utility.
        input_topic: The utility's task topic.
        status_topic: Where ``RECEIVED`` goes.
        revisions_topic: The compacted revision topic, co-partitioned with ``input_topic``.
        revisions: Reads it back on assignment.
        codec: Avro codec.
        metrics: Process metrics.
        stop: Shutdown.
    """

    def __init__(
        self,
        settings: UtilitySettings,
        *,
        input_topic: str,
        status_topic: str,
        revisions_topic: str,
        revisions: RevisionReader,
        codec: Codec,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        self.stage = stage_name(settings.id)
        self.input_topics = (input_topic,)
        self.utility = settings.id
        self._status_topic = status_topic
        self._revisions_topic = revisions_topic
        self._reader = revisions
        # partition → task id → last revision; each task is touched by its own lane only (a task's key is its
        # project's, so one lane)
        self._revisions: dict[int, dict[str, Revision]] = {}
        self._codec = codec
        client = UtilityClient(settings, metrics=metrics, stop=stop)
        self._client = client
        self.max_in_flight = settings.max_in_flight
        self._lanes = Lanes(self._handle, closing=client.close)
        self._revoked: set[int] = set()  # partitions given up and not assigned back: their lanes stop

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Deliver the batch, projects in parallel; outcomes come back in the records' order.

        The stage itself runs the sink pipelined (:class:`connectors.utility.pipeline.SinkLoop` hands records
        to :meth:`submit` as it polls them); this batch form serves a plain stage loop.

        Raises:
            StopRequested: at the first record shutdown interrupted; later ones stay uncommitted too.
        """
        pending = [Pending(record) for record in records]
        self.submit(pending, done=lambda _: None)
        self._lanes.run_until_idle()
        for item in pending:
            if isinstance(item.result, StopRequested):
                raise item.result
            if isinstance(item.result, Exception) and not isinstance(item.result, DataError):
                raise item.result
            assert item.result is not None  # noqa: S101 - every pending record was handled
            yield item.result

    def submit(self, pending: Sequence[Pending], *, done: Done) -> None:
        """Queue ``pending`` for delivery, each behind the earlier records of its project; ``done`` gets each.

        Deliveries progress while :meth:`run_for` runs. ``done`` is called with the record's result set: an
        outcome, or ``StopRequested`` (shutdown, or its partition was revoked), or the error that must fail
        the stage.
        """
        self._lanes.submit(pending, done=done)

    @property
    def busy(self) -> bool:
        """Whether deliveries are under way."""
        return self._lanes.busy

    def run_for(self, seconds: float) -> None:
        """Deliver for ``seconds`` (less once nothing is left to deliver)."""
        self._lanes.run_for(seconds)

    def run_until_idle(self) -> None:
        """Deliver until everything submitted was handled (a shutdown makes that quick)."""
        self._lanes.run_until_idle()

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Read the revisions of newly owned partitions before their first task."""
        numbers = sorted({tp.partition for tp in partitions if tp.partition not in self._revisions})
        self._revoked.difference_update(numbers)
        if numbers:
            for partition, revisions in self._reader.read(numbers).items():
                self._revisions[partition] = revisions
                log.info("revisions_restored", stage=self.stage, partition=partition, tasks=len(revisions))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Forget the revisions of partitions given up; their next owner reads them back."""
        for tp in partitions:
            self._revisions.pop(tp.partition, None)
            self._revoked.add(tp.partition)

    def close(self, *, wait: bool = True) -> None:
        """Finish the deliveries under way (or, not ``wait``-ing, abandon them) and close the HTTP client."""
        self._lanes.close(wait=wait)

    async def _handle(self, record: ConsumerRecord) -> Outcome:
        """What became of one record, as :func:`~connectors.runtime.interface.outcome_of` has it."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                return await self._deliver(record)
            except DataError as exc:
                return exc
            except (RetriableError, StopRequested):
                raise
            except Exception as exc:  # containing the unforeseen is the point
                if attempt == RECORD_ATTEMPTS:
                    reason = f"{type(exc).__name__}: {exc} (failed {attempt} times)"
                    return RecordFailed(type(exc).__name__, reason)
                await asyncio.sleep(_RECORD_BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError  # pragma: no cover - the last attempt returns

    async def _deliver(self, record: ConsumerRecord) -> Delivered:
        task = cast(UtilityTask, self._codec.decode_as("UtilityTask", record.value))
        if task["utility_id"] != self.utility:
            return _OTHER_UTILITY
        known = self._known(record.partition)
        task_id = task["task_id"]
        last = known.get(task_id)
        revision = (
            None if already_delivered(last, record.offset) else next_revision(last, content_digest(task), record.offset)
        )
        if revision is None:
            return _REPEATED
        task = task.copy()
        task["revision"] = revision.number
        traceparent = child(of_headers(record.headers))
        try:
            retries = await self._client.deliver(task_id, revision.number, task_body(task), traceparent=traceparent)
        except DataError:
            self._remember(record.partition, known, task_id, revision)  # a refused body keeps its key
            raise
        self._remember(record.partition, known, task_id, revision)
        log.info(
            "task_delivered",
            utility=self.utility,
            task_id=task_id,
            revision=revision.number,
            kind=task["kind"],
            action=task["action"],
            retries=retries,
            partition=record.partition,
            offset=record.offset,
            trace_id=trace_id(traceparent),
        )
        stored = Output(
            self._revisions_topic,
            revision_key(self.utility, task_id),
            encode_revision(revision),
            partition=record.partition,
        )
        return Delivered(outputs=(self._received(task, traceparent), stored))

    def _known(self, partition: int) -> dict[str, Revision]:
        """The revisions of ``partition``, which must still be this sink's (lanes outlive a poll)."""
        known = self._revisions.get(partition)
        if known is not None:
            return known
        if partition in self._revoked:
            message = f"partition {partition} was revoked"
            raise StopRequested(message)
        return self._revisions.setdefault(partition, {})

    def _remember(self, partition: int, known: dict[str, Revision], task_id: str, revision: Revision) -> None:
        # A delivery that outlived a revocation must not write into the state read back on reassignment: the
        # record is redone from the last commit and numbered from the revision topic again.
        if self._revisions.get(partition) is known:
            known[task_id] = revision

    def _received(self, task: UtilityTask, traceparent: str) -> Output:
        now = datetime.now(UTC)
        status: TaskStatus = {
            "task_id": task["task_id"],
            "utility_id": self.utility,
            "application_id": task["application_id"],
            "stage": "RECEIVED",
            "occurred_at": now,
            "reported_at": now,
            "pipe_length_m": None,
            "reason": None,
            "detail": None,
            "reporter": "sink",
            "task": task,
        }
        value = self._codec.encode("TaskStatus", dict(status))
        # the same span as the request the utility received: its callbacks may continue it
        return Output(self._status_topic, task["task_id"].encode(), value, headers=traced((), traceparent))
