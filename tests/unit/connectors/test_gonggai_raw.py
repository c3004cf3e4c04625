import json
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from connectors.gonggai.raw import read_raw
from routing.errors import DataError

HEADERS = [("ubridge.ingested_at", b"2026-11-25T08:30:00+08:00")]


def record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("raw", 0, -1, 0, 0, 0, None, value, HEADERS, None, 0, 0, 0)


def standard(value: bytes | None) -> Any:
    """What the standard library makes of ``value``: its object, or its error's text."""
    try:
        return json.loads(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError) as exc:
        return f"raw record is not JSON: {exc}"


@pytest.mark.parametrize(
    "value",
    [
        b'{"xmdm": "2024-370112-48-03-000381", "jzmj": 1.5, "seq": 7}',
        b'{"seq": 123456789012345678901234567890}',  # beyond 64 bits: orjson would read a float
        b'{"seq": [1, -12345678901234567890]}',
        b'{"xmmc": "12345678901234567890123"}',
        b'{"jzmj": NaN, "ydmj": Infinity}',
        b'{"xmmc": "\\ud800"}',  # a lone surrogate
        '{"xmmc": "项目"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"xmmc": "bom"}',
        b'{"a": 1, "a": 2}',
        b'{"a": 1e400}',
        b'{"a": [{"b": 1.5e300}], "c": -9223372036854775809}',
        b'{"a": 18446744073709551615, "b": 9223372036854775807}',
        b"[" * 1020 + b"1" + b"]" * 1020,
        b'{"a": ' + b"[" * 1020 + b"1" + b"]" * 1020 + b"}",
        b'{"a": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
        b'{"a": -0, "b": 0.1}',
        b"{not json",
        b"",
        b"\xff\xfe\x00",
        b"[" * 5000 + b"]" * 5000,
        None,
    ],
)
def test_raw_json_is_read_exactly_as_the_standard_library_reads_it(value: bytes | None) -> None:
    """The fast parse accepts, reads and refuses the same raw values as json does, with the same message."""
    expected = standard(value)
    if isinstance(expected, dict):
        assert read_raw(record(value)).body == expected
        return
    with pytest.raises(DataError) as raised:
        read_raw(record(value))
    reason = expected if isinstance(expected, str) else "raw record is not a JSON object"
    assert raised.value.reason == reason
