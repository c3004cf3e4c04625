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

import httpx

from connectors.runtime.errors import RetriableError
from connectors.runtime.http_pull import json_page, raise_for_status
from connectors.runtime.interface import Output, SourceBatch
from connectors.settings import GonggaiInterfaceSettings

PATH = "/api/v1/project-events"


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
        raise_for_status(response, "approval system")
        page = json_page(response, "events", "approval system")
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
