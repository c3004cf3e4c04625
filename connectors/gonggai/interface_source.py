"""工改系统 data interface, pulled over HTTP: ``GET /api/v1/project-events?cursor=N&limit=M``.

Each event is written to the raw topic exactly as received (JSON), keyed by project code so one
project's events stay in order, with headers naming the source and when ubridge read it.

Example:
    >>> config = settings.sources.gonggai_interface
    >>> source = GonggaiInterfaceSource(config, raw_topic="ubridge.raw.gonggai.v1")
    >>> batch = source.poll(cursor=None)
"""

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.interface import Output, SourceBatch
from connectors.settings import GonggaiInterfaceSettings

PATH = "/api/v1/project-events"
_RETRY_AFTER_DEFAULT_S = 1.0


class GonggaiInterfaceSource:
    """Pulls project events page by page from the cursor the runtime hands it."""

    def __init__(
        self,
        settings: GonggaiInterfaceSettings,
        *,
        raw_topic: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self._raw_topic = raw_topic
        self._page_size = settings.page_size
        self._client = httpx.Client(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            transport=transport,
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch the page after ``cursor``.

        Raises:
            RetriableError: transport failure, a non-2xx answer, or a body that is not the documented JSON.
        """
        params: dict[str, str | int] = {"cursor": cursor or "0", "limit": self._page_size}
        try:
            response = self._client.get(PATH, params=params)
        except httpx.HTTPError as exc:
            message = f"approval system unreachable: {exc!r}"
            raise RetriableError(message) from exc
        _raise_for_status(response)
        page = _parse_page(response)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").encode()
        headers = (("ubridge.source", self.name.encode()), ("ubridge.ingested_at", now))
        records = [
            Output(
                topic=self._raw_topic,
                key=str(event.get("xmdm") or "").encode() or None,
                value=json.dumps(event, ensure_ascii=False).encode(),
                headers=headers,
            )
            for event in page["events"]
        ]
        return SourceBatch(records=records, cursor=str(page["next_cursor"]), has_more=bool(page.get("has_more")))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code in (429, 503):
        retry_after = _retry_after_s(response.headers.get("Retry-After"))
        message = f"approval system answered {response.status_code}"
        raise BackpressureError(message, retry_after)
    if not response.is_success:
        message = f"approval system answered {response.status_code}: {response.text[:200]}"
        raise RetriableError(message)


def _parse_page(response: httpx.Response) -> dict[str, Any]:
    try:
        page = response.json()
    except ValueError as exc:
        message = "approval system answered with a body that is not JSON"
        raise RetriableError(message) from exc
    if not isinstance(page, dict) or not isinstance(page.get("events"), list) or "next_cursor" not in page:
        message = "approval system page lacks 'events' or 'next_cursor'"
        raise RetriableError(message)
    return page


def _retry_after_s(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else _RETRY_AFTER_DEFAULT_S
    except ValueError:
        return _RETRY_AFTER_DEFAULT_S
