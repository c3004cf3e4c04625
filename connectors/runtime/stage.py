"""The one stage loop every consuming stage runs: consume → process → produce → commit.

Offsets are committed only after every output of the batch (dead letters included) is acknowledged, so a
crash at any point repeats records and never loses one. SIGTERM sets ``stop``: the loop finishes the
records it holds (a sink still retrying gives up that record, uncommitted), commits, and returns.
"""

import threading
import time
from datetime import UTC, datetime

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from kafka.producer.future import FutureRecordMetadata

from connectors.runtime.dlq import dead_letter
from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered, Output, Processor, StageState, Stateful, Ticking
from connectors.runtime.metrics import Metrics
from routing.errors import DataError

log = structlog.get_logger(__name__)

_LAG_EVERY_S = 5.0
_TICK_EVERY_S = 1.0
_POLL_MS = 500


class StageLoop:
    """Runs one :class:`Processor` against its own consumer group until ``stop`` is set.

    Args:
        processor: What to do with each record.
        consumer: Unsubscribed consumer of the stage's group (the loop subscribes it).
        producer: Shared by outputs and dead letters.
        dlq_topic: The stage's dead-letter topic.
        metrics: Process metrics.
        stop: Set to ask the loop to finish and return.
        state: Updated for the health endpoint.
    """

    def __init__(
        self,
        processor: Processor,
        *,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        dlq_topic: str,
        metrics: Metrics,
        stop: threading.Event,
        state: StageState | None = None,
    ) -> None:
        self.processor = processor
        self.stage = processor.stage
        self._consumer = consumer
        self._producer = producer
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._stop = stop
        self.state = state or StageState()
        # Labelled children resolved once: label lookup per record would cost as much as a small stage.
        self._records_in = metrics.records_in.labels(self.stage)
        self._records_out = metrics.records_out.labels(self.stage)
        self._processing = metrics.processing_seconds.labels(self.stage)
        self._next_lag_at = 0.0
        self._next_tick_at = 0.0

    def run(self) -> None:
        """Consume until stopped; always closes the clients and the processor."""
        listener = _Rebalance(self.state, self.stage, self.processor)
        self._consumer.subscribe(list(self.processor.input_topics), listener=listener)
        self.state.started = True
        self._metrics.stage_up.labels(self.stage).set(1)
        log.info("stage_started", stage=self.stage, topics=list(self.processor.input_topics))
        try:
            while not self._stop.is_set():
                batch = self._consumer.poll(timeout_ms=_POLL_MS)
                records = [r for part in batch.values() for r in part]
                if records and not self._handle(records):
                    break
                self._tick()
                self._report_lag()
        except Exception:
            self.state.failed = True
            log.exception("stage_failed", stage=self.stage)
            raise
        finally:
            self._metrics.stage_up.labels(self.stage).set(0)
            self.processor.close()
            self._consumer.close(autocommit=False)
            self._producer.close()
            log.info("stage_stopped", stage=self.stage)

    def _handle(self, records: list[ConsumerRecord]) -> bool:
        """Process, produce and commit one batch; False when shutdown interrupted it."""
        done: dict[TopicPartition, int] = {}
        futures: list[FutureRecordMetadata] = []
        finished = True
        outcomes = self.processor.process(records)
        started = time.perf_counter()
        try:
            for record, outcome in zip(records, outcomes, strict=False):
                futures.extend(self._emit(record, outcome))
                done[TopicPartition(record.topic, record.partition)] = record.offset + 1
                now = time.perf_counter()
                self._processing.observe(now - started)
                started = now
        except StopRequested:
            finished = False
        self._producer.flush()
        for future in futures:
            future.get(timeout=0)  # raises if the broker refused it: the batch stays uncommitted
        if done:
            self._commit(done)
        return finished

    def _commit(self, done: dict[TopicPartition, int]) -> None:
        try:
            self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()})
        except CommitFailedError as exc:
            # The batch outlived max.poll.interval.ms (a utility down for long) and the group moved on. The
            # records stay uncommitted and come back after the rejoin: re-delivered, idempotently.
            log.warning("commit_failed_after_rebalance", stage=self.stage, error=str(exc))

    def _emit(self, record: ConsumerRecord, outcome: Delivered | DataError) -> list[FutureRecordMetadata]:
        self._records_in.inc()
        if isinstance(outcome, DataError):
            self._metrics.records_dead_lettered.labels(self.stage, type(outcome).__name__).inc()
            log.warning(
                "record_dead_lettered",
                stage=self.stage,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                field=outcome.field,
                reason=outcome.reason,
            )
            now = datetime.now(UTC)
            return [self._send(dead_letter(record, outcome, stage=self.stage, topic=self._dlq_topic, now=now))]
        if outcome.filtered_reason is not None:
            self._metrics.records_filtered.labels(self.stage, outcome.filtered_reason).inc()
            return [self._send(output) for output in outcome.outputs]
        # A sink's outcome has no outputs: the record itself went out, to the utility.
        self._records_out.inc(len(outcome.outputs) or 1)
        return [self._send(output) for output in outcome.outputs]

    def _send(self, output: Output) -> FutureRecordMetadata:
        return self._producer.send(
            output.topic, key=output.key, value=output.value, headers=list(output.headers), partition=output.partition
        )

    def _tick(self) -> None:
        if not isinstance(self.processor, Ticking):
            return
        now = time.monotonic()
        if now < self._next_tick_at:
            return
        self._next_tick_at = now + _TICK_EVERY_S
        futures = [self._send(output) for output in self.processor.tick(datetime.now(UTC))]
        if futures:
            self._producer.flush()
            for future in futures:
                future.get(timeout=0)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + _LAG_EVERY_S
        lag = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - self._consumer.position(tp))
        self._metrics.consumer_lag.labels(self.stage).set(lag)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the stage ready once its consumer joined the group, and moves a stateful processor's state."""

    def __init__(self, state: StageState, stage: str, processor: Processor) -> None:
        self._state = state
        self._stage = stage
        self._processor = processor

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Every batch is committed before the next poll, where revocation happens: only state moves."""
        if isinstance(self._processor, Stateful):
            self._processor.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """The group is joined (with or without partitions for us)."""
        if isinstance(self._processor, Stateful):
            self._processor.on_assigned(assigned)
        self._state.ready = True
        log.info("partitions_assigned", stage=self._stage, partitions=sorted(tp.partition for tp in assigned))
