"""Sink to one utility's business system: its own ``ubridge.tasks.<utility>.v1`` → ``POST /v1/tasks``.

Every utility runs its own sink with its own consumer group, HTTP client and retry state, so a utility
that is down holds back only its own tasks: the others' groups keep consuming. Within a batch, tasks of
different projects are delivered concurrently (``max_in_flight``) while each project's tasks go one after
another, in order, so one task stuck in retries does not hold up every other project. The sink reads only its
utility's topic; a task of another utility found there all the same is skipped (filtered ``other_utility``).
Each accepted task is reported on the task-status topic as ``RECEIVED`` (reporter ``sink``, carrying the task
with its revision), which opens the task's entry in the SLA ledger.

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

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import cast

import httpx
import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered, Outcome, Output, outcome_of
from connectors.runtime.metrics import Metrics
from connectors.runtime.trace_context import child, of_headers, trace_id, traced
from connectors.settings import UtilitySettings
from connectors.utility.client import UtilityClient
from connectors.utility.payload import task_body
from connectors.utility.revisions import RevisionReader, revision_key
from routing.errors import DataError
from routing.records import TaskStatus, UtilityTask
from routing.revisions import Revision, already_delivered, content_digest, encode_revision, next_revision
from schemas import Codec

log = structlog.get_logger(__name__)

_OTHER_UTILITY = Delivered(filtered_reason="other_utility")
_REPEATED = Delivered(filtered_reason="repeated_revision")
_Result = Outcome | StopRequested


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
        transport: Swap point for tests.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.stage = stage_name(settings.id)
        self.input_topics = (input_topic,)
        self.utility = settings.id
        self._status_topic = status_topic
        self._revisions_topic = revisions_topic
        self._reader = revisions
        # partition → task id → last revision; each task is touched by its own lane only
        self._revisions: dict[int, dict[str, Revision]] = {}
        self._codec = codec
        self._client = UtilityClient(settings, metrics=metrics, stop=stop, transport=transport)
        self._pool = ThreadPoolExecutor(max_workers=settings.max_in_flight, thread_name_prefix=self.stage)

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Deliver the batch, projects in parallel; outcomes come back in the records' order.

        Raises:
            StopRequested: at the first record shutdown interrupted; later ones stay uncommitted too.
        """
        lanes: dict[bytes | None, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            lanes[record.key].append(index)
        results: list[_Result | None] = [None] * len(records)
        futures = [self._pool.submit(self._lane, records, indexes, results) for indexes in lanes.values()]
        for future in futures:
            future.result()
        for result in results:
            if isinstance(result, StopRequested):
                raise result
            assert result is not None  # noqa: S101 - every index belongs to exactly one lane
            yield result

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Read the revisions of newly owned partitions before their first task."""
        numbers = sorted({tp.partition for tp in partitions if tp.partition not in self._revisions})
        if numbers:
            for partition, revisions in self._reader.read(numbers).items():
                self._revisions[partition] = revisions
                log.info("revisions_restored", stage=self.stage, partition=partition, tasks=len(revisions))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Forget the revisions of partitions given up; their next owner reads them back."""
        for tp in partitions:
            self._revisions.pop(tp.partition, None)

    def close(self) -> None:
        """Stop the workers and close the HTTP client."""
        self._pool.shutdown(wait=True)
        self._client.close()

    def _lane(self, records: Sequence[ConsumerRecord], indexes: list[int], results: list[_Result | None]) -> None:
        """One project's records, in order; after a shutdown interruption the rest are not attempted."""
        for position, index in enumerate(indexes):
            try:
                results[index] = outcome_of(self._deliver, records[index])
            except StopRequested as exc:
                for rest in indexes[position:]:
                    results[rest] = exc
                return

    def _deliver(self, record: ConsumerRecord) -> Delivered:
        task = cast(UtilityTask, self._codec.decode_as("UtilityTask", record.value))
        if task["utility_id"] != self.utility:
            return _OTHER_UTILITY
        known = self._revisions.setdefault(record.partition, {})
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
            retries = self._client.deliver(task_id, revision.number, task_body(task), traceparent=traceparent)
        except DataError:
            known[task_id] = revision  # a refused body keeps its key: the next change gets a new one
            raise
        known[task_id] = revision
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
