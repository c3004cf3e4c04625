from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from connectors.admin.audit import audit_value
from connectors.admin.dead_letters import DeadLetterFilter, Letter, NotReplayableError, replay_output
from connectors.runtime.dlq import dead_letter, error_context, source_dead_letter
from connectors.runtime.interface import Output
from routing.errors import DataError

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CONTEXT = {"stage": "router", "class": "DataError", "field": "region_code", "topic": "t.events", "partition": "2"}
LETTER = Letter(partition=0, offset=10, timestamp=AT, context=CONTEXT)


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        (DeadLetterFilter(), True),
        (DeadLetterFilter(stage="router", error_class="DataError", field="region_code"), True),
        (DeadLetterFilter(stage="sink-yantai-water"), False),
        (DeadLetterFilter(error_class="RecordFailed"), False),
        (DeadLetterFilter(field="xmdm"), False),
        (DeadLetterFilter(since=AT, until=AT + timedelta(seconds=1)), True),
        (DeadLetterFilter(since=AT + timedelta(milliseconds=1)), False),
        (DeadLetterFilter(until=AT), False),
        (DeadLetterFilter(from_offset=10, to_offset=10), True),
        (DeadLetterFilter(from_offset=11), False),
        (DeadLetterFilter(to_offset=9), False),
    ],
)
def test_a_filter_matches_when_every_criterion_given_holds(chosen: DeadLetterFilter, expected: bool) -> None:
    """Each criterion alone decides; since is inclusive, until exclusive, offsets inclusive at both ends."""
    assert chosen.matches(LETTER) is expected


def test_a_replay_goes_back_to_the_input_partition_without_the_error_headers() -> None:
    """The replayed record is the original key, value and headers, to the topic and partition it came from."""
    headers = (("traceparent", b"00-abc"), ("ubridge.error.class", b"DataError"))
    output = replay_output(CONTEXT, b"k", b"v", headers, topic=None)
    assert output == Output(topic="t.events", key=b"k", value=b"v", headers=(("traceparent", b"00-abc"),), partition=2)


def test_a_replay_to_a_named_topic_leaves_the_partition_to_the_key() -> None:
    """Replayed to a named topic, the record is partitioned by its key."""
    assert replay_output(CONTEXT, b"k", b"v", (), topic="t.other") == Output(topic="t.other", key=b"k", value=b"v")


def test_a_source_dead_letter_needs_a_named_topic() -> None:
    """A source's dead letter names no input partition: replaying it without a topic is refused, with a reason."""
    letter = source_dead_letter(
        DataError("", "too large"), stage="gonggai-spgl", topic="dlq", key=b"k", value=b"v", where="17", now=AT
    )
    context = error_context(letter.headers)
    with pytest.raises(NotReplayableError, match="came from source gonggai-spgl"):
        replay_output(context, letter.key, letter.value, letter.headers, topic=None)
    assert replay_output(context, b"k", b"v", letter.headers, topic="t.raw").headers == (
        ("ubridge.source", b"gonggai-spgl"),
    )


def test_a_dead_letter_round_trips_through_a_replay() -> None:
    """Dead-lettering then replaying gives back exactly the record that failed."""
    record = SimpleNamespace(
        topic="t.raw", partition=1, offset=5, key=b"p1", value=b'{"a": 1}', headers=[("x-origin", b"test")]
    )
    letter = dead_letter(record, DataError("a", "bad"), stage="normaliser-gonggai", topic="dlq", now=AT)
    context = {
        k.removeprefix("ubridge.error."): v.decode() for k, v in letter.headers if k.startswith("ubridge.error.")
    }
    again = replay_output(context, letter.key, letter.value, letter.headers, topic=None)
    assert again == Output(topic="t.raw", key=b"p1", value=b'{"a": 1}', headers=(("x-origin", b"test"),), partition=1)


def test_an_audit_value_says_who_what_when_and_why() -> None:
    """An audit record is JSON with the action, who, the time in UTC, the reason and what was touched."""
    value = audit_value("dlq.replay", by="bob (ops)", reason="fixed", at=AT, what={"offsets": [1, 2], "count": 2})
    assert value.decode() == (
        '{"action": "dlq.replay", "by": "bob (ops)", "at": "2026-11-25T02:00:00+00:00", "reason": "fixed", '
        '"what": {"offsets": [1, 2], "count": 2}}'
    )
