import pytest

from connectors.runtime.trace_context import TRACEPARENT, child, new_trace, of_headers, parse, trace_id, traced

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read_as_trace_parent_and_flags() -> None:
    """The W3C example parses into its three fields, from text or from header bytes."""
    expected = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert parse(VALID) == parse(VALID.encode()) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper-case hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_invalid_traceparents_are_ignored(value: str | None) -> None:
    """Whatever a caller sends that is not a valid traceparent is treated as none (a new trace starts)."""
    assert parse(value) is None
    assert parse(child(value)) is not None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    """The specification asks readers to accept future versions with extra fields."""
    assert parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future") is not None


def test_a_child_keeps_the_trace_and_flags_with_a_new_parent_id() -> None:
    """Work done for a record stays in its trace under a span id of its own."""
    made = parse(child(VALID))
    assert made is not None
    assert (made[0], made[2]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert made[1] != "00f067aa0ba902b7"


def test_new_traces_are_valid_and_distinct() -> None:
    """Each record a source reads starts a trace of its own."""
    traces = {trace_id(new_trace()) for _ in range(100)}
    assert len(traces) == 100 and None not in traces


def test_traced_headers_replace_an_existing_traceparent_and_keep_the_rest() -> None:
    """Setting the header twice leaves one, the latest; other headers are untouched."""
    headers = traced((("ubridge.source", b"s"), (TRACEPARENT, b"old")), VALID)
    assert headers == (("ubridge.source", b"s"), (TRACEPARENT, VALID.encode()))
    assert of_headers(headers) == VALID.encode()
    assert of_headers(None) is None
