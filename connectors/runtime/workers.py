"""Worker processes for a CPU-bound stage: its records are transformed there while the loop keeps Kafka busy.

A transform such as the normaliser spends most of each record in decoding, validating and Avro-encoding,
all under the GIL; in the loop's own thread that work and the Kafka client's take turns on one core. With
``workers: N`` the loop hands each polled batch to N processes (in slices, so every worker gets a share)
and polls the next batch while they work, so Kafka I/O and transformation overlap and use every core.
Outcomes come back in record order; the loop still produces, flushes and commits batch by batch, so the
at-least-once contract of :mod:`connectors.runtime.interface` is unchanged.

Only pure processors can run here: no state across records, no ticks, no I/O of their own. The processor
object is pickled into each worker once, at start-up. Workers ignore SIGINT and SIGTERM: the loop decides
when to stop and drains what they hold first; a worker whose parent dies (even by SIGKILL) exits too. A
worker that dies breaks the pool, and the stage fails with its batch uncommitted, to be re-delivered when it
is started again.

Example:
    >>> pool = WorkerPool(normaliser, workers=2)
    >>> batch = pool.submit(records)
    >>> for outcome, seconds in batch.results(): ...
"""

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Outcome, Processor, Stateful, Ticking
from connectors.runtime.logs import configure_logging, logging_options

Timed = tuple[Outcome, float]

_MIN_SLICE = 50  # below this, pickling and scheduling cost more than a worker saves

_processor: Processor | None = None


def _start_worker(copied: bytes, log_json: bool, log_level: str) -> None:
    global _processor  # noqa: PLW0603 - one processor per worker process, set once by its initializer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(json=log_json, level=log_level)
    _processor = pickle.loads(copied)  # noqa: S301 - pickled by this worker's own parent
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    # A worker holds both ends of its task queue, so a parent killed with SIGKILL would leave it waiting
    # forever; it watches the parent instead and leaves with it.
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


def _ready() -> bool:
    return _processor is not None


def _process(records: Sequence[ConsumerRecord]) -> list[Timed]:
    if _processor is None:
        message = "worker used before its initializer ran"
        raise RuntimeError(message)
    timed: list[Timed] = []
    started = time.perf_counter()
    for outcome in _processor.process(records):
        now = time.perf_counter()
        timed.append((outcome, now - started))
        started = now
    return timed


@dataclass(frozen=True)
class PendingBatch:
    """A polled batch whose slices are being transformed.

    ``revoked`` collects the partitions taken from this consumer since the batch was polled: their records
    are no longer this consumer's to produce or commit.
    """

    records: list[ConsumerRecord]
    slices: list[Future[list[Timed]]]
    revoked: set[TopicPartition] = field(default_factory=set)

    def done(self) -> bool:
        """True once every slice has its outcomes (or failed)."""
        return all(future.done() for future in self.slices)

    def results(self) -> Iterator[Timed]:
        """Each record's outcome and processing seconds, in record order; waits for the slices.

        Raises:
            concurrent.futures.process.BrokenProcessPool: a worker died.
            Exception: whatever the processor raised that is not a ``DataError``.
        """
        for future in self.slices:
            yield from future.result()


class WorkerPool:
    """N worker processes, each holding its own copy of one pure processor.

    Raises:
        ValueError: ``workers`` below 1, a processor with state or ticks, which cannot be split, or one that
            cannot be pickled into a worker.
    """

    def __init__(self, processor: Processor, workers: int) -> None:
        if workers < 1:
            message = f"workers must be at least 1, got {workers}"
            raise ValueError(message)
        if isinstance(processor, Stateful | Ticking):
            message = f"stage {processor.stage} keeps state or ticks and cannot run in worker processes"
            raise ValueError(message)
        try:
            copied = pickle.dumps(processor)  # once, here, so that a processor that cannot go fails the build
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            message = f"stage {processor.stage} cannot be copied into worker processes: {exc}"
            raise ValueError(message) from exc
        self.workers = workers
        log = logging_options()
        # Spawned, not forked: the parent runs Kafka client threads, which a fork would copy mid-flight.
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(copied, log.json, log.level),
        )

    def start(self) -> None:
        """Start every worker and wait until each holds its processor, so the first batch waits for none.

        Raises:
            concurrent.futures.process.BrokenProcessPool: a worker could not start.
        """
        # The pool starts a process per task it cannot give an idle worker: one task each starts them all.
        for ready in [self._executor.submit(_ready) for _ in range(self.workers)]:
            ready.result()

    def submit(self, records: list[ConsumerRecord]) -> PendingBatch:
        """Start transforming ``records`` in slices, about two per worker so that a fast worker takes more."""
        size = max(_MIN_SLICE, -(-len(records) // (2 * self.workers)))
        slices = [self._executor.submit(_process, records[i : i + size]) for i in range(0, len(records), size)]
        return PendingBatch(records, slices)

    def close(self) -> None:
        """Stop the workers; slices not yet started are cancelled."""
        self._executor.shutdown(wait=True, cancel_futures=True)
