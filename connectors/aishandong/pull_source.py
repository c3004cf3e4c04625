"""爱山东 applications, pulled: ``GET /api/v1/applications?cursor=N&limit=M`` from the gateway's feed.

For a city whose 爱山东 platform cannot push. Each application is validated exactly as the push gateway
validates it (:func:`routing.aishandong.parse_application`) and written as Avro ``ConnectionApplication`` to
the applications topic, keyed by application id; one that fails validation goes to the source's dead-letter
topic as received, with its reason, in the same transaction as the cursor (nothing is lost or skipped).

Example:
    >>> source = AishandongPullSource(settings.sources.aishandong_pull, topic=applications, dlq_topic=dlq)
    >>> batch = source.poll(cursor=None)
"""

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.aishandong.rules import load_application_rules
from connectors.runtime.dlq import source_dead_letter
from connectors.runtime.errors import RetriableError
from connectors.runtime.http_pull import json_page, raise_for_status
from connectors.runtime.interface import Output, SourceBatch
from connectors.settings import AishandongPullSettings
from routing.aishandong import parse_application
from routing.errors import DataError
from schemas import Codec

PATH = "/api/v1/applications"


class AishandongPullSource:
    """Pulls applications page by page from the cursor the runtime hands it."""

    def __init__(
        self,
        settings: AishandongPullSettings,
        *,
        topic: str,
        dlq_topic: str,
        codec: Codec | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self._topic = topic
        self._dlq_topic = dlq_topic
        self._page_size = settings.page_size
        self._codec = codec or Codec.default()
        self._vocabulary = load_application_rules(settings.rules).vocabulary
        self._client = httpx.Client(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            transport=transport,
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch and validate the page after ``cursor``.

        Raises:
            RetriableError: transport failure, a non-2xx answer, or a page that is not the documented JSON.
        """
        try:
            response = self._client.get(PATH, params={"cursor": cursor or "0", "limit": self._page_size})
        except httpx.HTTPError as exc:
            message = f"爱山东 gateway unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        raise_for_status(response, "爱山东 gateway")
        page = json_page(response, "applications", "爱山东 gateway")
        now = datetime.now(UTC)
        records = [self._record(entry, now) for entry in page["applications"]]
        return SourceBatch(records=records, cursor=str(page["next_cursor"]), has_more=bool(page.get("has_more")))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _record(self, entry: Any, now: datetime) -> Output:
        value = json.dumps(entry, ensure_ascii=False).encode()
        seq = str(entry.get("seq", "")) if isinstance(entry, dict) else ""
        try:
            if not isinstance(entry, dict):
                raise DataError("", "an application must be a JSON object")
            application = parse_application(
                {k: v for k, v in entry.items() if k != "seq"}, ingested_at=now, vocabulary=self._vocabulary
            )
        except DataError as exc:
            return source_dead_letter(
                exc, stage=self.name, topic=self._dlq_topic, key=None, value=value, where=seq, now=now
            )
        headers = (
            ("ubridge.source", self.name.encode()),
            ("ubridge.ingested_at", now.isoformat(timespec="milliseconds").encode()),
        )
        encoded = self._codec.encode("ConnectionApplication", dict(application))
        return Output(self._topic, application["application_id"].encode(), encoded, headers)
