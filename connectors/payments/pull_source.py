"""爱山东 payments, pulled: ``GET /api/v1/payments?cursor=N&limit=M`` from the app's feed.

For a platform that cannot push. Each payment is validated exactly as the push intake validates it
(:func:`routing.payments.parse_payment`) and written as Avro ``Payment`` to the payments topic, keyed by payment
id; one that fails validation goes to the source's dead-letter topic as received, with its reason, in the same
transaction as the cursor (nothing is lost or skipped, and the payments after it go on).

Example:
    >>> source = PaymentPullSource(settings.sources.aishandong_payments_pull, topic=payments, dlq_topic=dlq)
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
from connectors.settings import PaymentPullSettings
from routing.errors import DataError
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
        self._topic = topic
        self._dlq_topic = dlq_topic
        self._page_size = settings.page_size
        self._codec = codec or Codec.default()
        self._words = load_application_rules(settings.rules).vocabulary.service_names
        self._categories = shipped_categories()
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
            message = f"爱山东 payment feed unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        raise_for_status(response, "爱山东 payment feed")
        page = json_page(response, "payments", "爱山东 payment feed")
        now = datetime.now(UTC)
        records = [self._record(entry, now) for entry in page["payments"]]
        return SourceBatch(records=records, cursor=str(page["next_cursor"]), has_more=bool(page.get("has_more")))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _record(self, entry: Any, now: datetime) -> Output:
        value = json.dumps(entry, ensure_ascii=False).encode()
        seq = str(entry.get("seq", "")) if isinstance(entry, dict) else ""
        payment_id = entry.get("jfbh") if isinstance(entry, dict) else None
        key = payment_id.encode() if isinstance(payment_id, str) and payment_id else None
        try:
            if not isinstance(entry, dict):
                raise DataError("", "a payment must be a JSON object")
            raw = {k: v for k, v in entry.items() if k != "seq"}
            payment = parse_payment(raw, ingested_at=now, service_names=self._words, categories=self._categories)
        except DataError as exc:
            return source_dead_letter(
                exc, stage=self.name, topic=self._dlq_topic, key=key, value=value, where=seq, now=now
            )
        headers = (
            ("ubridge.source", self.name.encode()),
            ("ubridge.ingested_at", now.isoformat(timespec="milliseconds").encode()),
        )
        encoded = self._codec.encode("Payment", payment)
        return Output(self._topic, payment["payment_id"].encode(), encoded, headers)
