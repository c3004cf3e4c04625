"""爱山东 applications, pulled: ``GET /api/v1/applications?cursor=N&limit=M`` from the gateway's feed.

For a city whose 爱山东 platform cannot push. Each application is validated exactly as the push gateway
validates it (:func:`routing.aishandong.parse_application`) and written as Avro ``ConnectionApplication`` to
the applications topic, keyed by application id; one that fails validation goes to the source's dead-letter
topic as received, with its reason, in the same transaction as the cursor (nothing is lost or skipped).

Example:
    >>> source = AishandongPullSource(settings.sources.aishandong_pull, topic=applications, dlq_topic=dlq)
    >>> batch = source.poll(cursor=None)
"""

import httpx

from connectors.aishandong.rules import load_application_rules
from connectors.runtime.feed_pull import Feed, FeedReader
from connectors.runtime.interface import SourceBatch
from connectors.settings import AishandongPullSettings
from routing.aishandong import parse_application
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
        vocabulary = load_application_rules(settings.rules).vocabulary
        self._feed = Feed(
            PATH,
            "applications",
            topic,
            "ConnectionApplication",
            "application_id",
            "an application",
            lambda raw, now: parse_application(raw, ingested_at=now, vocabulary=vocabulary),
        )
        self._reader = FeedReader(
            settings, name=settings.name, who="爱山东 gateway", dlq_topic=dlq_topic, codec=codec, transport=transport
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch and validate the page after ``cursor``.

        Raises:
            RetriableError: transport failure, a non-2xx answer, or a page that is not the documented JSON.
        """
        records, next_cursor, has_more = self._reader.page(self._feed, cursor or "0")
        return SourceBatch(records=records, cursor=next_cursor, has_more=has_more)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._reader.close()
