import threading
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.runtime.kafka import TopicSpec, ensure_topics
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from connectors.status import StatusCallbackSettings, build_callback_intake
from schemas import Codec
from tests.support import read_topic

pytestmark = pytest.mark.integration

TOKENS = {"water-callback": "yantai-water", "gas-callback": "yantai-gas"}


def test_callbacks_land_on_the_task_status_topic(kafka_bootstrap: str, unique_prefix: str) -> None:
    """Accepted callbacks are on the topic, keyed by task id, before their 202; refused ones never are."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    topic = f"{unique_prefix}ubridge.task-status.v1"
    ensure_topics(kafka, [TopicSpec(topic, 3)])
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    intake = build_callback_intake(
        StatusCallbackSettings(port=0), tokens=TOKENS, kafka=kafka, topic=topic, metrics=metrics, stop=stop
    )
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    reports = [
        ("water-callback", "w-1", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}),
        ("water-callback", "w-1", {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00",
                                   "pipe_length_m": 42.5}),
        ("gas-callback", "g-7", {"stage": "REJECTED", "occurred_at": "2026-11-04T09:00:00+08:00",
                                 "reason": "市政管网未覆盖", "utility_id": "yantai-gas"}),
        ("water-callback", "w-2", {"stage": "CLOSED", "occurred_at": "2026-11-05T16:00:00+08:00", "detail": "办结"}),
    ]  # fmt: skip
    refused = [
        ("wrong-token", "w-3", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}),
        ("water-callback", "g-8", {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00",
                                   "utility_id": "yantai-gas"}),
        ("water-callback", "w-4", {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T14:05:00+08:00"}),
    ]  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{intake.port}", timeout=20) as client:
            answers = [
                client.post(f"/v1/tasks/{task_id}/status", json=body, headers={"Authorization": f"Bearer {token}"})
                for token, task_id, body in reports + refused
            ]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert [a.status_code for a in answers] == [202, 202, 202, 202, 401, 403, 422]
    assert answers[2].json() == {"accepted": True, "task_id": "g-7"}
    records = read_topic(kafka_bootstrap, topic)
    codec = Codec.default()
    received = [(r.key.decode(), codec.decode_as("TaskStatus", r.value)) for r in records]
    summary = [(key, s["utility_id"], s["stage"], s["occurred_at"], s["reporter"]) for key, s in received]
    assert sorted(summary) == [
        ("g-7", "yantai-gas", "REJECTED", datetime(2026, 11, 4, 1, 0, tzinfo=UTC), "callback"),
        ("w-1", "yantai-water", "CONTACTED", datetime(2026, 11, 2, 2, 15, tzinfo=UTC), "callback"),
        ("w-1", "yantai-water", "EXTERNAL_WORKS", datetime(2026, 11, 3, 6, 5, tzinfo=UTC), "callback"),
        ("w-2", "yantai-water", "CLOSED", datetime(2026, 11, 5, 8, 0, tzinfo=UTC), "callback"),
    ]
    by_stage = {s["stage"]: s for _, s in received}
    assert (by_stage["EXTERNAL_WORKS"]["pipe_length_m"], by_stage["REJECTED"]["reason"]) == (42.5, "市政管网未覆盖")
    assert by_stage["CLOSED"]["detail"] == "办结"
    w1 = [r for r in records if r.key == b"w-1"]
    assert len({r.partition for r in w1}) == 1  # one task's reports stay in order on one partition
    assert [codec.decode_as("TaskStatus", r.value)["stage"] for r in sorted(w1, key=lambda r: r.offset)] == [
        "CONTACTED",
        "EXTERNAL_WORKS",
    ]
    assert metrics.registry.get_sample_value("ubridge_records_out_total", {"stage": "status-callbacks"}) == 4
