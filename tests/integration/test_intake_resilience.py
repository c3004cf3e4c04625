"""The push intakes against real brokers: bounded answers when Kafka dies, replays refused across processes."""

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from connectors.broker.local_kafka import start_broker, stop_broker
from connectors.gonggai.webhook import WEBHOOK_PATH, build_webhook
from connectors.gonggai.webhook_settings import GonggaiWebhookSettings
from connectors.runtime.http_intake import HttpIntake
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings, StatusCallbackSettings
from connectors.status import build_callback_intake
from schemas import Codec
from simulators.approval.generator import EventGenerator
from simulators.approval.push import sign
from tests.support import make_task, read_topic, wait_until

pytestmark = pytest.mark.integration

MAPPINGS = Path(__file__).parents[2] / "deploy" / "config" / "mappings"
SECRET = "resilience-secret-0123456789"
SETTINGS = GonggaiWebhookSettings(secret=SecretStr(SECRET), port=0, mapping=MAPPINGS / "default.yaml")


def signed(body: bytes, stamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Ubridge-Timestamp": str(stamp),
        "X-Ubridge-Signature": sign(SECRET, stamp, body),
    }


def start(intake: HttpIntake, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    wait_until(lambda: intake.state.ready, timeout_s=60, what=f"{intake.stage} listening")
    return thread


def test_kafka_down_gets_503_within_5_s(tmp_path: Path, unique_prefix: str) -> None:
    """With the broker gone, the webhook and the status callbacks answer 503 + Retry-After within 5 s."""
    home = tmp_path / "broker"
    info = start_broker(home, port=0)
    try:
        # In a process of its own: kafka-python 3.0.12 leaks the sockets of its refused reconnect attempts,
        # which would otherwise be reported (as errors) at the end of the whole test session.
        probe = subprocess.run(
            [sys.executable, "-m", __name__, str(home), info.bootstrap, unique_prefix],
            capture_output=True,
            check=True,
            text=True,
            timeout=180,
            cwd=Path(__file__).parents[2],
        )
    finally:
        stop_broker(home)
    answers = json.loads(probe.stdout.splitlines()[-1])
    assert [(status, retry) for status, retry, _ in answers] == [(503, "5")] * 4
    assert max(seconds for _, _, seconds in answers) < 5.0, answers


def answers_with_kafka_stopped(home: Path, kafka: KafkaSettings) -> list[tuple[int, str | None, float]]:
    """Start both intakes, check they store, stop the broker, and time two requests to each."""
    raw, status = f"{kafka.topic_prefix}raw", f"{kafka.topic_prefix}status"
    ensure_topics(kafka, [TopicSpec(raw, 1), TopicSpec(status, 1)])
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    webhook = build_webhook(SETTINGS, kafka=kafka, raw_topic=raw, metrics=metrics, stop=stop)
    callbacks = build_callback_intake(
        StatusCallbackSettings(port=0), tokens={"t0ken": "yantai-water"}, kafka=kafka, topic=status,
        metrics=metrics, stop=stop,
    )  # fmt: skip
    deliver(kafka, status, "yantai-water", "t-1")  # the sink's RECEIVED: the callbacks know the task
    threads = [start(webhook, stop), start(callbacks, stop)]
    events = EventGenerator(seed=5).generate(2)
    webhook_url = f"http://127.0.0.1:{webhook.port}{WEBHOOK_PATH}"
    report = {"stage": "CONTACTED", "occurred_at": "2026-11-26T10:15:00+08:00"}
    callback_url = f"http://127.0.0.1:{callbacks.port}/v1/tasks/t-1/status"
    auth = {"Authorization": "Bearer t0ken"}
    body = json.dumps(events[0]).encode()
    assert httpx.post(webhook_url, content=body, headers=signed(body, int(time.time())), timeout=10).status_code == 202
    assert httpx.post(callback_url, json=report, headers=auth, timeout=10).status_code == 202
    stop_broker(home)
    answers = []
    for _ in range(2):
        body = json.dumps(events[1]).encode()
        began = time.monotonic()
        to_webhook = httpx.post(webhook_url, content=body, headers=signed(body, int(time.time())), timeout=30)
        answers.append((to_webhook.status_code, to_webhook.headers.get("retry-after"), time.monotonic() - began))
        began = time.monotonic()
        to_callbacks = httpx.post(callback_url, json=report, headers=auth, timeout=30)
        answers.append((to_callbacks.status_code, to_callbacks.headers.get("retry-after"), time.monotonic() - began))
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    return answers


def deliver(kafka: KafkaSettings, topic: str, utility: str, task_id: str) -> None:
    """Write the sink's RECEIVED of a task, as a sink does once the utility took it."""
    task = {**make_task(utility, 1), "task_id": task_id}
    received = {
        "task_id": task_id, "utility_id": utility, "application_id": None, "stage": "RECEIVED",
        "occurred_at": task["created_at"], "reported_at": task["created_at"], "pipe_length_m": None,
        "reason": None, "detail": None, "reporter": "sink", "task": task,
    }  # fmt: skip
    producer = make_producer(kafka)
    try:
        producer.send(topic, key=task_id.encode(), value=Codec.default().encode("TaskStatus", received)).get(10)
    finally:
        producer.close()


@pytest.fixture
def kafka(kafka_bootstrap: str, unique_prefix: str) -> Iterator[KafkaSettings]:
    """The session broker with fresh raw and signatures topics under a unique prefix."""
    settings = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix)
    ensure_topics(settings, [TopicSpec(f"{unique_prefix}raw", 3), TopicSpec(f"{unique_prefix}sigs", 3, compacted=True)])
    yield settings


def shared_webhook(kafka: KafkaSettings, stop: threading.Event) -> HttpIntake:
    prefix = kafka.topic_prefix
    return build_webhook(
        SETTINGS, kafka=kafka, raw_topic=f"{prefix}raw", metrics=Metrics(CollectorRegistry()), stop=stop,
        signatures_topic=f"{prefix}sigs",
    )  # fmt: skip


def test_replay_is_refused_after_a_restart_and_by_another_process(kafka: KafkaSettings) -> None:
    """A signed push accepted once is refused by a restarted intake and by a second one running alongside."""
    body = json.dumps(EventGenerator(seed=6).generate(1)[0]).encode()
    headers = signed(body, int(time.time()))
    first_stop = threading.Event()
    first = shared_webhook(kafka, first_stop)
    first_thread = start(first, first_stop)
    second_stop = threading.Event()
    second = shared_webhook(kafka, second_stop)
    second_thread = start(second, second_stop)
    try:
        url = f"http://127.0.0.1:{first.port}{WEBHOOK_PATH}"
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 202
        other = f"http://127.0.0.1:{second.port}{WEBHOOK_PATH}"
        wait_until(
            lambda: httpx.post(other, content=body, headers=headers, timeout=10).status_code == 401,
            timeout_s=10,
            what="the other process refusing the replay",
        )
    finally:
        first_stop.set()
        second_stop.set()
        first_thread.join(timeout=15)
        second_thread.join(timeout=15)
    restarted_stop = threading.Event()
    restarted = shared_webhook(kafka, restarted_stop)
    restarted_thread = start(restarted, restarted_stop)
    try:
        again = httpx.post(
            f"http://127.0.0.1:{restarted.port}{WEBHOOK_PATH}", content=body, headers=headers, timeout=10
        )
    finally:
        restarted_stop.set()
        restarted_thread.join(timeout=15)
    assert (again.status_code, again.json()["error"]) == (401, "replayed request: this signature was already accepted")
    assert len(read_topic(kafka.bootstrap, f"{kafka.topic_prefix}raw")) == 1
    signatures = read_topic(kafka.bootstrap, f"{kafka.topic_prefix}sigs")
    assert [r.key.decode().split(":")[0] for r in signatures] == ["gonggai-webhook"]


if __name__ == "__main__":
    configure_logging(json=True)  # on standard error: standard output carries the answers
    print(
        json.dumps(
            answers_with_kafka_stopped(
                Path(sys.argv[1]), KafkaSettings(bootstrap=sys.argv[2], topic_prefix=sys.argv[3])
            )
        )
    )
