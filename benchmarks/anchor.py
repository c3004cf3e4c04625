"""The sink's anchors: a straightforward aiokafka + aiohttp consumer doing a sink's work, for ``sink_vs_anchor``.

What a competent engineer would write by hand in an afternoon, with the same duties as ubridge's sink: each
task is Avro-decoded with the same codec, POSTed as the same JSON body with its ``Idempotency-Key`` and
bearer token, tasks of one project (the record key) one after another in order while up to ``in_flight``
requests of different projects are on the wire, one ``RECEIVED`` status record (the task inside, Avro) is
produced per delivered task, and offsets are committed only after every response of the batch arrived and
every status record was acknowledged. It has none of ubridge's revisions, retries or dead letters: a task
refused here fails the run.

:func:`kafka_python_anchor_sink` is the same consumer, line for line, on kafka-python, the Kafka client ubridge is
built on: how fast a sink can be with that client, whatever the code around it (``kafka_python_anchor_vs_anchor``).
"""

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord as KafkaRecord
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from connectors.utility.payload import task_body
from routing.revisions import idempotency_key
from schemas import Codec

_POLL_MS = 500
_ACK_TIMEOUT_S = 30
IN_FLIGHT = 32


class _Record(Protocol):
    """What the anchors read of a record, from either client."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def offset(self) -> int: ...


P = TypeVar("P")
R = TypeVar("R", bound=_Record)


@dataclass(frozen=True)
class SinkJob:
    """What an anchor delivers: ``expected`` tasks of ``input_topic`` to ``endpoint``, statuses to ``status_topic``."""

    bootstrap: str
    input_topic: str
    status_topic: str
    group: str
    endpoint: str
    token: str
    utility: str
    expected: int
    in_flight: int = IN_FLIGHT


async def anchor_sink(job: SinkJob) -> int:
    """Deliver the job's tasks; returns the tasks delivered."""
    codec = Codec.default()
    consumer = AIOKafkaConsumer(job.input_topic, **_consumer_options(job))
    producer = AIOKafkaProducer(bootstrap_servers=job.bootstrap, linger_ms=5)
    slots = asyncio.Semaphore(job.in_flight)
    delivered = 0
    await consumer.start()
    await producer.start()
    try:
        async with _session(job) as http:

            async def lane(records: list[ConsumerRecord[bytes, bytes]]) -> list[asyncio.Future[Any]]:
                acks = []
                for record in records:
                    task = codec.decode_as("UtilityTask", record.value)
                    await _post(http, slots, job.endpoint, task)
                    acks.append(
                        await producer.send(job.status_topic, _received(codec, task, job.utility), key=record.key)
                    )
                return acks

            while delivered < job.expected:
                lanes, offsets = _by_key(await consumer.getmany(timeout_ms=_POLL_MS))
                if not offsets:
                    continue
                for acks in await asyncio.gather(*(lane(records) for records in lanes.values())):
                    for ack in acks:
                        await ack
                        delivered += 1
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()
    return delivered


async def kafka_python_anchor_sink(job: SinkJob) -> int:
    """:func:`anchor_sink` on kafka-python: poll, deliver the batch, wait for the acknowledgements, commit.

    kafka-python's calls block, and the loop has nothing else to run while they do: like the aiokafka anchor, it
    polls only once the batch before was delivered and committed.
    """
    codec = Codec.default()
    consumer = KafkaConsumer(job.input_topic, **_consumer_options(job))
    producer = KafkaProducer(bootstrap_servers=job.bootstrap, linger_ms=5)
    slots = asyncio.Semaphore(job.in_flight)
    delivered = 0
    try:
        async with _session(job) as http:

            async def lane(records: list[KafkaRecord]) -> list[FutureRecordMetadata]:
                acks = []
                for record in records:
                    task = codec.decode_as("UtilityTask", record.value)
                    await _post(http, slots, job.endpoint, task)
                    acks.append(producer.send(job.status_topic, _received(codec, task, job.utility), key=record.key))
                return acks

            while delivered < job.expected:
                lanes, offsets = _by_key(consumer.poll(timeout_ms=_POLL_MS))
                if not offsets:
                    continue
                for acks in await asyncio.gather(*(lane(records) for records in lanes.values())):
                    for ack in acks:
                        ack.get(timeout=_ACK_TIMEOUT_S)
                        delivered += 1
                consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
    finally:
        consumer.close()
        producer.close()
    return delivered


def _consumer_options(job: SinkJob) -> dict[str, Any]:
    """The job's consumer group, committing only when told, from the start of a topic it never read."""
    return {
        "bootstrap_servers": job.bootstrap,
        "group_id": job.group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }


def _by_key(batch: Mapping[P, list[R]]) -> tuple[dict[bytes | None, list[R]], dict[P, int]]:
    """A poll's records by key (one lane each, in order), and the offset to commit per partition once delivered."""
    lanes: dict[bytes | None, list[R]] = defaultdict(list)
    offsets: dict[P, int] = {}
    for tp, records in batch.items():
        for record in records:
            lanes[record.key].append(record)
        offsets[tp] = records[-1].offset + 1
    return lanes, offsets


def _session(job: SinkJob) -> aiohttp.ClientSession:
    """The HTTP session of a sink: the bearer token and JSON on every request, ``in_flight`` connections."""
    headers = {"Authorization": f"Bearer {job.token}", "Content-Type": "application/json; charset=utf-8"}
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=job.in_flight), headers=headers)


async def _post(http: aiohttp.ClientSession, slots: asyncio.Semaphore, endpoint: str, task: dict[str, Any]) -> None:
    """POST one task as the sink does, within the requests allowed in flight; anything but 2xx fails the run."""
    async with (
        slots,
        http.post(
            endpoint,
            data=task_body(task),  # type: ignore[arg-type]
            headers={"Idempotency-Key": idempotency_key(task["task_id"], task["revision"])},
        ) as response,
    ):
        await response.read()
        response.raise_for_status()


def _received(codec: Codec, task: dict[str, Any], utility: str) -> bytes:
    now = datetime.now(UTC)
    status = {
        "task_id": task["task_id"],
        "utility_id": utility,
        "application_id": task["application_id"],
        "stage": "RECEIVED",
        "occurred_at": now,
        "reported_at": now,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "sink",
        "task": task,
    }
    return codec.encode("TaskStatus", status)
