"""The one stage loop every consuming stage runs: consume → process → produce → commit.

Offsets are committed only after every output of the batch (dead letters included) is acknowledged, so a
crash at any point repeats records and never loses one. They are committed without waiting for the answer and
at most every :data:`COMMIT_EVERY_S` (the next commit covers one that failed): a synchronous commit per batch
cost 6 ms of waiting and 0.6 ms of CPU, more than a small batch's own work, at every hop of the pipeline. A crash
or a rebalance therefore repeats at most that long's records, which every stage takes idempotently as it
takes a crash's. SIGTERM sets ``stop``: the loop finishes the records it holds (a sink still retrying gives up
that record, uncommitted), commits synchronously, and returns.

Kafka going away is waited out: a commit that fails for want of a broker is retried with backoff until it
succeeds or the stage is stopped (then the batch stays uncommitted and is redone); a flush, a commit and the
clients' close never block longer than a few seconds, so a stop is prompt even with the broker down. A
record Kafka refused for good fails the stage, which its supervisor (:mod:`connectors.supervisor`) rebuilds
after a backoff; the batch is redone from the last commit.

With a :class:`~connectors.runtime.workers.WorkerPool` the loop pipelines: it polls the next batch while
workers transform earlier ones, and finishes batches strictly in poll order; a stop finishes and commits
every batch in the workers first. A rebalance can only happen inside ``poll``, and kafka-python runs its
listener on the client's I/O thread, where committing would deadlock; so records of revoked partitions
still in the workers are dropped instead, uncommitted, and their new owner processes them from the last
commit. kafka-python keeps the fetch position of a partition that is revoked and assigned straight back,
so such a partition is rewound to its first dropped record: no loss, and no repeat.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from connectors.runtime.dlq import dead_letter, error_class
from connectors.runtime.errors import RecordFailed, StopRequested
from connectors.runtime.interface import Delivered, Outcome, Output, Processor, StageState, Stateful, Ticking
from connectors.runtime.kafka import close_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.record_headers import described
from connectors.runtime.subscribe import subscribe
from connectors.runtime.trace_context import child, of_headers, trace_id, traced
from connectors.runtime.workers import PendingBatch, Timed, WorkerPool
from routing.errors import DataError
from schemas import Codec

log = structlog.get_logger(__name__)

_LAG_EVERY_S = 5.0
_TICK_EVERY_S = 1.0
_POLL_MS = 500
_PIPELINE_DEPTH = 2  # batches in the workers at once: one being transformed while the next is queued
_BLOCK_S = 5.0  # longest a commit attempt or a client's close may block (Kafka down)
_FLUSH_SLICE_S = 1.0  # a flush waits in slices, so that a stop is noticed
_COMMIT_BACKOFF_S = (0.5, 10.0)  # first and longest pause between commit attempts while Kafka is away
COMMIT_EVERY_S = 0.1  # a crash or a rebalance repeats what was handled since


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
        workers: Transform in these worker processes instead of the loop's thread (pure processors only);
            the loop closes the pool.
        paused: Whether the control topic pauses the stage now: its partitions are then paused (partitions
            assigned meanwhile too) while the loop goes on polling, so its group membership stays alive.
        warm_topics: Topics the stage writes whose metadata the producer fetches before the group is joined.
            kafka-python fetches a topic's metadata at its first send, one round trip per topic while the
            batch waits: a router's first records after a start waited 0.5-0.85 s for ten task topics.
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
        workers: WorkerPool | None = None,
        paused: Callable[[], bool] = lambda: False,
        warm_topics: Sequence[str] = (),
    ) -> None:
        self.processor = processor
        self._warm_topics = tuple(warm_topics)
        self.stage = processor.stage
        self._consumer = consumer
        self._producer = producer
        self._codec = Codec.default()
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
        self._workers = workers
        self._pending: deque[PendingBatch] = deque()
        self._dropped_from: dict[TopicPartition, int] = {}
        self._paused = paused
        self._holding = False
        self._to_commit: dict[TopicPartition, int] = {}  # acknowledged, not committed yet
        self._commit_every_s = COMMIT_EVERY_S
        self._next_commit_at = 0.0

    def run(self) -> None:
        """Consume until stopped; always closes the clients, the workers and the processor."""
        listener = _Rebalance(self.state, self.stage, self.processor, self._forget, self._assigned)
        self._warm()
        subscribe(self._consumer, self.processor.input_topics, listener=listener, stop=self._stop, stage=self.stage)
        self.state.started = True
        self._metrics.stage_up.labels(self.stage).set(1)
        workers = 0 if self._workers is None else self._workers.workers
        log.info("stage_started", stage=self.stage, topics=list(self.processor.input_topics), workers=workers)
        try:
            if self._workers is not None:
                self._workers.start()  # before the first poll joins the group: ready means workers up
            while not self._stop.is_set():
                self._follow_pause()
                if self._workers is None:
                    batch = self._consumer.poll(timeout_ms=_POLL_MS)
                    records = [r for part in batch.values() for r in part]
                    if records and not self._handle(records):
                        break
                else:
                    self._pipeline(self._workers)
                self._commit_due(force=False)
                self._tick()
                self._report_lag()
            self._finish_pending()
            self._commit_due(force=True)
        except Exception:
            self.state.failed = True
            log.exception("stage_failed", stage=self.stage)
            raise
        finally:
            self._metrics.stage_up.labels(self.stage).set(0)
            self._metrics.stage_paused.labels(self.stage).set(0)
            if self._workers is not None:
                self._workers.close()
            self.processor.close()
            self._consumer.close(autocommit=False, timeout_ms=int(_BLOCK_S * 1000))
            close_producer(self._producer, timeout_s=_BLOCK_S)
            log.info("stage_stopped", stage=self.stage)

    def _warm(self) -> None:
        """Fetch the metadata of ``warm_topics``; a topic it cannot learn of is named and left to the first send."""
        for topic in self._warm_topics:
            if self._stop.is_set():
                return
            try:
                self._producer.partitions_for(topic)
            except KafkaError as exc:
                log.warning("output_topic_unknown", stage=self.stage, topic=topic, error=type(exc).__name__)

    def _handle(self, records: list[ConsumerRecord]) -> bool:
        """Process, produce and commit one batch in this thread; False when shutdown interrupted it."""
        return self._deliver(records, self._timed(self.processor.process(records)))

    def _pipeline(self, workers: WorkerPool) -> None:
        """Poll one more batch into the workers, then finish every batch that is done, oldest first."""
        batch = self._consumer.poll(timeout_ms=0 if self._pending else _POLL_MS)
        records = [r for part in batch.values() for r in part]
        if records:
            self._pending.append(workers.submit(records))
        # Wait for the oldest only when there is nothing new to overlap it with, or the pipeline is full.
        while self._pending and (self._pending[0].done() or not records or len(self._pending) > _PIPELINE_DEPTH):
            self._finish(self._pending.popleft())

    def _finish_pending(self) -> None:
        while self._pending:
            self._finish(self._pending.popleft())

    def _finish(self, batch: PendingBatch) -> None:
        if not batch.revoked:
            self._deliver(batch.records, batch.results())
            return
        pairs = zip(batch.records, batch.results(), strict=True)
        kept = [(record, result) for record, result in pairs if not _revoked_in(record, batch)]
        log.info(
            "revoked_records_dropped",
            stage=self.stage,
            records=len(batch.records) - len(kept),
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in batch.revoked),
        )
        self._deliver([r for r, _ in kept], iter([result for _, result in kept]))

    def _forget(self, revoked: set[TopicPartition]) -> None:
        """Mark the records of ``revoked`` in the workers as not ours, and remember where they began.

        Their offsets not committed yet are not ours to commit either: their new owner repeats those records.
        Runs on the client's I/O thread while ``poll`` blocks this loop, so it must not block itself.
        """
        for tp in revoked:
            self._to_commit.pop(tp, None)
        for batch in self._pending:
            batch.revoked.update(revoked)
            for record in batch.records:
                tp = TopicPartition(record.topic, record.partition)
                if tp in revoked:
                    self._dropped_from.setdefault(tp, record.offset)

    def _follow_pause(self) -> None:
        """Pause or resume fetching when the control topic's word changed."""
        wanted = self._paused()
        if wanted == self._holding:
            return
        self._holding = wanted
        self._metrics.stage_paused.labels(self.stage).set(1 if wanted else 0)
        if wanted:
            self._consumer.pause(*self._consumer.assignment())
        else:
            self._consumer.resume(*self._consumer.paused())
        log.info("stage_paused" if wanted else "stage_resumed", stage=self.stage)

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        """Rewind what the workers dropped; a partition assigned while the stage is paused is paused too."""
        self._rewind(assigned)
        if self._holding:
            self._consumer.pause(*assigned)

    def _rewind(self, assigned: set[TopicPartition]) -> None:
        """Seek each partition assigned straight back to its first dropped record (an in-memory seek)."""
        for tp in assigned & self._dropped_from.keys():
            self._consumer.seek(tp, self._dropped_from[tp])
            log.info("partition_rewound", stage=self.stage, partition=f"{tp.topic}:{tp.partition}")
        self._dropped_from.clear()

    @staticmethod
    def _timed(outcomes: Iterable[Outcome]) -> Iterator[Timed]:
        """Each outcome with the seconds the processor took for it alone."""
        pending = iter(outcomes)
        while True:
            started = time.perf_counter()
            outcome = next(pending, None)
            if outcome is None:
                return
            yield outcome, time.perf_counter() - started

    def _deliver(self, records: list[ConsumerRecord], results: Iterator[Timed]) -> bool:
        """Produce each record's outputs, flush, then commit; False when shutdown interrupted the batch."""
        done: dict[TopicPartition, int] = {}
        futures: list[FutureRecordMetadata] = []
        finished = True
        try:
            for record, (outcome, seconds) in zip(records, results, strict=False):
                futures.extend(self._emit(record, outcome))
                done[TopicPartition(record.topic, record.partition)] = record.offset + 1
                self._processing.observe(seconds)
        except StopRequested:
            finished = False
        if not self._flush():
            return False
        for future in futures:
            future.get(timeout=0)  # raises if the broker refused it: the batch stays uncommitted
        self._to_commit.update(done)
        return finished

    def _flush(self) -> bool:
        """Wait for the producer's acknowledgements; False when a stop came first (nothing is committed)."""
        while True:
            try:
                self._producer.flush(timeout=_FLUSH_SLICE_S)
            except KafkaTimeoutError:
                if self._stop.is_set():
                    log.warning("flush_abandoned_on_stop", stage=self.stage)
                    return False
                continue
            return True

    def _commit_due(self, *, force: bool) -> None:
        """Commit what was acknowledged: synchronously when ``force`` (stop), else if the last was long enough ago."""
        if not self._to_commit:
            return
        if force:
            self._commit(self._to_commit)
        elif (now := time.monotonic()) >= self._next_commit_at:
            self._next_commit_at = now + self._commit_every_s
            offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._to_commit.items()}
            self._consumer.commit_async(offsets, callback=self._committed)
        else:
            return
        self._to_commit = {}

    def _committed(self, offsets: dict[TopicPartition, OffsetAndMetadata], response: object) -> None:
        """An asynchronous commit's answer (on the client's I/O thread): a failure waits for the next one."""
        if isinstance(response, Exception):
            log.info("commit_deferred", stage=self.stage, error=type(response).__name__, partitions=len(offsets))

    def _commit(self, done: dict[TopicPartition, int]) -> None:
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()}
        pause, longest = _COMMIT_BACKOFF_S
        while True:
            try:
                self._consumer.commit(offsets, timeout_ms=int(_BLOCK_S * 1000))
            except CommitFailedError as exc:
                # The batch outlived max.poll.interval.ms (a utility down for long) and the group moved on. The
                # records stay uncommitted and come back after the rejoin: re-delivered, idempotently.
                log.warning("commit_failed_after_rebalance", stage=self.stage, error=str(exc))
            except KafkaError as exc:
                self.state.ready = False
                log.warning("commit_retried", stage=self.stage, error=type(exc).__name__, retry_in_s=pause)
                if self._stop.wait(pause):
                    log.warning("commit_abandoned_on_stop", stage=self.stage)
                    return
                pause = min(longest, pause * 2)
                continue
            self.state.ready = True
            return

    def _emit(self, record: ConsumerRecord, outcome: Delivered | DataError) -> list[FutureRecordMetadata]:
        self._records_in.inc()
        parent = of_headers(record.headers)
        if isinstance(outcome, DataError):
            failure = error_class(outcome)
            self._metrics.records_dead_lettered.labels(self.stage, failure).inc()
            if isinstance(outcome, RecordFailed):
                self._metrics.records_failed.labels(self.stage, failure).inc()
            log.log(
                logging.ERROR if isinstance(outcome, RecordFailed) else logging.WARNING,
                "record_dead_lettered",
                stage=self.stage,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error_class=failure,
                field=outcome.field,
                reason=outcome.reason,
                trace_id=trace_id(parent),
            )
            now = datetime.now(UTC)
            return [self._send(dead_letter(record, outcome, stage=self.stage, topic=self._dlq_topic, now=now))]
        for field, kind in outcome.repairs:
            self._metrics.records_repaired.labels(self.stage, field, kind).inc()
        if outcome.filtered_reason is not None:
            self._metrics.records_filtered.labels(self.stage, outcome.filtered_reason).inc()
            log.debug(
                "record_filtered",
                stage=self.stage,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                reason=outcome.filtered_reason,
                trace_id=trace_id(parent),
            )
            return [self._send(_child_of(output, parent)) for output in outcome.outputs]
        # A sink's outcome has no outputs: the record itself went out, to the utility.
        self._records_out.inc(len(outcome.outputs) or 1)
        return [self._send(_child_of(output, parent)) for output in outcome.outputs]

    def _send(self, output: Output) -> FutureRecordMetadata:
        output = described(output, self._codec)
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


def _revoked_in(record: ConsumerRecord, batch: PendingBatch) -> bool:
    return TopicPartition(record.topic, record.partition) in batch.revoked


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the stage ready once its consumer joined the group, and moves a stateful processor's state."""

    def __init__(
        self,
        state: StageState,
        stage: str,
        processor: Processor,
        forget: Callable[[set[TopicPartition]], None],
        assigned: Callable[[set[TopicPartition]], None],
    ) -> None:
        self._state = state
        self._stage = stage
        self._processor = processor
        self._forget = forget
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Records of ``revoked`` still in the workers are dropped; a stateful processor's state moves."""
        self._forget(set(revoked))
        if isinstance(self._processor, Stateful):
            self._processor.on_revoked(list(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """The group is joined (with or without partitions for us)."""
        self._assigned(set(assigned))
        if isinstance(self._processor, Stateful):
            self._processor.on_assigned(list(assigned))
        self._state.ready = True
        log.info("partitions_assigned", stage=self._stage, partitions=sorted(tp.partition for tp in assigned))


def _child_of(output: Output, parent: bytes | None) -> Output:
    """``output`` in its input's trace, unless the processor placed it in one itself (the sink does)."""
    if of_headers(output.headers) is not None:
        return output
    # built field by field: dataclasses.replace introspects the class on every call, and this runs per record
    return Output(output.topic, output.key, output.value, traced(output.headers, child(parent)), output.partition)
