import json
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.runtime.dlq import error_context
from connectors.runtime.interface import Delivered, Outcome, Processor, each_record
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.stage import COMMIT_EVERY_S, StageLoop
from connectors.settings import KafkaSettings
from schemas import Codec
from simulators.approval import ApprovalSimulator
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration


class Topics:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.kafka = KafkaSettings(bootstrap=bootstrap)
        self.raw, self.out, self.dlq = f"{prefix}raw", f"{prefix}events", f"{prefix}dlq"
        self.group = f"{prefix}normaliser"
        ensure_topics(self.kafka, [TopicSpec(t, 1) for t in (self.raw, self.out, self.dlq)])

    def produce(self, values: list[bytes]) -> None:
        producer = make_producer(self.kafka)
        for value in values:
            producer.send(self.raw, key=b"k", value=value, headers=[("ubridge.source", b"gonggai-interface")])
        producer.flush()
        producer.close()

    def committed(self) -> int | None:
        consumer = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap, group_id=self.group)
        try:
            offset: int | None = consumer.committed(TopicPartition(self.raw, 0))
            return offset
        finally:
            consumer.close()


def normaliser(topics: Topics) -> GonggaiNormaliser:
    return GonggaiNormaliser(
        input_topic=topics.raw, output_topic=topics.out, status_codes={11: "GRANTED"}, codec=Codec.default()
    )


def run_loop(topics: Topics, processor: Processor, metrics: Metrics, until: int) -> StageLoop:
    stop = threading.Event()
    loop = StageLoop(
        processor,
        consumer=make_consumer(topics.kafka, group_id=topics.group),
        producer=make_producer(topics.kafka),
        dlq_topic=topics.dlq,
        metrics=metrics,
        stop=stop,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()

    def records_in() -> float:
        return metrics.registry.get_sample_value("ubridge_records_in_total", {"stage": loop.stage}) or 0

    wait_until(lambda: records_in() >= until, timeout_s=30, what=f"{until} records through {loop.stage}")
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
    return loop


@pytest.fixture
def topics(kafka_bootstrap: str, unique_prefix: str) -> Topics:
    return Topics(kafka_bootstrap, unique_prefix)


@pytest.fixture
def valid_event() -> bytes:
    event = ApprovalSimulator(seed=1).generate(1)[0]
    return json.dumps(event, ensure_ascii=False).encode()


def test_bad_records_go_to_the_dead_letter_topic_with_their_bytes(topics: Topics, valid_event: bytes) -> None:
    """One good, two bad records: one ProjectEvent out, two dead letters with original bytes and reasons."""
    bad_project = json.loads(valid_event)
    bad_project["xmdm"] = "2026-37-1"
    bad = [b"{not json", json.dumps(bad_project, ensure_ascii=False).encode()]
    topics.produce([valid_event, *bad])
    run_loop(topics, normaliser(topics), Metrics(CollectorRegistry()), until=3)

    outputs = read_topic(topics.kafka.bootstrap, topics.out)
    assert [Codec.default().decode(r.value)[0] for r in outputs] == ["ProjectEvent"]
    letters = read_topic(topics.kafka.bootstrap, topics.dlq)
    assert [r.value for r in letters] == bad
    contexts = [error_context(r.headers) for r in letters]
    assert [(c["stage"], c["topic"], c["offset"], c["field"]) for c in contexts] == [
        ("normaliser-gonggai", topics.raw, "1", ""),
        ("normaliser-gonggai", topics.raw, "2", "xmdm"),
    ]
    assert dict(letters[0].headers)["ubridge.source"] == b"gonggai-interface"


def test_repaired_values_are_counted_and_travel_on_the_event(topics: Topics, valid_event: bytes) -> None:
    """A landline and a slashed grant time pass, each counted by field and kind and listed on the event."""
    repaired = json.loads(valid_event)
    repaired["lxrsjh"], repaired["blsj"] = "0535-6123456", "2026/11/24 10:15:00"
    topics.produce([json.dumps(repaired, ensure_ascii=False).encode()])
    metrics = Metrics(CollectorRegistry())
    run_loop(topics, normaliser(topics), metrics, until=1)
    (output,) = read_topic(topics.kafka.bootstrap, topics.out)
    event = Codec.default().decode_as("ProjectEvent", output.value)
    assert sorted((r["field"], r["kind"]) for r in event["repairs"]) == [
        ("contact_mobile", "landline"),
        ("occurred_at", "slashed_time"),
    ]
    for field, kind in (("contact_mobile", "landline"), ("occurred_at", "slashed_time")):
        labels = {"stage": "normaliser-gonggai", "field": field, "kind": kind}
        assert metrics.registry.get_sample_value("ubridge_records_repaired_total", labels) == 1


def test_offsets_are_committed_after_the_outputs(topics: Topics, valid_event: bytes) -> None:
    """After a clean stop the group's committed offset is the end of the input."""
    topics.produce([valid_event, valid_event])
    run_loop(topics, normaliser(topics), Metrics(CollectorRegistry()), until=2)
    assert topics.committed() == 2


class CountingConsumer(KafkaConsumer):  # type: ignore[misc]
    """A real consumer that counts the commits its stage asks for."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.commits = 0

    def commit(self, *args: object, **kwargs: object) -> None:
        self.commits += 1
        super().commit(*args, **kwargs)

    def commit_async(self, *args: object, **kwargs: object) -> object:
        self.commits += 1
        return super().commit_async(*args, **kwargs)


def test_offsets_are_committed_while_running_at_most_every_tenth_of_a_second(
    topics: Topics, valid_event: bytes
) -> None:
    """Records trickling in, a batch each, are committed without a stop by a few commits, not one per batch."""
    kafka = topics.kafka
    consumer = CountingConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=topics.group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    loop = StageLoop(
        normaliser(topics),
        consumer=consumer,
        producer=make_producer(kafka),
        dlq_topic=topics.dlq,
        metrics=metrics,
        stop=stop,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    producer = make_producer(kafka)
    try:
        wait_until(lambda: loop.state.ready, timeout_s=30, what="the stage to join its group")
        started = time.monotonic()
        for _ in range(30):
            producer.send(topics.raw, key=b"k", value=valid_event, headers=[("ubridge.source", b"gonggai-interface")])
            producer.flush()
            time.sleep(0.01)
        labels = {"stage": loop.stage}
        wait_until(
            lambda: (metrics.registry.get_sample_value("ubridge_records_in_total", labels) or 0) >= 30,
            timeout_s=10,
            what="30 records through the stage",
        )
        commits, elapsed = consumer.commits, time.monotonic() - started
        wait_until(lambda: topics.committed() == 30, timeout_s=5, what="the offsets committed while running")
        assert thread.is_alive()
        assert commits <= elapsed / COMMIT_EVERY_S + 2, (commits, elapsed)
    finally:
        producer.close()
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


class Exploding:
    """A processor that fails unexpectedly on its second record."""

    def __init__(self, inner: GonggaiNormaliser) -> None:
        self.inner = inner
        self.stage = inner.stage
        self.input_topics = inner.input_topics

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        for index, outcome in enumerate(self.inner.process(records)):
            if index == 1:
                message = "bug in a stage"
                raise RuntimeError(message)
            yield outcome

    def close(self) -> None:
        self.inner.close()


def test_a_crashing_stage_commits_nothing_and_a_restart_catches_up(topics: Topics, valid_event: bytes) -> None:
    """An unexpected error stops the stage without committing; the next run processes every record."""
    topics.produce([valid_event, valid_event, valid_event])
    metrics = Metrics(CollectorRegistry())
    loop = StageLoop(
        Exploding(normaliser(topics)),
        consumer=make_consumer(topics.kafka, group_id=topics.group),
        producer=make_producer(topics.kafka),
        dlq_topic=topics.dlq,
        metrics=metrics,
        stop=threading.Event(),
    )
    with pytest.raises(RuntimeError, match="bug in a stage"):
        loop.run()
    assert loop.state.failed
    assert topics.committed() is None

    run_loop(topics, normaliser(topics), Metrics(CollectorRegistry()), until=3)
    assert topics.committed() == 3
    assert len(read_topic(topics.kafka.bootstrap, topics.out)) >= 3


class Poisoned:
    """A normaliser whose handling of the record at offset 1 raises an exception nobody foresaw."""

    def __init__(self, inner: GonggaiNormaliser) -> None:
        self.inner = inner
        self.stage = inner.stage
        self.input_topics = inner.input_topics
        self.attempts = 0

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        return each_record(records, self._handle)

    def _handle(self, record: ConsumerRecord) -> Delivered:
        if record.offset == 1:
            self.attempts += 1
            message = "year 0 is out of range"
            raise ValueError(message)
        (outcome,) = self.inner.process([record])
        assert isinstance(outcome, Delivered)
        return outcome

    def close(self) -> None:
        self.inner.close()


def test_a_poison_record_is_one_dead_letter_and_the_stage_moves_on(topics: Topics, valid_event: bytes) -> None:
    """A record whose processing raises ValueError is retried, dead-lettered as ValueError; the rest go through."""
    topics.produce([valid_event, valid_event, valid_event])
    metrics = Metrics(CollectorRegistry())
    processor = Poisoned(normaliser(topics))
    loop = run_loop(topics, processor, metrics, until=3)
    (letter,) = read_topic(topics.kafka.bootstrap, topics.dlq)
    context = error_context(letter.headers)
    failed = metrics.registry.get_sample_value(
        "ubridge_records_failed_total", {"stage": loop.stage, "error_class": "ValueError"}
    )
    assert (context["class"], context["offset"], "year 0 is out of range" in context["message"]) == (
        "ValueError",
        "1",
        True,
    )
    assert (processor.attempts, failed, loop.state.failed, topics.committed()) == (3, 1.0, False, 3)
    assert len(read_topic(topics.kafka.bootstrap, topics.out)) == 2


@pytest.mark.parametrize(
    ("background", "configured", "fetch"), [(True, 300, (1 << 20, 300)), (False, 300, (1, 500)), (True, 0, (1, 500))]
)
def test_a_background_consumer_lets_the_broker_gather_records_and_still_gets_each(
    kafka_bootstrap: str, unique_prefix: str, background: bool, configured: int, fetch: tuple[int, int]
) -> None:
    """Off the delivery path a fetch may wait (up to the setting) to fill; on it, or set to 0, it is answered now."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap, topic_prefix=unique_prefix, background_fetch_wait_ms=configured)
    topic = f"{unique_prefix}gathered"
    ensure_topics(kafka, [TopicSpec(topic, 1)])
    producer = make_producer(kafka)
    producer.send(topic, key=b"k", value=b"one").get(10)
    producer.close()
    consumer = make_consumer(kafka, group_id=None, background=background)
    try:
        assert (consumer.config["fetch_min_bytes"], consumer.config["fetch_max_wait_ms"]) == fetch
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 15
        while not records and time.monotonic() < deadline:
            records += [r for batch in consumer.poll(timeout_ms=500).values() for r in batch]
    finally:
        consumer.close()
    assert [r.value for r in records] == [b"one"]


def test_a_stage_learns_the_topics_it_writes_before_it_joins(topics: Topics) -> None:
    """Ready means its producer knows each output topic's partitions: the first records wait for no metadata."""
    producer = make_producer(topics.kafka)
    stop = threading.Event()
    loop = StageLoop(
        normaliser(topics),
        consumer=make_consumer(topics.kafka, group_id=topics.group),
        producer=producer,
        dlq_topic=topics.dlq,
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        warm_topics=[topics.out, topics.dlq],
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: loop.state.ready, timeout_s=30, what="the stage joined")
        known = {t: producer._metadata.partitions_for_topic(t) for t in (topics.out, topics.dlq)}  # its cache
    finally:
        stop.set()
        thread.join(timeout=15)
    assert known == {topics.out: {0}, topics.dlq: {0}}
