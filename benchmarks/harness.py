"""The pieces of ``make bench``: data preparation, the bare passthrough, ubridge's stages, end to end."""

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Counter

from benchmarks.anchor import IN_FLIGHT, SinkJob, anchor_sink, kafka_python_anchor_sink
from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.ledger.changelog import KafkaChangelogReader
from connectors.router.stage import ProjectRouter
from connectors.runtime.interface import Processor
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import StageLoop
from connectors.runtime.workers import WorkerPool
from connectors.settings import BearerAuth, KafkaSettings, RoutingSettings, UtilitySettings
from connectors.utility.pipeline import SinkLoop
from connectors.utility.revisions import KafkaRevisionReader
from connectors.utility.sink import UtilitySink
from routing.errors import DataError
from routing.gonggai import normalise
from routing.service_areas import load_service_areas
from routing.tasks import route_project_event
from schemas import Codec
from simulators.approval import ApprovalSimulator

CONFIG_DIR = Path(__file__).resolve().parents[1] / "deploy" / "config"
PARTITIONS = 3
SINK_UTILITY = "yantai-water"


@dataclass(frozen=True)
class Throughput:
    """Records a run took in, over the span its outputs were sent in, and the machine's load meanwhile."""

    records: int
    seconds: float
    load: float  # 1-minute load average at the end of the run

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


def _topic(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def count_records(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` now, over every partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
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
    names = ["raw", "pass", "events", "tasks", "status", "revisions", "dlq"]
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


def produce_tasks(bootstrap: str, prefix: str, n: int, *, utility: str) -> str:
    """Write about ``n`` tasks, all addressed to ``utility``, to a fresh task topic; returns its name.

    The tasks are what the router makes of the simulator's events, readdressed: the sinks are measured on
    their own utility's tasks only, as with a task topic per utility.
    """
    kafka = KafkaSettings(bootstrap=bootstrap)
    topic = _topic(prefix, "sinktasks")
    names = ["sinktasks", "status", "dlq"]
    ensure_topics(kafka, [TopicSpec(_topic(prefix, name), PARTITIONS) for name in names])
    ensure_topics(kafka, [TopicSpec(_topic(prefix, "revisions"), PARTITIONS, compacted=True)])
    areas = load_service_areas(CONFIG_DIR / "service-areas.yaml")
    codec = Codec.default()
    producer = make_producer(kafka)
    now = datetime.now(UTC)
    written = 0
    simulator = ApprovalSimulator(seed=7)
    while written < n:
        for raw in simulator.generate(1000, invalid_rate=0.0, unserved_rate=0.0):
            try:
                routed = route_project_event(normalise(raw, source="bench", ingested_at=now), areas, now=now)
            except DataError:
                continue
            for task in routed.tasks:
                value = codec.encode("UtilityTask", {**task, "utility_id": utility})
                producer.send(topic, key=raw["xmdm"].encode(), value=value)
                written += 1
    producer.flush()
    producer.close()
    return topic


def sent_span(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records in ``topic`` and the seconds from the first one's send time (CreateTime) to the last one's.

    Read after a run, this times the run without a watcher beside the stage: every producer stamps each
    record as it sends it, in partition order.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        start = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        firsts: list[int] = []
        lasts: list[int] = []
        for tp in partitions:
            if end[tp] > start[tp]:
                firsts.append(_timestamp_at(consumer, tp, start[tp], end[tp]))
                lasts.append(_timestamp_at(consumer, tp, end[tp] - 1, end[tp]))
        count = sum(end[tp] - start[tp] for tp in partitions)
        return count, (max(lasts) - min(firsts)) / 1000 if firsts else 0.0
    finally:
        consumer.close()


def _timestamp_at(consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int) -> int:
    """CreateTime of the record at ``offset`` (or the next one, past a transaction marker)."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    while consumer.position(tp) < end:
        for records in consumer.poll(timeout_ms=1000, max_records=1).values():
            return int(records[0].timestamp)
    message = f"{tp.topic}:{tp.partition} has no record at or after offset {offset}"
    raise RuntimeError(message)


def tasks_per_utility(bootstrap: str, topic: str) -> dict[str, int]:
    """How many of the tasks on ``topic`` each utility has (the router's output, decoded)."""
    codec = Codec.default()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        counts: dict[str, int] = {}
        for record in consumer:
            utility = str(codec.decode_as("UtilityTask", record.value)["utility_id"])
            counts[utility] = counts.get(utility, 0) + 1
            if all(consumer.position(tp) >= end[tp] for tp in partitions):
                break
        return counts
    finally:
        consumer.close()


def _throughput(records: int, bootstrap: str, output_topic: str) -> Throughput:
    """``records`` taken in over the span of the run's outputs on ``output_topic``, and the load now."""
    _, seconds = sent_span(bootstrap, output_topic)
    return Throughput(records, seconds, os.getloadavg()[0])


def passthrough(bootstrap: str, raw_topic: str, prefix: str, run: int = 0, *, copies: float = 1.0) -> Throughput:
    """Bare kafka-python: consume a batch, produce every value, flush, commit; the ceiling for a stage.

    ``copies`` > 1 writes that many records per record read on average (the router's fan-out): what the client
    alone allows a stage that writes as much, before any decoding or encoding.
    """
    kafka = KafkaSettings(bootstrap=bootstrap)
    expected = count_records(bootstrap, raw_topic)
    consumer = make_consumer(kafka, group_id=f"{prefix}passthrough{run}")
    producer = make_producer(kafka, partitioner=DefaultPartitioner())  # kafka-python's own, as it comes
    consumer.subscribe([raw_topic])
    out = _topic(prefix, f"pass{run}")
    ensure_topics(kafka, [TopicSpec(out, PARTITIONS)])
    seen = 0
    owed = 0.0
    while seen < expected:
        batch = consumer.poll(timeout_ms=500)
        for records in batch.values():
            for record in records:
                owed += copies
                while owed >= 1:
                    producer.send(out, key=record.key, value=record.value)
                    owed -= 1
            seen += len(records)
        producer.flush()
        consumer.commit()
    consumer.close()
    producer.close()
    return _throughput(expected, bootstrap, out)


def _counted(counter: Counter, stage: str) -> int:
    """A stage's value of one counter, read from that metric alone."""
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("stage") == stage:
                return int(sample.value)
    return 0


def run_stage(stage: str, bootstrap: str, prefix: str, *, workers: int = 0, endpoint: str = "") -> Throughput:
    """Run one ubridge stage over the whole of its input topic, as a stage loop does in production.

    ``workers`` > 0 runs the transform in that many worker processes (normaliser only); such a run
    writes to its own output topic, so the next stage's input is the same in every run. The sink delivers
    the task topic of :func:`produce_tasks` to ``endpoint``. The stage is timed afterwards, from its
    outputs' send times (the sink's: its ``RECEIVED`` status records); while it runs, this thread reads its
    records-in counter twice a second to know when it is done.
    """
    kafka = KafkaSettings(bootstrap=bootstrap)
    metrics = Metrics(CollectorRegistry())
    stop = threading.Event()
    codec = Codec.default()
    processor: Processor
    suffix = f".w{workers}" if workers else ""
    if stage == "normaliser":
        output = _topic(prefix, "events" + suffix)
        processor = GonggaiNormaliser(
            input_topic=_topic(prefix, "raw"),
            output_topic=output,
            status_codes=RoutingSettings(service_areas=Path()).status_codes,
            codec=codec,
        )
    elif stage == "router":
        # every utility's tasks on one topic here: the figure is the router's, and one topic times it
        output = _topic(prefix, "tasks" + suffix)
        grants = _topic(prefix, "grants")
        ensure_topics(kafka, [TopicSpec(grants, PARTITIONS, compacted=True)])
        processor = ProjectRouter(
            input_topic=_topic(prefix, "events"),
            task_topic=lambda _utility: output,
            grants_topic=grants,
            areas=load_service_areas(CONFIG_DIR / "service-areas.yaml"),
            codec=codec,
            reader=KafkaChangelogReader(kafka, grants),
        )
    else:
        output = _topic(prefix, "status")
        auth = BearerAuth(type="bearer", token="bench")
        # as many requests in flight as the anchors: the figure compares the code, not the setting (default 8)
        utility = UtilitySettings(id=SINK_UTILITY, endpoint=endpoint, auth=auth, max_in_flight=IN_FLIGHT)
        revisions = _topic(prefix, "revisions")
        processor = UtilitySink(
            utility,
            input_topic=_topic(prefix, "sinktasks"),
            status_topic=output,
            revisions_topic=revisions,
            revisions=KafkaRevisionReader(kafka, revisions, utility=SINK_UTILITY),
            codec=codec,
            metrics=metrics,
            stop=stop,
        )
    expected = count_records(bootstrap, processor.input_topics[0])
    options = {"consumer": make_consumer(kafka, group_id=f"{prefix}{stage}{suffix}"), "producer": make_producer(kafka)}
    loop = (
        SinkLoop(processor, **options, dlq_topic=_topic(prefix, "dlq"), metrics=metrics, stop=stop)
        if isinstance(processor, UtilitySink)
        else StageLoop(
            processor,
            **options,
            dlq_topic=_topic(prefix, "dlq"),
            metrics=metrics,
            stop=stop,
            workers=WorkerPool(processor, workers) if workers else None,
        )
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while _counted(metrics.records_in, processor.stage) < expected:
        time.sleep(0.5)
        if not thread.is_alive():
            message = f"stage {processor.stage} stopped before its input was done (its log says why)"
            raise RuntimeError(message)
    stop.set()
    thread.join()
    return _throughput(expected, bootstrap, output)


def anchor_sink_run(
    bootstrap: str, prefix: str, endpoint: str, *, run: int = 0, kafka_python: bool = False
) -> Throughput:
    """The aiokafka + aiohttp anchor (:mod:`benchmarks.anchor`) over the same task topic and receiver.

    ``kafka_python``: the same anchor on kafka-python instead of aiokafka.
    """
    input_topic = _topic(prefix, "sinktasks")
    client = "kp" if kafka_python else ""
    output = _topic(prefix, f"status-anchor{client}{run}")
    ensure_topics(KafkaSettings(bootstrap=bootstrap), [TopicSpec(output, PARTITIONS)])
    expected = count_records(bootstrap, input_topic)
    consume = kafka_python_anchor_sink if kafka_python else anchor_sink
    delivered = asyncio.run(
        consume(
            SinkJob(
                bootstrap,
                input_topic=input_topic,
                status_topic=output,
                group=f"{prefix}anchor-sink{client}{run}",
                endpoint=endpoint,
                token="bench",
                utility=SINK_UTILITY,
                expected=expected,
            )
        )
    )
    return _throughput(delivered, bootstrap, output)
