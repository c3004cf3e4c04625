"""The pieces of ``make bench``: data preparation, the bare passthrough, ubridge's stages, end to end."""

import json
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry
from rich.console import Console

from connectors.demo.remote import Simulators
from connectors.demo.runner import Demo, DemoOptions
from connectors.demo.summary import percentile
from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.router.stage import ProjectRouter
from connectors.runtime.interface import Outcome, Processor
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.settings import BearerAuth, KafkaSettings, RoutingSettings, UtilitySettings
from connectors.utility.sink import UtilitySink
from routing.service_areas import load_service_areas
from schemas import Codec
from simulators.approval import ApprovalSimulator

CONFIG_DIR = Path(__file__).resolve().parents[1] / "deploy" / "config"
PARTITIONS = 3
SINK_UTILITY = "yantai-water"


@dataclass
class Clock:
    """Times the span from the first record handled to the last."""

    count: int = 0
    first: float | None = None
    last: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    expected: int = 0

    def tick(self, n: int = 1) -> None:
        """Count ``n`` records handled now."""
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.count += n
        self.last = now
        if self.count >= self.expected:
            self.done.set()

    @property
    def rate(self) -> float:
        """Records per second over the timed span."""
        span = self.last - (self.first or self.last)
        return self.count / span if span > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """End-to-end figures of the latency run."""

    count: int
    p50_ms: float
    p99_ms: float


def _topic(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def _count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        end = consumer.end_offsets(partitions)
        start = consumer.beginning_offsets(partitions)
        return sum(end[tp] - start[tp] for tp in partitions)
    finally:
        consumer.close()


def produce_raw(bootstrap: str, prefix: str, n: int) -> str:
    """Write ``n`` valid, served approval-system events to a fresh raw topic; returns its name."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    names = ["raw", "pass", "events", "tasks", "status", "dlq"]
    ensure_topics(kafka, [TopicSpec(_topic(prefix, name), PARTITIONS) for name in names])
    producer = make_producer(kafka)
    simulator = ApprovalSimulator(seed=3)
    ingested = datetime.now(UTC).isoformat(timespec="milliseconds").encode()
    headers = [("ubridge.source", b"gonggai-interface"), ("ubridge.ingested_at", ingested)]
    for event in simulator.generate(n):
        value = json.dumps(event, ensure_ascii=False).encode()
        producer.send(_topic(prefix, "raw"), key=event["xmdm"].encode(), value=value, headers=headers)
    producer.flush()
    producer.close()
    return _topic(prefix, "raw")


def passthrough(bootstrap: str, raw_topic: str, prefix: str) -> Clock:
    """Bare kafka-python: consume a batch, produce every value, flush, commit; the ceiling for a stage."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    clock = Clock(expected=_count(bootstrap, raw_topic))
    consumer = make_consumer(kafka, group_id=f"{prefix}passthrough")
    producer = make_producer(kafka)
    consumer.subscribe([raw_topic])
    out = _topic(prefix, "pass")
    while not clock.done.is_set():
        batch = consumer.poll(timeout_ms=500)
        for records in batch.values():
            for record in records:
                producer.send(out, key=record.key, value=record.value)
                clock.tick()
        producer.flush()
        consumer.commit()
    consumer.close()
    producer.close()
    return clock


class _Timed:
    """Wraps a processor to time it."""

    def __init__(self, inner: Processor, clock: Clock) -> None:
        self.inner = inner
        self.stage = inner.stage
        self.input_topics = inner.input_topics
        self.clock = clock

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        for outcome in self.inner.process(records):
            self.clock.tick()
            yield outcome

    def close(self) -> None:
        self.inner.close()


def run_stage(stage: str, bootstrap: str, prefix: str) -> Clock:
    """Run one ubridge stage over the whole of its input topic, as a stage loop does in production."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    codec = Codec.default()
    sims: Simulators | None = None
    processor: Processor
    if stage == "normaliser":
        processor = GonggaiNormaliser(
            input_topic=_topic(prefix, "raw"),
            output_topic=_topic(prefix, "events"),
            status_codes=RoutingSettings(service_areas=Path()).status_codes,
            codec=codec,
        )
    elif stage == "router":
        processor = ProjectRouter(
            input_topic=_topic(prefix, "events"),
            output_topic=_topic(prefix, "tasks"),
            areas=load_service_areas(CONFIG_DIR / "service-areas.yaml"),
            codec=codec,
        )
    else:
        sims = Simulators({SINK_UTILITY: "bench"}, seed=1)
        url = sims.utilities[SINK_UTILITY].url
        auth = BearerAuth(type="bearer", token="bench")
        utility = UtilitySettings(id=SINK_UTILITY, endpoint=f"{url}/v1/tasks", auth=auth)
        processor = UtilitySink(
            utility,
            input_topic=_topic(prefix, "tasks"),
            status_topic=_topic(prefix, "status"),
            codec=codec,
            metrics=metrics,
            stop=stop,
        )
    clock = Clock(expected=_count(bootstrap, processor.input_topics[0]))
    loop = StageLoop(
        _Timed(processor, clock),
        consumer=make_consumer(kafka, group_id=f"{prefix}{stage}"),
        producer=make_producer(kafka),
        dlq_topic=_topic(prefix, "dlq"),
        metrics=metrics,
        stop=stop,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    clock.done.wait()
    stop.set()
    thread.join()
    if sims is not None:
        clock.count = sims.utilities[SINK_UTILITY].stats().unique  # tasks delivered, not tasks skipped
        sims.stop()
    return clock


def end_to_end(bootstrap: str, prefix: str, *, rate_per_s: float, seconds: float) -> Latency:
    """Every stage with the simulators, at a fixed offered rate, no faults: publish → utility receipt."""
    options = DemoOptions(
        events=int(rate_per_s * seconds),
        rate_per_s=rate_per_s,
        bootstrap=bootstrap,
        workdir=Path(tempfile.mkdtemp(prefix="ubridge-bench-e2e-")),
        metrics_port=0,
        timeout_s=120,
        seed=5,
        faults=False,
        topic_prefix=prefix,
    )
    demo = Demo(options, Console(stderr=True))
    try:
        demo.start()
        result = demo.result(demo.replay())
    finally:
        demo.stop()
    latencies = [value for row in result.utilities for value in row.latencies_s]
    return Latency(
        count=len(latencies),
        p50_ms=1000 * (percentile(latencies, 0.5) or 0.0),
        p99_ms=1000 * (percentile(latencies, 0.99) or 0.0),
    )
