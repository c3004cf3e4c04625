"""What every HTTP client of an outside system agrees on: ``Retry-After``, retriable statuses, paged feeds."""

import email.utils
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.runtime.errors import BackpressureError, RetriableError

DEFAULT_RETRY_AFTER_S = 1.0


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def raise_for_status(response: httpx.Response, who: str) -> None:
    """Turn a failed answer of a feed into the retriable error it is.

    Raises:
        BackpressureError: 429 or 503, waiting ``Retry-After`` (1 s if absent).
        RetriableError: any other non-2xx answer.
    """
    if response.status_code in (429, 503):
        message = f"{who} answered {response.status_code}"
        wait = retry_after_s(response.headers.get("Retry-After"))
        raise BackpressureError(message, DEFAULT_RETRY_AFTER_S if wait is None else wait)
    if not response.is_success:
        message = f"{who} answered {response.status_code}: {response.text[:200]}"
        raise RetriableError(message)


def json_page(response: httpx.Response, items: str, who: str) -> dict[str, Any]:
    """A feed page ``{items: [...], "next_cursor": …, "has_more": …}``.

    Raises:
        RetriableError: the body is not JSON or lacks ``items`` or ``next_cursor`` (a vendor glitch, retried).
    """
    try:
        page = response.json()
    except ValueError as exc:
        message = f"{who} answered with a body that is not JSON"
        raise RetriableError(message) from exc
    if not isinstance(page, dict) or not isinstance(page.get(items), list) or "next_cursor" not in page:
        message = f"{who} page lacks '{items}' or 'next_cursor'"
        raise RetriableError(message)
    return page
