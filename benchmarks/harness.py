"""The pieces of ``make bench``: data preparation, the bare passthrough, ubridge's stages, end to end."""

import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter
from rich.console import Console

from connectors.demo.remote import Simulators
from connectors.demo.runner import Demo, DemoOptions
from connectors.demo.summary import percentile
from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.ledger.changelog import KafkaChangelogReader
from connectors.router.stage import ProjectRouter
from connectors.runtime.interface import Processor
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.runtime.workers import WorkerPool
from connectors.settings import BearerAuth, KafkaSettings, RoutingSettings, UtilitySettings
from connectors.utility.revisions import KafkaRevisionReader
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
    untimed_out: int = 0  # outputs of the records before the clock started
    records_read: int = 0  # by the stage, timed span or not
    delivered: int = 0  # tasks and revisions a sink delivered, timed span or not

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


def _task_topics(kafka: KafkaSettings, prefix: str, suffix: str = "") -> dict[str, str]:
    """Each utility of the shipped service areas → its task topic, created if missing."""
    utilities = load_service_areas(CONFIG_DIR / "service-areas.yaml").utilities()
    topics = {utility: _topic(prefix, f"tasks.{utility}{suffix}") for utility in sorted(utilities)}
    ensure_topics(kafka, [TopicSpec(topic, PARTITIONS) for topic in topics.values()])
    return topics


def task_counts(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records on each utility's task topic (what the router wrote for it)."""
    utilities = load_service_areas(CONFIG_DIR / "service-areas.yaml").utilities()
    return {utility: _count(bootstrap, _topic(prefix, f"tasks.{utility}")) for utility in sorted(utilities)}


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
    names = ["raw", "pass", "events", "status", "revisions", "dlq"]
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


def passthrough(bootstrap: str, raw_topic: str, prefix: str, run: int = 0) -> Clock:
    """Bare kafka-python: consume a batch, produce every value, flush, commit; the ceiling for a stage."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    clock = Clock(expected=_count(bootstrap, raw_topic))
    consumer = make_consumer(kafka, group_id=f"{prefix}passthrough{run}")
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


def _counted(counter: Counter, stage: str) -> int:
    """A stage's value of one counter, read from that metric alone (cheap enough to poll)."""
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("stage") == stage:
                return int(sample.value)
    return 0


def _watch(metrics: Metrics, stage: str, clock: Clock, stop: threading.Event) -> None:
    """Tick ``clock`` from the stage's own records-in counter.

    The loop counts there wherever records are transformed, and it is what an SRE would read.
    """
    seen = 0
    while not stop.is_set():
        count = _counted(metrics.records_in, stage)
        if count > seen:
            if clock.first is None:
                # The first batch seen starts the clock; its records are outside the timed span.
                clock.expected -= count
                clock.untimed_out = _counted(metrics.records_out, stage)
                clock.tick(0)
            else:
                clock.tick(count - seen)
            seen = count
        time.sleep(0.01)


def run_stage(stage: str, bootstrap: str, prefix: str, *, workers: int = 0) -> Clock:
    """Run one ubridge stage over the whole of its input topic, as a stage loop does in production.

    ``workers`` > 0 runs the transform in that many worker processes (normaliser only); such a run
    writes to its own output topic, so the next stage's input is the same in every run.
    """
    kafka = KafkaSettings(bootstrap=bootstrap)
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    codec = Codec.default()
    sims: Simulators | None = None
    processor: Processor
    suffix = f".w{workers}" if workers else ""
    if stage == "normaliser":
        processor = GonggaiNormaliser(
            input_topic=_topic(prefix, "raw"),
            output_topic=_topic(prefix, "events" + suffix),
            status_codes=RoutingSettings(service_areas=Path()).status_codes,
            codec=codec,
        )
    elif stage == "router":
        grants = _topic(prefix, "grants")
        ensure_topics(kafka, [TopicSpec(grants, PARTITIONS, compacted=True)])
        processor = ProjectRouter(
            input_topic=_topic(prefix, "events"),
            task_topic=_task_topics(kafka, prefix, suffix).__getitem__,
            grants_topic=grants,
            areas=load_service_areas(CONFIG_DIR / "service-areas.yaml"),
            codec=codec,
            reader=KafkaChangelogReader(kafka, grants),
        )
    else:
        sims = Simulators({SINK_UTILITY: "bench"}, seed=1)
        url = sims.utilities[SINK_UTILITY].url
        auth = BearerAuth(type="bearer", token="bench")
        utility = UtilitySettings(id=SINK_UTILITY, endpoint=f"{url}/v1/tasks", auth=auth)
        revisions = _topic(prefix, "revisions")
        processor = UtilitySink(
            utility,
            input_topic=_task_topics(kafka, prefix)[SINK_UTILITY],
            status_topic=_topic(prefix, "status"),
            revisions_topic=revisions,
            revisions=KafkaRevisionReader(kafka, revisions, utility=SINK_UTILITY),
            codec=codec,
            metrics=metrics,
            stop=stop,
        )
    clock = Clock(expected=_count(bootstrap, processor.input_topics[0]))
    loop = StageLoop(
        processor,
        consumer=make_consumer(kafka, group_id=f"{prefix}{stage}{suffix}"),
        producer=make_producer(kafka),
        dlq_topic=_topic(prefix, "dlq"),
        metrics=metrics,
        stop=stop,
        workers=WorkerPool(processor, workers) if workers else None,
    )
    watching = threading.Event()
    watcher = threading.Thread(target=_watch, args=(metrics, processor.stage, clock, watching), daemon=True)
    thread = threading.Thread(target=loop.run, daemon=True)
    watcher.start()
    thread.start()
    while not clock.done.wait(0.5):
        if not thread.is_alive():
            message = f"stage {processor.stage} stopped before its input was done (its log says why)"
            raise RuntimeError(message)
    stop.set()
    thread.join()
    watching.set()
    watcher.join()
    clock.records_read = _counted(metrics.records_in, processor.stage)
    if sims is not None:
        stats = sims.utilities[SINK_UTILITY].stats()
        clock.delivered = stats.unique + stats.revisions  # each new task and each new revision of one
        # tasks delivered in the timed span
        clock.count = sims.utilities[SINK_UTILITY].stats().unique - clock.untimed_out
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
