import socket
from collections.abc import Iterator

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from connectors.app import App
from connectors.runtime.trace_context import of_headers, parse
from connectors.settings import Settings
from schemas import Codec
from simulators.approval import ApprovalSimulator
from simulators.utility import UtilitySimulator
from tests.support import read_topic, running_utility, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

UTILITY = "yantai-water"


@pytest.fixture
def upstream() -> Iterator[str]:
    """The approval system's data interface, with events for several cities."""
    simulator = ApprovalSimulator(seed=21)
    url = simulator.start()
    simulator.generate(80)
    yield url
    simulator.stop()


def received_all(settings: Settings, sim: UtilitySimulator) -> bool:
    """Whether the task-status topic holds a RECEIVED for the revision of each task the utility holds."""
    codec = Codec.default()
    held = {(task.task_id, task.revision) for task in sim.tasks()}
    written = set()
    for record in read_topic(settings.kafka.bootstrap, settings.topic("task_status")):
        status = codec.decode_as("TaskStatus", record.value)
        if status["stage"] == "RECEIVED" and status["task"] is not None:
            written.add((status["task_id"], status["task"]["revision"]))
    return held <= written


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def trace_of(record: ConsumerRecord) -> tuple[str, str]:
    """(trace id, parent id) of a record's ``traceparent`` header, which every record must have."""
    parsed = parse(of_headers(record.headers))
    assert parsed is not None, f"{record.topic}@{record.offset} has no valid traceparent"
    return parsed[0], parsed[1]


def test_one_trace_id_follows_each_record_from_the_source_to_the_utility_and_back(
    kafka_bootstrap: str, unique_prefix: str, upstream: str
) -> None:
    """Raw record, task, the utility's request, RECEIVED and the utility's reports share one trace id; types named."""
    codec = Codec.default()
    with running_utility(UTILITY) as (sim, url):
        source = {"base_url": upstream, "token": "approval-token", "page_size": 50, "poll_interval_s": 0.1}
        port = free_port()
        settings = settings_for(
            kafka_bootstrap,
            unique_prefix,
            sources={"gonggai_interface": source},
            utilities=[utility_config(UTILITY, url, callback_token="callback-secret")],
            status_callbacks={"port": port},
        )
        callback_url = f"http://127.0.0.1:{port}"
        sim.set_progress(callback_url=callback_url, callback_token="callback-secret", hours_per_second=5000)
        stages = ["gonggai-interface", "normaliser-gonggai", "router", f"sink-{UTILITY}", "status-callbacks"]
        app = App(settings, only=stages, serve_metrics=False)
        app.start()
        try:
            wait_until(lambda: sim.stats().callbacks_delivered >= 3, timeout_s=60, what="reports")
            # the sink writes RECEIVED after the utility answered: stopping earlier would leave it for the restart
            wait_until(lambda: received_all(settings, sim), timeout_s=30, what="a RECEIVED for every delivery")
        finally:
            app.stop()
            assert app.wait(timeout_s=15)
        received = {task.task_id: task for task in sim.tasks()}
    raw_records = read_topic(kafka_bootstrap, settings.topic("raw_gonggai"))
    assert all(dict(r.headers)["content-type"] == b"application/json" for r in raw_records)
    raw = [trace_of(r) for r in raw_records]
    assert len({trace for trace, _ in raw}) == len(raw), "each record read starts its own trace"
    raw_traces = {trace for trace, _ in raw}
    tasks: dict[str, list[str]] = {}  # task id → the trace of each of its records (revisions), in order
    for record in read_topic(kafka_bootstrap, settings.task_topic(UTILITY)):
        trace, span = trace_of(record)
        assert dict(record.headers)["ubridge.schema"] == b"ubridge.v1.UtilityTask"
        assert trace in raw_traces and (trace, span) not in raw
        tasks.setdefault(codec.decode_as("UtilityTask", record.value)["task_id"], []).append(trace)
    statuses = [
        (codec.decode_as("TaskStatus", r.value), r) for r in read_topic(kafka_bootstrap, settings.topic("task_status"))
    ]
    sent: dict[str, set[bytes | None]] = {}  # task id → the traceparent of each RECEIVED (one per revision)
    for status, record in statuses:
        if status["stage"] == "RECEIVED":
            sent.setdefault(status["task_id"], set()).add(of_headers(record.headers))
    for task_id, task in received.items():
        request = parse(task.traceparent)
        # a later record of the same content is a repeat the sink does not send: the request carries the trace of
        # the record it delivered, one of the task's
        assert request is not None and request[0] in tasks[task_id], "the trace of one of the task's records"
        assert (task.traceparent or "").encode() in sent[task_id], "a RECEIVED continues the request's span"
    reports = [(status, trace_of(r)) for status, r in statuses if status["reporter"] != "sink"]
    assert reports, "the utility reported back"
    for status, (trace, _) in reports:
        assert trace in tasks[status["task_id"]], "the utility's report continues one of the task's traces"
