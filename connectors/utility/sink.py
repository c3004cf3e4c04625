"""Sink to one utility's business system: ``ubridge.tasks.v1`` → ``POST /v1/tasks``.

Every utility runs its own sink with its own consumer group, HTTP client and retry state, so a utility
that is down holds back only its own tasks: the others' groups keep consuming. Within a batch, tasks of
different projects are delivered concurrently (``max_in_flight``) while each project's tasks go one after
another, in order, so one task stuck in retries does not hold up every other project. Tasks for other
utilities are skipped (filtered, counted). Delivery is idempotent by task id. Each accepted task is
reported on the task-status topic as ``RECEIVED`` (reporter ``sink``, carrying the task), which opens the
task's entry in the SLA ledger.

Example:
    >>> sink = UtilitySink(settings.utilities[0], input_topic="ubridge.tasks.v1",
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
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered, Outcome, Output, outcome_of
from connectors.runtime.metrics import Metrics
from connectors.settings import UtilitySettings
from connectors.utility.client import UtilityClient
from connectors.utility.payload import task_body
from routing.records import TaskStatus, UtilityTask
from schemas import Codec

log = structlog.get_logger(__name__)

_OTHER_UTILITY = Delivered(filtered_reason="other_utility")
_Result = Outcome | StopRequested


def stage_name(utility_id: str) -> str:
    """The stage (and consumer group suffix) of a utility's sink."""
    return f"sink-{utility_id}"


class UtilitySink:
    """Delivers the tasks addressed to one utility, in order per project."""

    def __init__(
        self,
        settings: UtilitySettings,
        *,
        input_topic: str,
        status_topic: str,
        codec: Codec,
        metrics: Metrics,
        stop: threading.Event,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.stage = stage_name(settings.id)
        self.input_topics = (input_topic,)
        self.utility = settings.id
        self._status_topic = status_topic
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
        retries = self._client.deliver(task["task_id"], task_body(task))
        log.info(
            "task_delivered",
            utility=self.utility,
            task_id=task["task_id"],
            kind=task["kind"],
            action=task["action"],
            retries=retries,
            partition=record.partition,
            offset=record.offset,
        )
        return Delivered(outputs=(self._received(task),))

    def _received(self, task: UtilityTask) -> Output:
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
        return Output(self._status_topic, task["task_id"].encode(), value)
