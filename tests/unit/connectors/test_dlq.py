from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.dlq import dead_letter, error_context
from routing.errors import DataError

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def record(value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        "ubridge.raw.gonggai.v1", 2, -1, 41, 0, 0, b"2026-370602-47-01-000123", value, headers, None, 0, 0, 0
    )


def test_dead_letter_keeps_original_bytes_key_and_headers() -> None:
    """The dead letter carries the record untouched plus the error context."""
    original = record(b'{"xmdm": "bad"}', [("ubridge.source", b"gonggai-interface")])
    letter = dead_letter(original, DataError("xmdm", "malformed"), stage="normaliser", topic="dlq", now=NOW)
    assert (letter.topic, letter.key, letter.value) == ("dlq", original.key, original.value)
    assert letter.headers[0] == ("ubridge.source", b"gonggai-interface")
    assert error_context(letter.headers) == {
        "stage": "normaliser",
        "class": "DataError",
        "field": "xmdm",
        "message": "xmdm: malformed",
        "topic": "ubridge.raw.gonggai.v1",
        "partition": "2",
        "offset": "41",
        "failed_at": "2026-11-25T02:00:00.000+00:00",
    }


def test_dead_letter_masks_personal_data_in_the_message() -> None:
    """A reason quoting a phone number shows it masked in the headers."""
    error = DataError("lxrsjh", "13912345678 is not a mobile number of this region")
    letter = dead_letter(record(b"{}", []), error, stage="normaliser", topic="dlq", now=NOW)
    assert "13912345678" not in error_context(letter.headers)["message"]


def test_a_dead_letter_dead_lettered_again_has_one_context() -> None:
    """Re-processing a dead letter replaces the old error context instead of stacking two."""
    first = dead_letter(record(b"{}", []), DataError("a", "x"), stage="one", topic="dlq", now=NOW)
    again = record(first.value, list(first.headers))
    second = dead_letter(again, DataError("b", "y"), stage="two", topic="dlq", now=NOW)
    assert [name for name, _ in second.headers].count("ubridge.error.stage") == 1
    assert error_context(second.headers)["stage"] == "two"
