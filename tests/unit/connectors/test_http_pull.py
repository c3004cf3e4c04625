from datetime import UTC, datetime

import httpx
import pytest

from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.http_pull import json_page, raise_for_status, retry_after_s

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 25 Nov 2026 02:00:30 GMT", 30.0), ("soon", None), (None, None)],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, expected: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP date; anything else means no advice."""
    assert retry_after_s(value, now=NOW) == expected


def test_429_and_503_are_backpressure_with_a_default_wait() -> None:
    """A busy peer without Retry-After is waited on for 1 s."""
    with pytest.raises(BackpressureError) as caught:
        raise_for_status(httpx.Response(503), "feed")
    assert caught.value.retry_after_s == 1.0


def test_other_failures_are_retriable() -> None:
    """A 500 (or a 401 during a credential rotation) is retried, never skipped."""
    with pytest.raises(RetriableError, match="feed answered 401"):
        raise_for_status(httpx.Response(401, text="no"), "feed")


def test_a_page_without_its_list_is_retried() -> None:
    """A page lacking the items list or the cursor is a retriable vendor glitch."""
    with pytest.raises(RetriableError, match="lacks 'events'"):
        json_page(httpx.Response(200, json={"next_cursor": 3}), "events", "feed")
    assert json_page(httpx.Response(200, json={"events": [], "next_cursor": 3}), "events", "feed")["next_cursor"] == 3
