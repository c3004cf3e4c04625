import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from connectors.runtime.dlq import error_context
from connectors.runtime.interface import Output, SourceBatch
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.source_runner import SourceRunner
from connectors.settings import KafkaSettings, RetrySettings
from tests.support import read_topic, wait_until

pytestmark = pytest.mark.integration


@contextmanager
def _running(runner: SourceRunner, stop: threading.Event) -> Iterator[None]:
    """``runner`` on a thread of its own for the block; then stopped and joined."""
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)


class OneBigRow:
    """A source whose only page holds a row of 2 MB between two ordinary ones."""

    name = "big-row"

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def poll(self, cursor: str | None) -> SourceBatch:
        if cursor is not None:
            return SourceBatch(records=(), cursor=cursor)
        rows = (b"small-1", b"x" * 2_000_000, b"small-2")
        return SourceBatch(records=[Output(self.topic, b"k", row) for row in rows], cursor="1")

    def close(self) -> None:
        """Nothing to release."""


def test_a_record_too_large_for_kafka_is_dead_lettered_and_the_page_commits(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """A 2 MB row aborted the whole transaction on every retry; now its head goes to the DLQ with the reason."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    raw, dlq, offsets = f"{unique_prefix}raw", f"{unique_prefix}dlq", f"{unique_prefix}offsets"
    ensure_topics(kafka, [TopicSpec(raw, 1), TopicSpec(dlq, 1), TopicSpec(offsets, 1, compacted=True)])
    stop = threading.Event()
    metrics = Metrics(CollectorRegistry())
    runner = SourceRunner(
        OneBigRow(raw),
        producer=make_producer(kafka, transactional_id=f"{unique_prefix}big-row"),
        offsets_topic=offsets,
        poll_interval_s=0.05,
        retry=RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.2),
        metrics=metrics,
        stop=stop,
        start_cursor=None,
        dlq_topic=dlq,
    )
    with _running(runner, stop):
        wait_until(lambda: runner.cursor == "1", timeout_s=30, what="the page committed")
    assert ([r.value for r in read_topic(kafka_bootstrap, raw)], runner.state.failed) == (
        [b"small-1", b"small-2"],
        False,
    )
    (letter,) = read_topic(kafka_bootstrap, dlq)
    context = error_context(letter.headers)
    assert (len(letter.value), context["stage"], "2000001 bytes is over" in context["message"]) == (
        65536,
        "big-row",
        True,
    )


class Counting:
    """A source that counts its polls and has nothing new."""

    name = "counting"

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, cursor: str | None) -> SourceBatch:
        self.polls += 1
        return SourceBatch(records=(), cursor=cursor or "0")

    def close(self) -> None:
        """Nothing to release."""


def test_a_paused_source_is_not_polled_until_resumed(kafka_bootstrap: str, unique_prefix: str) -> None:
    """While the control topic pauses a source its runner does not poll it; once resumed it polls again."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    offsets = f"{unique_prefix}offsets"
    ensure_topics(kafka, [TopicSpec(offsets, 1, compacted=True)])
    paused = threading.Event()
    paused.set()
    source, stop, runner_metrics = Counting(), threading.Event(), Metrics(CollectorRegistry())
    runner = SourceRunner(
        source,
        producer=make_producer(kafka, transactional_id=f"{unique_prefix}counting"),
        offsets_topic=offsets,
        poll_interval_s=0.05,
        retry=RetrySettings(),
        metrics=runner_metrics,
        stop=stop,
        start_cursor=None,
        dlq_topic=f"{unique_prefix}dlq",
        paused=paused.is_set,
    )
    with _running(runner, stop):
        wait_until(lambda: runner.state.started, timeout_s=30, what="the runner started")
        time.sleep(0.5)
        held = source.polls
        held_gauge = runner_metrics.registry.get_sample_value("ubridge_stage_paused", {"stage": "counting"})
        paused.clear()
        wait_until(lambda: source.polls > 3, timeout_s=10, what="polls after the resume")
    assert (held, held_gauge) == (0, 1.0)


class Probed:
    """A source with one row that shows up when ``news`` is set, and a probe that says so."""

    name = "probed"

    def __init__(self, topic: str) -> None:
        self.topic, self.news, self.polls, self.probes = topic, threading.Event(), 0, 0

    def has_news(self, cursor: str | None) -> bool:
        self.probes += 1
        return cursor != "1" and self.news.is_set()

    def poll(self, cursor: str | None) -> SourceBatch:
        self.polls += 1
        if cursor == "1" or not self.news.is_set():
            return SourceBatch(records=(), cursor=cursor or "0")
        return SourceBatch(records=[Output(self.topic, b"k", b"row")], cursor="1")

    def close(self) -> None:
        """Nothing to release."""


def _runner(
    kafka: KafkaSettings,
    prefix: str,
    source: Probed,
    stop: threading.Event,
    *,
    poll_interval_s: float,
    probe_interval_s: float = 0.05,
) -> SourceRunner:
    offsets = f"{prefix}offsets"
    ensure_topics(kafka, [TopicSpec(source.topic, 1), TopicSpec(offsets, 1, compacted=True)])
    return SourceRunner(
        source,
        producer=make_producer(kafka, transactional_id=f"{prefix}{source.name}"),
        offsets_topic=offsets,
        poll_interval_s=poll_interval_s,
        probe_interval_s=probe_interval_s,
        retry=RetrySettings(),
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        start_cursor=None,
        dlq_topic=f"{prefix}dlq",
    )


def test_an_idle_source_with_a_probe_reacts_to_news_long_before_its_interval(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """With a 10-minute interval, a row reported by the probe is still written within seconds, by one more poll."""
    kafka, source = KafkaSettings(bootstrap=kafka_bootstrap), Probed(f"{unique_prefix}raw")
    stop = threading.Event()
    runner = _runner(kafka, unique_prefix, source, stop, poll_interval_s=600)
    with _running(runner, stop):
        wait_until(lambda: source.probes > 2, timeout_s=30, what="the idle runner probing")
        idle_polls = source.polls
        source.news.set()
        wait_until(lambda: runner.cursor == "1", timeout_s=10, what="the row written after the probe said so")
    assert (idle_polls, [r.value for r in read_topic(kafka_bootstrap, source.topic)]) == (1, [b"row"])


class Streaming(Probed):
    """Rows keep arriving: each poll writes the next row, and the probe reports the one written meanwhile."""

    name = "streaming"

    def has_news(self, cursor: str | None) -> bool:
        self.probes += 1
        return True

    def poll(self, cursor: str | None) -> SourceBatch:
        self.polls += 1
        following = int(cursor or 0) + 1
        return SourceBatch(records=[Output(self.topic, b"k", str(following).encode())], cursor=str(following))


class Trickling(Streaming):
    """Under load, but each next row is committed 30 ms after the last poll: a probe at once sees nothing yet."""

    name = "trickling"
    after_s = 0.03

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.polled_at = time.monotonic()

    def has_news(self, cursor: str | None) -> bool:
        self.probes += 1
        return time.monotonic() - self.polled_at >= self.after_s

    def poll(self, cursor: str | None) -> SourceBatch:
        self.polled_at = time.monotonic()
        return super().poll(cursor)


@pytest.mark.parametrize(
    ("source_class", "polls"),
    [(Streaming, 3), (Trickling, 5)],
    ids=["news-while-polling", "news-30-ms-after-each-poll"],
)
def test_a_source_under_load_polls_again_within_milliseconds_not_after_its_probe_interval(
    kafka_bootstrap: str, unique_prefix: str, source_class: type[Streaming], polls: int
) -> None:
    """A one-minute probe interval is never waited under load: a probe at once, then probes ramping from 10 ms.

    Rows that arrived during the poll are seen by the first probe; rows committed 30 ms after it by the ramp.
    """
    kafka, source = KafkaSettings(bootstrap=kafka_bootstrap), source_class(f"{unique_prefix}raw")
    stop = threading.Event()
    runner = _runner(kafka, unique_prefix, source, stop, poll_interval_s=600, probe_interval_s=60)
    with _running(runner, stop):
        wait_until(lambda: int(runner.cursor or 0) >= polls, timeout_s=30, what=f"{polls} polls, one after the other")
    expected = [str(n).encode() for n in range(1, polls + 1)]
    assert [r.value for r in read_topic(kafka_bootstrap, source.topic)][:polls] == expected


def test_a_probe_that_never_sees_news_still_leaves_a_full_poll_every_interval(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """Late commits are only found by full polls: the runner makes one each interval whatever the probe says."""
    kafka, source = KafkaSettings(bootstrap=kafka_bootstrap), Probed(f"{unique_prefix}raw")
    stop = threading.Event()
    runner = _runner(kafka, unique_prefix, source, stop, poll_interval_s=0.3)
    with _running(runner, stop):
        wait_until(lambda: source.polls >= 3, timeout_s=30, what="full polls at the interval")
    assert source.probes >= 2


class Closing(Counting):
    """A counting source that notes being closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        """Noted."""
        self.closed = True


def test_a_runner_whose_transactions_never_initialise_closes_its_producer(
    kafka_bootstrap: str, unique_prefix: str
) -> None:
    """init_transactions times out: the runner fails with it, having closed the producer and the source."""
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    producer = make_producer(kafka, transactional_id=f"{unique_prefix}stalled", max_block_ms=1)
    source = Closing()
    runner = SourceRunner(
        source,
        producer=producer,
        offsets_topic=f"{unique_prefix}offsets",
        poll_interval_s=0.05,
        retry=RetrySettings(),
        metrics=Metrics(CollectorRegistry()),
        stop=threading.Event(),
        start_cursor=None,
        dlq_topic=f"{unique_prefix}dlq",
    )
    with pytest.raises(KafkaTimeoutError):
        runner.run()
    assert (producer._closed, source.closed, source.polls, runner.state.failed) == (True, True, 0, True)
