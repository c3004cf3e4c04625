from collections.abc import Iterator

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from connectors.app import App
from connectors.runtime.trace_context import of_headers, parse
from schemas import Codec
from simulators.approval import ApprovalSimulator
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


def trace_of(record: ConsumerRecord) -> tuple[str, str]:
    """(trace id, parent id) of a record's ``traceparent`` header, which every record must have."""
    parsed = parse(of_headers(record.headers))
    assert parsed is not None, f"{record.topic}@{record.offset} has no valid traceparent"
    return parsed[0], parsed[1]


def test_one_trace_id_follows_each_record_from_the_source_to_the_utility(
    kafka_bootstrap: str, unique_prefix: str, upstream: str
) -> None:
    """Raw record, task, the utility's request and the RECEIVED status share one trace id, each with its own span."""
    codec = Codec.default()
    with running_utility(UTILITY) as (sim, url):
        source = {"base_url": upstream, "token": "approval-token", "page_size": 50, "poll_interval_s": 0.1}
        settings = settings_for(
            kafka_bootstrap,
            unique_prefix,
            sources={"gonggai_interface": source},
            utilities=[utility_config(UTILITY, url)],
        )
        app = App(settings, only=["gonggai-interface", "normaliser-gonggai", "router", f"sink-{UTILITY}"])
        app.start()
        try:
            wait_until(lambda: sim.stats().unique >= 3, timeout_s=60, what="tasks at the utility")
        finally:
            app.stop()
            assert app.wait(timeout_s=15)
        received = {task.task_id: task for task in sim.tasks()}
    raw = [trace_of(r) for r in read_topic(kafka_bootstrap, settings.topic("raw_gonggai"))]
    assert len({trace for trace, _ in raw}) == len(raw), "each record read starts its own trace"
    raw_traces = {trace for trace, _ in raw}
    tasks = {}
    for record in read_topic(kafka_bootstrap, settings.topic("tasks")):
        trace, span = trace_of(record)
        assert trace in raw_traces and (trace, span) not in raw
        tasks[codec.decode_as("UtilityTask", record.value)["task_id"]] = trace
    statuses = read_topic(kafka_bootstrap, settings.topic("task_status"))
    sent = {codec.decode_as("TaskStatus", r.value)["task_id"]: of_headers(r.headers) for r in statuses}
    for task_id, task in received.items():
        request = parse(task.traceparent)
        assert request is not None and request[0] == tasks[task_id]
        assert sent[task_id] == (task.traceparent or "").encode(), "RECEIVED continues the request's span"
