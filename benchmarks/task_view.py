"""The task view's catch-up rate: statuses folded per second from the task-status topic into its SQLite table.

Two views follow every status (the status callbacks' and the permit intake's, which check a report against
the task it names), so each status's cost is paid twice per installation. The topic is filled with
``tasks`` tasks of two statuses each (RECEIVED, CONTACTED); a fresh view on a file of its own then reads it
from the start, and the time from its start to :meth:`TaskView.wait_caught_up` is what is measured. The view
reads at most ``BATCH`` records a poll: live, at a hundred events a second, its batches are that small, and
what each batch costs (its commit) weighs as it does then, not as in a catch-up of 500-record batches.
"""

import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.settings import KafkaSettings
from connectors.status.task_view import TaskView
from schemas import Codec

PARTITIONS = 3
BATCH = 10
_AT = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def statuses_per_s(bootstrap: str, prefix: str, tasks: int) -> float:
    """Fill a status topic with ``tasks`` × 2 statuses, then time a fresh view's catch-up; statuses per second."""
    kafka = KafkaSettings(bootstrap=bootstrap)
    topic = f"{prefix}task-view.{tasks}"
    ensure_topics(kafka, [TopicSpec(topic, PARTITIONS)])
    codec, producer = Codec.default(), make_producer(kafka)
    for n in range(tasks):
        task_id = uuid.uuid4().hex
        for step, stage in enumerate(("RECEIVED", "CONTACTED")):
            value = codec.encode("TaskStatus", _status(task_id, stage, _AT + timedelta(minutes=step)))
            producer.send(topic, key=task_id.encode(), value=value, partition=n % PARTITIONS)
    producer.flush()
    producer.close()
    with tempfile.TemporaryDirectory(prefix="ubridge-bench-view-") as directory:
        trickle = KafkaSettings(bootstrap=bootstrap, max_poll_records=BATCH)
        view = TaskView(trickle, topic, path=Path(directory) / "tasks.sqlite")
        stop = threading.Event()
        started = time.perf_counter()
        reader = threading.Thread(target=view.run, args=(stop,), daemon=True)
        reader.start()
        caught_up = view.wait_caught_up(timeout_s=600)
        elapsed = time.perf_counter() - started
        stop.set()
        reader.join(timeout=30)
    if not caught_up:
        message = f"the view did not catch up with {2 * tasks} statuses in 600 s"
        raise RuntimeError(message)
    return 2 * tasks / elapsed


def _status(task_id: str, stage: str, at: datetime) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": at,
        "reported_at": at + timedelta(minutes=1),
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
