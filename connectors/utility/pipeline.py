"""The sink's stage loop, pipelined: it keeps polling while deliveries are on the wire.

The plain stage loop (:mod:`connectors.runtime.stage`) handles a batch and flushes it before it polls
again, so every batch waits for its slowest delivery. Here each polled record joins its key's lane
(:mod:`connectors.utility.lanes`) at once, the deliveries progress for a couple of milliseconds on the lanes'
event loop in this same thread, and the loop polls again; a project's next task waits only for that project's
previous one. Offsets are committed as the plain loop commits them: at most every 100 ms without waiting for
the answer (the next commit covers one that failed), and on stop synchronously. What each record became is
produced as soon as it is known (status, revision, dead letter), and per partition the offset committed is that
of the first record not yet fully handled: delivered or dead-lettered, and its outputs acknowledged by Kafka. So
a crash repeats work and never loses it, exactly as with the plain loop.

At most ``max_pending`` records are held: beyond that the assigned partitions are paused (the loop still
polls, so the group membership stays alive) until the lanes catch up. SIGTERM: polling stops, deliveries
on the wire finish, a delivery still retrying gives up (its record and every later one of its partition stay
uncommitted), the outputs are flushed and the handled prefix of each partition committed.

A rebalance can only happen inside ``poll``: the records of revoked partitions are withdrawn (those not yet
started are skipped, those on the wire are forgotten when they finish) and a partition assigned straight
back is rewound to its first record not handled.
"""

import threading
from collections import deque
from collections.abc import Callable

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import StageState
from connectors.runtime.kafka import close_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop, _Rebalance
from connectors.runtime.subscribe import subscribe
from connectors.utility.lanes import Pending
from connectors.utility.sink import UtilitySink
from routing.errors import DataError

log = structlog.get_logger(__name__)

_POLL_MS = 500
_SLICE_S = 0.002  # deliveries progress for this long between polls
_ACKS_POLL_MS = 10
_PENDING_PER_LANE = 64


class SinkLoop(StageLoop):
    """Runs a :class:`UtilitySink` pipelined until ``stop`` is set.

    Args:
        sink: The utility's sink.
        consumer: Unsubscribed consumer of the sink's group.
        producer: Status and revision records and dead letters.
        dlq_topic: The sink's dead-letter topic.
        metrics: Process metrics.
        stop: Set to ask the loop to finish and return.
        state: Updated for the health endpoint.
        paused: Whether the control topic pauses the stage now.
        max_pending: Records held at most; by default 64 per lane of the sink.
    """

    def __init__(
        self,
        sink: UtilitySink,
        *,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        dlq_topic: str,
        metrics: Metrics,
        stop: threading.Event,
        state: StageState | None = None,
        paused: Callable[[], bool] = lambda: False,
        max_pending: int | None = None,
    ) -> None:
        super().__init__(
            sink,
            consumer=consumer,
            producer=producer,
            dlq_topic=dlq_topic,
            metrics=metrics,
            stop=stop,
            state=state,
            paused=paused,
        )
        self._sink = sink
        self._max_pending = max_pending or _PENDING_PER_LANE * sink.max_in_flight
        self._finished: list[Pending] = []
        # per partition, every record polled and not yet committed, in offset order
        self._held: dict[TopicPartition, deque[Pending]] = {}
        self._full = False

    def run(self) -> None:
        """Consume until stopped; always closes the clients and the sink."""
        listener = _Rebalance(self.state, self.stage, self.processor, self._forget, self._assigned)
        subscribe(self._consumer, self.processor.input_topics, listener=listener, stop=self._stop, stage=self.stage)
        self.state.started = True
        self._metrics.stage_up.labels(self.stage).set(1)
        log.info("stage_started", stage=self.stage, topics=list(self.processor.input_topics), pipelined=True)
        try:
            while not self._stop.is_set():
                self._follow_pause()
                self._follow_load()
                batch = self._consumer.poll(timeout_ms=self._poll_ms())
                records = [r for part in batch.values() for r in part]
                if records:
                    self._hand_in(records)
                self._sink.run_for(_SLICE_S)
                self._take_finished()
                self._commit_handled(force=False)
                self._report_lag()
            self._drain()
        except Exception:
            self.state.failed = True
            log.exception("stage_failed", stage=self.stage)
            raise
        finally:
            self._metrics.stage_up.labels(self.stage).set(0)
            self._metrics.stage_paused.labels(self.stage).set(0)
            # after a failure the lanes may hold a delivery in endless retries: nothing waits for them then
            for held in self._held.values():
                for item in held:
                    item.withdrawn = True
            self._sink.close(wait=not self.state.failed)
            self._consumer.close(autocommit=False, timeout_ms=5000)
            close_producer(self._producer, timeout_s=5)
            log.info("stage_stopped", stage=self.stage)

    def _poll_ms(self) -> int:
        if self._sink.busy:
            return 0  # the deliveries progress only between polls
        if any(self._held.values()):
            return _ACKS_POLL_MS  # outputs await their acknowledgements, to be committed
        return _POLL_MS

    def _hand_in(self, records: list[ConsumerRecord]) -> None:
        pending = [Pending(record) for record in records]
        for item in pending:
            tp = TopicPartition(item.record.topic, item.record.partition)
            self._held.setdefault(tp, deque()).append(item)
        self._sink.submit(pending, done=self._finished.append)

    def _take_finished(self) -> None:
        """Produce the outputs of every record whose result came back."""
        for item in self._finished:
            self._settle(item)
        self._finished.clear()  # the lanes append to this very list

    def _settle(self, item: Pending) -> None:
        result = item.result
        if item.withdrawn or isinstance(result, StopRequested):
            return  # not ours any more, or interrupted: it stays uncommitted
        if result is None:
            message = f"record {item.record.partition}:{item.record.offset} came back without a result"
            raise RuntimeError(message)
        if isinstance(result, Exception) and not isinstance(result, DataError):
            raise result
        item.acks = self._emit(item.record, result)
        self._processing.observe(item.seconds)

    def _commit_handled(self, *, force: bool) -> None:
        """Advance each partition past its handled prefix; commit now and then (always when ``force``)."""
        for tp, held in self._held.items():
            while held and _handled(held[0]):
                self._to_commit[tp] = held.popleft().record.offset + 1
        self._commit_due(force=force)

    def _follow_load(self) -> None:
        """Pause fetching while ``max_pending`` records are held, resume once the lanes caught up."""
        if sum(len(held) for held in self._held.values()) >= self._max_pending:
            self._consumer.pause(*self._consumer.assignment())  # again each time: partitions may have come
            self._full = True
        elif self._full:
            self._full = False
            if not self._holding:
                self._consumer.resume(*self._consumer.paused())

    def _drain(self) -> None:
        """On stop: let the lanes finish (retries give up), produce what came back, flush, commit."""
        self._sink.run_until_idle()
        self._take_finished()
        if self._flush():
            self._commit_handled(force=True)

    def _forget(self, revoked: set[TopicPartition]) -> None:
        """Withdraw the records of ``revoked`` and remember the first of each partition not handled.

        Runs inside ``poll``, while this loop waits for it.
        """
        for tp in revoked:
            held = self._held.pop(tp, deque())
            self._to_commit.pop(tp, None)
            for item in held:
                item.withdrawn = True
            if held:
                self._dropped_from.setdefault(tp, held[0].record.offset)


def _handled(item: Pending) -> bool:
    """Delivered or dead-lettered, and every output acknowledged (a refused output fails the stage)."""
    if item.acks is None:
        return False  # not back yet, or interrupted
    for ack in item.acks:
        if not ack.is_done:
            return False
        if ack.failed():
            raise ack.exception
    return True
