"""爱山东 payments, pulled: ``GET /api/v1/payments?cursor=N&limit=M`` from the app's feed.

For a platform that cannot push. Each payment is validated exactly as the push intake validates it
(:func:`routing.payments.parse_payment`) and written as Avro ``Payment`` to the payments topic, keyed by payment
id; one that fails validation goes to the source's dead-letter topic as received, with its reason, in the same
transaction as the cursor (nothing is lost or skipped, and the payments after it go on).

Example:
    >>> source = PaymentPullSource(settings.sources.aishandong_payments_pull, topic=payments, dlq_topic=dlq)
    >>> batch = source.poll(cursor=None)
"""

import httpx

from connectors.aishandong.rules import load_application_rules
from connectors.runtime.feed_pull import Feed, FeedReader
from connectors.runtime.interface import SourceBatch
from connectors.settings import PaymentPullSettings
from routing.payments import parse_payment
from routing.user_category import shipped_categories
from schemas import Codec

PATH = "/api/v1/payments"


class PaymentPullSource:
    """Pulls payments page by page from the cursor the runtime hands it."""

    def __init__(
        self,
        settings: PaymentPullSettings,
        *,
        topic: str,
        dlq_topic: str,
        codec: Codec | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        words = load_application_rules(settings.rules).vocabulary.service_names
        categories = shipped_categories()
        self._feed = Feed(
            PATH,
            "payments",
            topic,
            "Payment",
            "payment_id",
            "a payment",
            lambda raw, now: parse_payment(raw, ingested_at=now, service_names=words, categories=categories),
            entry_key="jfbh",
        )
        self._reader = FeedReader(
            settings,
            name=settings.name,
            who="爱山东 payment feed",
            dlq_topic=dlq_topic,
            codec=codec,
            transport=transport,
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
