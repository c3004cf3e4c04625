"""Revisions of a task: what counts as a change, numbering, keys, and the stored form."""

import hashlib
import json
from datetime import UTC, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.revisions import (
    DIGESTED_AS_OF_V5,
    VOLATILE_FIELDS,
    Revision,
    already_delivered,
    content_digest,
    decode_revision,
    encode_revision,
    idempotency_key,
    next_revision,
)
from tests.support import make_task


def test_handling_times_and_the_number_are_not_content() -> None:
    """Routing one event twice (new created_at, ingested_at) or numbering it gives the same digest."""
    task = make_task("yantai-water", 1)
    again = {**task, "created_at": task["created_at"] + timedelta(days=1), "ingested_at": task["created_at"]}
    numbered = {**task, "revision": 7}
    assert content_digest(task) == content_digest(again) == content_digest(numbered)  # type: ignore[arg-type]


def test_a_field_added_since_v5_left_at_its_default_is_not_content() -> None:
    """A task stored before a field existed decodes with its default: an upgraded sink must not see a change."""
    task = make_task("yantai-water", 1)
    stored = {name: value for name, value in task.items() if name not in ("work_order_id", "answer_due", "complaint")}
    assert content_digest(stored) == content_digest(task)  # type: ignore[arg-type]


def test_a_v5_field_at_its_default_stays_in_the_digest() -> None:
    """Digests stored by earlier releases covered every v5 field, null or not; they must still match."""
    task = make_task("yantai-water", 1)
    assert task["contact_due_note"] is None
    without = {name: value for name, value in task.items() if name != "contact_due_note"}
    assert content_digest(without) != content_digest(task)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"action": "CANCEL"},
        {"documents": [{"kind": "DRAWING", "number": None, "title": "总平面图", "url": None, "digest": None}]},
        {"trigger_stage": 1},
        {"occurred_at": make_task("yantai-water", 1)["occurred_at"] + timedelta(seconds=1)},
        {"materials_to_fetch": ["DRAWING:SITE_SURVEY:"]},
        {"work_order_id": "GD2026110001"},
    ],
)
def test_anything_the_utility_reads_is_content(change: dict[str, object]) -> None:
    """A cancellation, a document, another stage, another grant time, a material to fetch: a new digest."""
    task = make_task("yantai-water", 1)
    assert content_digest({**task, **change}) != content_digest(task)  # type: ignore[arg-type]


def test_numbering() -> None:
    """1 for the first content, the same content is no revision, each change is the next number."""
    first = next_revision(None, "a")
    assert first == Revision(1, "a")
    assert next_revision(first, "a") is None
    assert next_revision(Revision(4, "a"), "b") == Revision(5, "b")


def test_key_is_task_id_and_revision() -> None:
    """The Idempotency-Key of revision 3 of a task."""
    assert idempotency_key("4a3dff4ed384c28b76d5972c6ae73ab8", 3) == "4a3dff4ed384c28b76d5972c6ae73ab8:3"


def test_stored_revision_round_trips() -> None:
    """What the sink writes to the revision topic reads back the same."""
    assert decode_revision(encode_revision(Revision(12, "ff" * 16))) == Revision(12, "ff" * 16)


@pytest.mark.parametrize("value", [b"[]", b'{"revision": 0, "digest": "a"}', b'{"revision": 2}', b'{"digest": "a"}'])
def test_unreadable_stored_revisions_are_refused(value: bytes) -> None:
    """A value the sink did not write is a ValueError, never a revision number."""
    with pytest.raises(ValueError, match="not a stored revision"):
        decode_revision(value)


def test_a_record_at_or_below_the_last_offset_was_delivered() -> None:
    """Offsets tell a record read again from a new one; no revision yet means nothing was delivered."""
    last = Revision(2, "a", 10)
    assert (already_delivered(last, 10), already_delivered(last, 9), already_delivered(last, 11)) == (True, True, False)
    assert not already_delivered(None, 0)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.just(UTC))
)
_CONTENT = st.dictionaries(
    st.text(min_size=1),
    st.recursive(_SCALARS, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=12),
)


@given(_CONTENT)
@settings(max_examples=400)
def test_the_digest_is_the_standard_librarys_json_whatever_the_values(content: dict[str, object]) -> None:
    """Stored digests were the standard library's sorted compact JSON: tiny floats, huge ints, any text agree."""
    assert content_digest(content) == _stdlib_digest(content)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5.3e-05, 8e-9, 1e-4, 1e16, 1.5e300, 2**70, -(2**64), "0.0000 e-1", "\x00"])
def test_values_orjson_writes_otherwise_digest_as_before(value: object) -> None:
    """A float orjson formats its own way, an integer or a string it refuses: the standard library's digest."""
    task = {**make_task("yantai-water", 1), "project_name": value}
    assert content_digest(task) == _stdlib_digest(task)  # type: ignore[arg-type]


def test_a_lone_surrogate_is_refused_as_before() -> None:
    """Text that is not Unicode has no UTF-8 to digest: the record fails, as it always did, never a new digest."""
    with pytest.raises(UnicodeEncodeError):
        content_digest({**make_task("yantai-water", 1), "project_name": "\ud800"})  # type: ignore[typeddict-item]


def _stdlib_digest(task: dict[str, object]) -> str:
    """The digest as releases before orjson computed it (the form of every digest already stored)."""
    content = {
        name: value
        for name, value in task.items()
        if name not in VOLATILE_FIELDS and (name in DIGESTED_AS_OF_V5 or value not in (None, []))
    }
    text = json.dumps(
        content, sort_keys=True, ensure_ascii=False, default=lambda v: v.isoformat(), separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]
