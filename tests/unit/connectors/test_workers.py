import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.runtime.interface import Delivered, Output
from connectors.runtime.workers import WorkerPool
from routing.errors import DataError
from schemas import Codec
from simulators.approval import ApprovalSimulator
from tests.support import ROOT, wait_until

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


POOL_THEN_WAIT = """
import time
from tests.unit.connectors.test_workers import normaliser
from connectors.runtime.workers import WorkerPool
pool = WorkerPool(normaliser(), 2)
pool.start()
print("ready", flush=True)
time.sleep(120)
"""


def _workers_of(parent: int) -> set[int]:
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in command:
            found.add(int(proc.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited worker of a killed parent waits for init to reap it)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_leave_with_a_parent_killed_by_sigkill() -> None:
    """Kill -9 of the stage's process leaves no worker behind, though nothing could shut the pool down."""
    with subprocess.Popen([sys.executable, "-c", POOL_THEN_WAIT], stdout=subprocess.PIPE, cwd=ROOT) as parent:
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline() == b"ready\n"
            workers = _workers_of(parent.pid)
            assert len(workers) == 2
        finally:
            parent.kill()
    wait_until(lambda: not any(_running(pid) for pid in workers), timeout_s=10, what="the workers to exit")
