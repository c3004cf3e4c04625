import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.runtime.dlq import error_context
from connectors.runtime.interface import Delivered, Outcome, Processor
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.runtime.workers import WorkerPool
from connectors.settings import KafkaSettings
from routing.errors import DataError
from schemas import Codec
from simulators.approval import ApprovalSimulator
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration

POISON = b"poison: the worker process dies on this record"
INGESTED = datetime(2026, 11, 25, 2, 0, tzinfo=UTC).isoformat().encode()
HEADERS = [("ubridge.source", b"gonggai-interface"), ("ubridge.ingested_at", INGESTED)]


class Topics:
    def __init__(self, bootstrap: str, prefix: str, partitions: int = 1) -> None:
        self.kafka = KafkaSettings(bootstrap=bootstrap)
        self.raw, self.out, self.dlq = f"{prefix}raw", f"{prefix}events", f"{prefix}dlq"
        self.group = f"{prefix}normaliser"
        self.partitions = partitions
        ensure_topics(self.kafka, [TopicSpec(t, partitions) for t in (self.raw, self.out, self.dlq)])

    def produce(self, values: list[bytes]) -> None:
        producer = make_producer(self.kafka)
        for n, value in enumerate(values):
            producer.send(self.raw, key=b"k", value=value, headers=HEADERS, partition=n % self.partitions)
        producer.flush()
        producer.close()

    def committed(self) -> list[int | None]:
        consumer = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap, group_id=self.group)
        try:
            return [consumer.committed(TopicPartition(self.raw, p)) for p in range(self.partitions)]
        finally:
            consumer.close()


class Wrapped:
    """The normaliser, record by record, with ``before`` run ahead of each record (in the worker)."""

    def __init__(self, inner: GonggaiNormaliser) -> None:
        self.inner = inner
        self.stage = inner.stage
        self.input_topics = inner.input_topics

    def before(self, record: ConsumerRecord) -> None:
        """Nothing: subclasses misbehave here."""

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        for record in records:
            self.before(record)
            yield from self.inner.process([record])

    def close(self) -> None:
        self.inner.close()


class DiesOnPoison(Wrapped):
    """Its process exits on the poison record, as one would under a segfaulting library."""

    def before(self, record: ConsumerRecord) -> None:
        if record.value == POISON:
            os._exit(3)


class Slow(Wrapped):
    """10 ms a record, so that a rebalance lands while batches are in the workers."""

    def before(self, record: ConsumerRecord) -> None:
        time.sleep(0.01)


def normaliser(topics: Topics) -> GonggaiNormaliser:
    return GonggaiNormaliser(
        input_topic=topics.raw, output_topic=topics.out, status_codes={11: "GRANTED"}, codec=Codec.default()
    )


def events(n: int) -> list[bytes]:
    """``n`` raw events, every tenth one broken in a different way."""
    values = []
    for i, event in enumerate(ApprovalSimulator(seed=4).generate(n)):
        if i % 10 == 3:
            event["xmdm"] = f"not-a-project-code-{i}"
        values.append(b"{broken json" if i % 10 == 7 else json.dumps(event, ensure_ascii=False).encode())
    return values


def loop_for(topics: Topics, processor: Processor, metrics: Metrics, stop: threading.Event, workers: int) -> StageLoop:
    return StageLoop(
        processor,
        consumer=make_consumer(topics.kafka, group_id=topics.group, max_poll_records=40),
        producer=make_producer(topics.kafka),
        dlq_topic=topics.dlq,
        metrics=metrics,
        stop=stop,
        workers=WorkerPool(processor, workers) if workers else None,
    )


def records_in(metrics: Metrics, stage: str) -> float:
    return metrics.registry.get_sample_value("ubridge_records_in_total", {"stage": stage}) or 0


def run_until(topics: Topics, processor: Processor, *, workers: int, until: int) -> Metrics:
    metrics, stop = Metrics(CollectorRegistry()), threading.Event()
    loop = loop_for(topics, processor, metrics, stop, workers)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    wait_until(lambda: records_in(metrics, loop.stage) >= until, timeout_s=60, what=f"{until} records")
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not loop.state.failed
    return metrics


def expected_outcomes(topics: Topics, values: list[bytes]) -> list[Outcome]:
    """What the normaliser makes of each value in this thread: the reference for the workers."""
    records = [
        ConsumerRecord(topics.raw, 0, -1, n, 0, 0, b"k", v, HEADERS, None, 1, len(v), 0) for n, v in enumerate(values)
    ]
    return list(normaliser(topics).process(records))


@pytest.fixture
def topics(kafka_bootstrap: str, unique_prefix: str) -> Topics:
    return Topics(kafka_bootstrap, unique_prefix)


def test_workers_produce_what_the_loop_would_in_input_order(topics: Topics) -> None:
    """Through two workers and many pipelined batches: the same bytes, in input order, the same dead letters."""
    values = events(400)
    topics.produce(values)
    run_until(topics, normaliser(topics), workers=2, until=len(values))

    expected = expected_outcomes(topics, values)
    wanted = [out.value for o in expected if isinstance(o, Delivered) for out in o.outputs]
    assert [r.value for r in read_topic(topics.kafka.bootstrap, topics.out)] == wanted
    letters = read_topic(topics.kafka.bootstrap, topics.dlq)
    bad = [n for n, o in enumerate(expected) if isinstance(o, DataError)]
    assert len(bad) >= 80
    assert [r.value for r in letters] == [values[n] for n in bad]
    reasons = [error_context(r.headers) for r in letters]
    assert [int(c["offset"]) for c in reasons] == bad
    assert {c["field"] for c in reasons} == {"", "xmdm"}
    assert topics.committed() == [len(values)]


def test_a_dead_worker_fails_the_stage_uncommitted_and_a_restart_catches_up(topics: Topics) -> None:
    """A worker process that dies breaks the stage loudly; nothing of its batch is committed or lost."""
    values = events(30)
    topics.produce([*values[:5], POISON, *values[5:]])
    stop = threading.Event()
    loop = loop_for(topics, DiesOnPoison(normaliser(topics)), Metrics(CollectorRegistry()), stop, 2)
    with pytest.raises(BrokenProcessPool):
        loop.run()
    assert loop.state.failed
    assert topics.committed() == [None]

    run_until(topics, normaliser(topics), workers=2, until=len(values) + 1)
    assert topics.committed() == [len(values) + 1]
    letters = read_topic(topics.kafka.bootstrap, topics.dlq)
    assert POISON in [r.value for r in letters]


def test_partitions_moved_to_a_second_process_mid_stream_lose_and_repeat_nothing(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """A rebalance while batches are in the workers: they are finished and committed before the move."""
    topics = Topics(kafka_bootstrap, unique_prefix, partitions=2)
    values = [v for v in events(1200) if not v.startswith(b"{broken")]
    topics.produce(values)
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    stop = threading.Event()
    loops = [loop_for(topics, Slow(normaliser(topics)), first, stop, 1)]
    threads = [threading.Thread(target=loops[0].run, daemon=True)]
    threads[0].start()
    stage = loops[0].stage
    wait_until(lambda: records_in(first, stage) >= 40, timeout_s=60, what="the first process under way")
    loops.append(loop_for(topics, Slow(normaliser(topics)), second, stop, 1))
    threads.append(threading.Thread(target=loops[1].run, daemon=True))
    threads[1].start()

    def done() -> bool:
        return records_in(first, stage) + records_in(second, stage) >= len(values)

    wait_until(done, timeout_s=90, what="every record through one process or the other")
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(loop.state.failed for loop in loops)
    assert records_in(second, stage) > 0

    codec = Codec.default()
    produced = [codec.decode(r.value)[1]["source_record_id"] for r in read_topic(kafka_bootstrap, topics.out)]
    letters = read_topic(kafka_bootstrap, topics.dlq)
    assert len(produced) + len(letters) == len(values)
    assert len(set(produced)) == len(produced)
    assert topics.committed() == [(len(values) + 1) // 2, len(values) // 2]
