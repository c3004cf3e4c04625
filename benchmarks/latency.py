"""End to end at a fixed offered rate: approval-system publish → utility receipt, and every hop between.

ubridge runs as ``ubridge run`` in a process of its own with the demo's configuration minus its short SPGL
poll interval (so the source's defaults apply) and whatever process layout ``ubridge run`` chooses by default;
the simulators run in another process and the load generator (:mod:`benchmarks.load`) in a third. While the
run lasts, this harness only asks the utilities' simulators for their count of tasks twice a second. The hops
are read afterwards, from the records' own Kafka timestamps (each producer stamps a record when it sends it)::

    publish  → raw        the source read the exchange database and produced the raw record
    raw      → canonical  the normaliser produced the ProjectEvent
    canonical → tasks     the router produced the task
    tasks    → receipt    the sink's request reached the utility (its own receive time)

Each task is followed from its first record on the task topic back through the event that made it
(``source_event_id``) and that event's raw record (``source_record_id``); its publish time is the time the
generator published the grant that triggers it.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console

from benchmarks.load import generate
from benchmarks.memory import wait_ready
from connectors.demo.ports import free_port
from connectors.demo.runner import Demo, DemoOptions
from connectors.demo.summary import percentile
from schemas import Codec

HOPS = ("publish_to_raw", "raw_to_canonical", "canonical_to_tasks", "tasks_to_receipt")
_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Figures:
    """p50 and p99 in milliseconds."""

    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class EndToEnd:
    """One latency run: the whole path, each hop, and what the run achieved."""

    tasks: int
    total: Figures
    hops: dict[str, Figures]
    offered_per_s: float
    achieved_per_s: float
    load: float  # 1-minute load average at the end of the run


def end_to_end(
    bootstrap: str, prefix: str, *, rate_per_s: float, seconds: float, processes: str | None = None
) -> EndToEnd:
    """Offer ``rate_per_s`` events/s for ``seconds`` to a separate ``ubridge run``; latency of every task.

    ``processes`` sets ``processes.count`` (``auto`` or a number) to compare layouts; None keeps the default.
    """
    workdir = Path(tempfile.mkdtemp(prefix="ubridge-bench-e2e-"))
    options = DemoOptions(
        events=int(rate_per_s * seconds),
        rate_per_s=rate_per_s,
        bootstrap=bootstrap,
        workdir=workdir,
        metrics_port=free_port(),
        timeout_s=_TIMEOUT_S,
        seed=5,
        faults=False,
        topic_prefix=prefix,
    )
    demo = Demo(options, Console(stderr=True, quiet=True))
    process: subprocess.Popen[bytes] | None = None
    try:
        demo.configure()
        document = yaml.safe_load(demo.config_path.read_text(encoding="utf-8"))
        del document["sources"]["gonggai_spgl"]["poll_interval_s"]  # the demo's 0.2 s; the default applies
        if processes is not None:
            document["processes"] = {"count": processes if processes == "auto" else int(processes)}
        demo.config_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
        command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(demo.config_path)]
        with (workdir / "ubridge.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own CLI
        wait_ready(f"http://127.0.0.1:{options.metrics_port}", process)
        demo.drive_utilities()
        gateway = demo.settings.sources.aishandong_gateway
        assert gateway is not None  # noqa: S101 - the demo's configuration has one
        published = generate(demo.approval.url, gateway.port, rate_per_s=rate_per_s, events=options.events)
        demo.published_at = published.published_at
        demo.applications = published.applications
        expectation = demo._expectation()  # the demo's ground truth, after the run
        deadline = time.monotonic() + _TIMEOUT_S
        while demo._delivered() < expectation.total and time.monotonic() < deadline:
            time.sleep(0.5)
        load = _load()
        received = {t.task_id: t.received_at for sim in demo.utilities.values() for t in sim.tasks()}
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        demo.stop()
    totals: list[float] = []
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    topics = [demo.settings.topic(name) for name in ("raw_gonggai_spgl", "project_events")]
    task_topics = [demo.settings.task_topic(utility.id) for utility in demo.settings.utilities]
    for task_id, stamps in _stamps(bootstrap, topics, task_topics, received):
        seq = expectation.event_of_task.get(task_id)
        if seq is None or seq not in demo.published_at:
            continue  # an 爱山东 application's task, or one of a grant this run did not publish
        publish = demo.published_at[seq].timestamp()
        raw, canonical, task, receipt = stamps
        totals.append(receipt - publish)
        for hop, start, end in zip(HOPS, (publish, raw, canonical, task), (raw, canonical, task, receipt), strict=True):
            hops[hop].append(end - start)
    return EndToEnd(
        tasks=len(totals),
        total=_figures(totals),
        hops={hop: _figures(values) for hop, values in hops.items()},
        offered_per_s=rate_per_s,
        achieved_per_s=published.achieved_per_s,
        load=load,
    )


def _stamps(
    bootstrap: str, topics: list[str], task_topics: list[str], received: dict[str, datetime]
) -> Iterator[tuple[str, tuple[float, float, float, float]]]:
    """Per received task: the send times of its raw record, its event, its first task record, and its receipt.

    ``topics``: the raw and project-event topics; ``task_topics``: every utility's task topic.
    """
    raw_topic, events_topic = topics
    codec = Codec.default()
    raw_at: dict[str, float] = {}
    for record in _records(bootstrap, raw_topic):
        record_id = json.loads(record.value).get("record_id")
        if isinstance(record_id, str):
            raw_at.setdefault(record_id, record.timestamp / 1000)
    event_at: dict[str, tuple[float, str]] = {}
    for record in _records(bootstrap, events_topic):
        event = codec.decode_as("ProjectEvent", record.value)
        event_at.setdefault(event["event_id"], (record.timestamp / 1000, event["source_record_id"]))
    task_at: dict[str, tuple[float, str]] = {}
    for tasks_topic in task_topics:
        for record in _records(bootstrap, tasks_topic):
            task = codec.decode_as("UtilityTask", record.value)
            task_at.setdefault(task["task_id"], (record.timestamp / 1000, task["source_event_id"]))
    for task_id, receipt in received.items():
        if task_id not in task_at:
            continue
        task_sent, event_id = task_at[task_id]
        if event_id not in event_at:
            continue
        event_sent, record_id = event_at[event_id]
        if record_id in raw_at:
            yield task_id, (raw_at[record_id], event_sent, task_sent, receipt.timestamp())


def _records(bootstrap: str, topic: str) -> Iterator[Any]:
    """Every record of ``topic``, read once from the start (after the run: nothing else is running)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            message = f"no topic {topic}: the hop timestamps cannot be read"
            raise RuntimeError(message)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                yield from records
    finally:
        consumer.close()


def _figures(seconds: list[float]) -> Figures:
    return Figures(1000 * (percentile(seconds, 0.5) or 0.0), 1000 * (percentile(seconds, 0.99) or 0.0))


def _load() -> float:
    return os.getloadavg()[0]
