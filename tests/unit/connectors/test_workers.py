import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.runtime.interface import Delivered, Output
from connectors.runtime.workers import WorkerPool
from routing.errors import DataError
from schemas import Codec
from simulators.approval import ApprovalSimulator

INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC).isoformat().encode()
HEADERS = [("ubridge.source", b"gonggai-interface"), ("ubridge.ingested_at", INGESTED)]


def normaliser() -> GonggaiNormaliser:
    codec = Codec.default()
    return GonggaiNormaliser(input_topic="raw", output_topic="events", status_codes={11: "GRANTED"}, codec=codec)


def record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("raw", 0, -1, offset, 0, 0, b"k", value, HEADERS, None, 1, len(value), 0)


class Ticks:
    stage = "ticks"
    input_topics = ("in",)

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Delivered]:
        yield from (Delivered() for _ in records)

    def tick(self, now: datetime) -> Sequence[Output]:
        return ()

    def close(self) -> None:
        """Nothing held."""


class Holds:
    stage = "holds"
    input_topics = ("in",)

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """State would load here."""

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """State would drop here."""

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Delivered]:
        yield from (Delivered() for _ in records)

    def close(self) -> None:
        """Nothing held."""


class HoldsALock:
    stage = "lock"
    input_topics = ("in",)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Delivered]:
        yield from (Delivered() for _ in records)

    def close(self) -> None:
        """Nothing held."""


@pytest.mark.parametrize("processor", [Ticks(), Holds()], ids=["ticking", "stateful"])
def test_processors_with_ticks_or_state_cannot_be_split(processor: Ticks | Holds) -> None:
    """Ticks and partition state belong to one loop: splitting them across processes is refused at start."""
    with pytest.raises(ValueError, match=f"stage {processor.stage} keeps state or ticks"):
        WorkerPool(processor, 2)


def test_zero_workers_is_refused() -> None:
    """A pool needs a worker; 0 means no pool, which is the caller's choice to make."""
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        WorkerPool(normaliser(), 0)


def test_a_processor_that_cannot_be_copied_is_refused_at_start() -> None:
    """An unpicklable processor fails when the stage is built, naming it, not at its first batch."""
    with pytest.raises(ValueError, match="stage lock cannot be copied into worker processes"):
        WorkerPool(HoldsALock(), 1)


def test_worker_outcomes_come_back_in_order_with_their_timings() -> None:
    """Slices from two workers are reassembled in record order: outputs byte-equal to the loop's, faults kept."""
    values = [json.dumps(e, ensure_ascii=False).encode() for e in ApprovalSimulator(seed=2).generate(120)]
    values[7], values[90] = b"{torn", b"[]"
    records = [record(n, v) for n, v in enumerate(values)]
    expected = list(normaliser().process(records))
    pool = WorkerPool(normaliser(), 2)
    try:
        batch = pool.submit(records)
        results = list(batch.results())
        assert batch.done()
    finally:
        pool.close()
    assert [len(f.result()) for f in batch.slices] == [50, 50, 20]  # slices of at least 50 records
    outcomes = [outcome for outcome, _ in results]
    assert [o.outputs if isinstance(o, Delivered) else None for o in outcomes] == [
        o.outputs if isinstance(o, Delivered) else None for o in expected
    ]
    faults = [(n, o.reason) for n, o in enumerate(outcomes) if isinstance(o, DataError)]
    assert faults == [(n, o.reason) for n, o in enumerate(expected) if isinstance(o, DataError)]
    assert {n for n, _ in faults} >= {7, 90}
    assert all(seconds >= 0 for _, seconds in results)
