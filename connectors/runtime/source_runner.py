"""Runs a :class:`Source`: poll from the cursor, write the records and the new cursor in one transaction.

The cursor lives on a compacted topic keyed by source name (as Kafka Connect keeps source offsets), and
is written in the same Kafka transaction as the records it covers: after a crash the last committed
cursor is exactly the last committed batch, so a restart resumes with nothing lost and nothing emitted
twice. Consumers of raw topics read with ``isolation_level=read_committed``. A Kafka error (broker gone,
producer fenced) fails the runner; its supervisor rebuilds it after a backoff, and the new transactional
producer resumes from the committed cursor.

Between polls a source never sleeps while there is work: a poll that filled its page polls again at once;
after an empty poll the wait doubles from 50 ms to the configured interval (:mod:`connectors.runtime.idle`).
A source that can answer "anything new?" cheaply (:class:`~connectors.runtime.interface.Probing`) is asked
every ``probe_interval_s`` instead, and polled in full when it says yes or the interval is over; after a poll
that found rows it is asked again at once, then 10, 20, 40 ms later, doubling up to ``probe_interval_s``.
"""

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from connectors.runtime.dlq import source_dead_letter
from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.idle import idle_wait_s
from connectors.runtime.interface import Output, Probing, Source, StageState
from connectors.runtime.kafka import close_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.record_headers import described
from connectors.runtime.trace_context import new_trace, of_headers, traced
from connectors.settings import RetrySettings
from routing.errors import DataError
from schemas import Codec

log = structlog.get_logger(__name__)

_CLOSE_S = 5.0  # longest the producer's close may wait for the broker (a stop must be prompt)
_QUICK_PROBE_S = 0.01  # the first wait between probes after a poll that found rows
# Kafka's defaults refuse a record over about 1 MiB (the producer's max.request.size, the broker's
# message.max.bytes); inside a transaction one such record would abort the batch, every time, forever.
DEFAULT_MAX_RECORD_BYTES = 1_000_000
_KEPT_BYTES = 64 * 1024  # how much of an oversized record its dead letter keeps
_SHOWN_CURSOR = 200  # a cursor's characters a log line carries (an SPGL cursor holds thousands of identities)


def read_cursor(consumer: KafkaConsumer, topic: str, source: str) -> str | None:
    """The last committed cursor of ``source`` on the offsets topic, or None when it never committed."""
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    cursor: str | None = None
    key = source.encode()
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                if record.key == key and record.value is not None:
                    cursor = json.loads(record.value)["cursor"]
    return cursor


class SourceRunner:
    """Polls one source until ``stop`` is set.

    Args:
        source: The connector.
        producer: A transactional producer whose id is unique to this source, so that a zombie
            instance of the same source is fenced off by the broker.
        offsets_topic: Compacted topic holding cursors.
        poll_interval_s: The longest pause between polls when the source has nothing new.
        probe_interval_s: How often a :class:`Probing` source is asked whether it has news (None: never).
        retry: Backoff after a retriable failure.
        metrics: Process metrics.
        stop: Set to ask the runner to return.
        start_cursor: The cursor to resume from (see :func:`read_cursor`).
        dlq_topic: Where a record too large for Kafka goes instead (its first 64 KiB and the reason).
        max_record_bytes: The largest record the cluster takes.
        state: Updated for the health endpoint.
        paused: Whether the control topic pauses the source now (it is then not polled).
    """

    def __init__(
        self,
        source: Source,
        *,
        producer: KafkaProducer,
        offsets_topic: str,
        poll_interval_s: float,
        probe_interval_s: float | None = None,
        retry: RetrySettings,
        metrics: Metrics,
        stop: threading.Event,
        start_cursor: str | None,
        dlq_topic: str,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        state: StageState | None = None,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self.source = source
        self.stage = source.name
        self._dlq_topic = dlq_topic
        self._max_record_bytes = max_record_bytes
        self._producer = producer
        self._codec = Codec.default()
        self._offsets_topic = offsets_topic
        self._poll_interval_s = poll_interval_s
        self._probe_interval_s = probe_interval_s
        self._retry = retry
        self._metrics = metrics
        self._stop = stop
        self.cursor = start_cursor
        self.state = state or StageState()
        self._paused = paused

    def run(self) -> None:
        """Poll, write, commit; back off on retriable errors; always close the source and producer."""
        failures = empty_polls = 0
        try:
            # inside the try: a producer whose initialisation timed out still retries it in its own thread,
            # and left open it would bump the transactional id's epoch under its successor's feet
            self._producer.init_transactions()
            self.state.started = self.state.ready = True
            self._metrics.stage_up.labels(self.stage).set(1)
            log.info("source_started", stage=self.stage, cursor=self.cursor)
            while not self._stop.is_set():
                if self._hold():
                    continue
                try:
                    found, more = self._step()
                    failures = 0
                except RetriableError as exc:
                    failures += 1
                    delay = self._backoff(failures, exc)
                    log.warning("source_poll_failed", stage=self.stage, error=str(exc), retry_in_s=round(delay, 2))
                    self._stop.wait(delay)
                    continue
                empty_polls = 0 if found else empty_polls + 1
                if not more:
                    self._idle(empty_polls)
        except Exception:
            self.state.failed = True
            log.exception("source_failed", stage=self.stage)
            raise
        finally:
            self._metrics.stage_up.labels(self.stage).set(0)
            self.source.close()
            close_producer(self._producer, timeout_s=_CLOSE_S)
            log.info("source_stopped", stage=self.stage, cursor=self.cursor)

    def _hold(self) -> bool:
        """While the source is paused, wait a poll interval (at most a second) instead of polling; True if so."""
        paused = self._paused()
        self._metrics.stage_paused.labels(self.stage).set(1 if paused else 0)
        if paused:
            self._stop.wait(min(1.0, self._poll_interval_s))
        return paused

    def _idle(self, empty_polls: int) -> None:
        """Wait before the next poll: until a probing source has news, or the idle wait is over."""
        source, probe_s = self.source, self._probe_interval_s
        if not isinstance(source, Probing) or probe_s is None:
            self._stop.wait(idle_wait_s(empty_polls, interval_s=self._poll_interval_s))
            return
        deadline = time.monotonic() + self._poll_interval_s
        busy = empty_polls == 0
        if busy and self._news(source):
            return  # rows arrived while the last poll ran: under steady load the probe interval is pure delay
        probes = 0
        while True:
            # after rows the next ones are likely near: the probes start 10 ms apart and double up to probe_s
            probes += 1
            wait = idle_wait_s(probes, interval_s=probe_s, quick_s=_QUICK_PROBE_S) if busy else probe_s
            if self._stop.wait(wait) or time.monotonic() >= deadline or self._news(source):
                return

    def _news(self, source: Probing) -> bool:
        """Whether ``source`` says it has news; True on a failure (the full poll reports it and backs off)."""
        try:
            return source.has_news(self.cursor)
        except RetriableError:
            return True

    def _step(self) -> tuple[bool, bool]:
        """One poll written atomically with its cursor; whether it found anything, and whether it has more."""
        batch = self.source.poll(self.cursor)
        if not batch.records and batch.cursor == self.cursor:
            return False, False
        self._producer.begin_transaction()
        try:
            sent = []
            for read in map(self._fit, batch.records):
                # each record a source reads starts a trace (W3C traceparent), unless it brought one
                headers = read.headers if of_headers(read.headers) else traced(read.headers, new_trace())
                record = described(replace(read, headers=headers), self._codec)
                sent.append(
                    self._producer.send(record.topic, key=record.key, value=record.value, headers=list(record.headers))
                )
            position = {"cursor": batch.cursor, "at": datetime.now(UTC).isoformat(timespec="milliseconds")}
            sent.append(
                self._producer.send(self._offsets_topic, key=self.stage.encode(), value=json.dumps(position).encode())
            )
            self._producer.flush()
            for future in sent:
                # kafka-python commits a transaction whose records expired (a broker of the cluster died):
                # the records and the cursor would be lost while this process moved on. A failed send aborts.
                future.get(timeout=0)
            self._producer.commit_transaction()
        except BaseException:
            self._producer.abort_transaction()
            raise
        self.cursor = batch.cursor
        self._metrics.records_in.labels(self.stage).inc(len(batch.records))
        self._metrics.records_out.labels(self.stage).inc(len(batch.records))
        if batch.cursor.isdigit():
            self._metrics.source_cursor.labels(self.stage).set(int(batch.cursor))
        log.info("source_batch_committed", stage=self.stage, records=len(batch.records), cursor=_shown(batch.cursor))
        return True, batch.has_more

    def _fit(self, record: Output) -> Output:
        """The record, or its dead letter when Kafka would refuse it for its size."""
        value = record.value or b""
        size = len(value) + len(record.key or b"") + sum(len(k) + len(v) for k, v in record.headers)
        if size <= self._max_record_bytes:
            return record
        reason = f"a record of {size} bytes is over the {self._max_record_bytes} bytes Kafka takes; its first "
        reason += f"{_KEPT_BYTES} bytes are kept here"
        self._metrics.records_dead_lettered.labels(self.stage, "RecordTooLarge").inc()
        log.warning("record_dead_lettered", stage=self.stage, topic=record.topic, reason=reason)
        now = datetime.now(UTC)
        error = DataError("", reason)
        return source_dead_letter(
            error,
            stage=self.stage,
            topic=self._dlq_topic,
            key=record.key,
            value=value[:_KEPT_BYTES],
            where=record.topic,
            now=now,
        )

    def _backoff(self, failures: int, exc: RetriableError) -> float:
        if isinstance(exc, BackpressureError):
            return min(exc.retry_after_s, self._retry.max_retry_after_s)
        ceiling = min(self._retry.max_backoff_s, self._retry.initial_backoff_s * 2**failures)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


def _shown(cursor: str) -> str:
    """``cursor`` for a log line: whole when short, else its start and its length."""
    if len(cursor) <= _SHOWN_CURSOR:
        return cursor
    return f"{cursor[:_SHOWN_CURSOR]}… ({len(cursor)} characters)"
