"""12345 hotline, pulled: the platform's feeds of work orders and return visits, read page by page.

For a platform that cannot push. Each poll reads the page after its cursor of ``GET /api/v1/work-orders`` and of
``GET /api/v1/return-visits`` (``?cursor=N&limit=M``, ``Authorization: Bearer <token>``); the source's one cursor
holds both positions, ``"<orders>:<visits>"``, and is committed by the runtime in the same transaction as the
records (:mod:`connectors.runtime.source_runner`): after a restart it resumes where it stopped, without loss or
repeat. Each record is validated exactly as the push intake validates it and written to the same topics; one that
fails goes to the source's dead-letter topic as received, with its reason (nothing is lost or skipped).

Example:
    >>> source = HotlinePullSource(settings.hotline.pull, work_orders_topic=..., return_visits_topic=..., dlq_topic=...)
    >>> batch = source.poll(cursor=None)
"""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from connectors.runtime.dlq import source_dead_letter
from connectors.runtime.errors import RetriableError
from connectors.runtime.http_pull import json_page, raise_for_status
from connectors.runtime.interface import Output, SourceBatch
from connectors.settings import HotlinePullSettings
from routing.errors import DataError
from routing.hotline import PULL_SOURCE, parse_return_visit, parse_work_order
from schemas import Codec

ORDER_FEED: Final = "/api/v1/work-orders"
VISIT_FEED: Final = "/api/v1/return-visits"
_CURSOR: Final = re.compile(r"([0-9]{1,18}):([0-9]{1,18})")
_WHO: Final = "12345 hotline platform"


class HotlinePullSource:
    """Pulls work orders and return visits from the cursor the runtime hands it."""

    def __init__(
        self,
        settings: HotlinePullSettings,
        *,
        work_orders_topic: str,
        return_visits_topic: str,
        dlq_topic: str,
        codec: Codec | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self._topics = {ORDER_FEED: work_orders_topic, VISIT_FEED: return_visits_topic}
        self._dlq_topic = dlq_topic
        self._page_size = settings.page_size
        self._codec = codec or Codec.default()
        self._client = httpx.Client(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            transport=transport,
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch and validate the pages after ``cursor``'s two positions.

        Raises:
            RetriableError: transport failure, a non-2xx answer, a page that is not the documented JSON, or a
                cursor this source never wrote.
        """
        orders, visits = _positions(cursor)
        order_records, orders_next, orders_more = self._page(ORDER_FEED, "work_orders", orders, "HotlineWorkOrder")
        visit_records, visits_next, visits_more = self._page(VISIT_FEED, "return_visits", visits, "ReturnVisit")
        return SourceBatch(
            records=[*order_records, *visit_records],
            cursor=f"{orders_next}:{visits_next}",
            has_more=orders_more or visits_more,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _page(self, path: str, items: str, position: str, record: str) -> tuple[list[Output], str, bool]:
        try:
            response = self._client.get(path, params={"cursor": position, "limit": self._page_size})
        except httpx.HTTPError as exc:
            message = f"{_WHO} unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        raise_for_status(response, _WHO)
        page = json_page(response, items, _WHO)
        next_position = str(page["next_cursor"])
        if not next_position.isdigit():
            message = f"{_WHO} page's next_cursor {next_position[:40]!r} is not a sequence number"
            raise RetriableError(message)
        now = datetime.now(UTC)
        parse = _PARSERS[record]
        outputs = [self._record(entry, now, self._topics[path], record, parse) for entry in page[items]]
        return outputs, next_position, bool(page.get("has_more"))

    def _record(self, entry: Any, now: datetime, topic: str, record: str, parse: "_Parse") -> Output:
        value = json.dumps(entry, ensure_ascii=False).encode()
        seq = str(entry.get("seq", "")) if isinstance(entry, dict) else ""
        try:
            if not isinstance(entry, dict):
                raise DataError("", "a feed entry must be a JSON object")
            parsed = parse({k: v for k, v in entry.items() if k != "seq"}, ingested_at=now, source=PULL_SOURCE)
        except DataError as exc:
            return source_dead_letter(
                exc, stage=self.name, topic=self._dlq_topic, key=None, value=value, where=seq, now=now
            )
        headers = (
            ("ubridge.source", self.name.encode()),
            ("ubridge.ingested_at", now.isoformat(timespec="milliseconds").encode()),
        )
        order_id: str = parsed["order_id"]
        return Output(topic, order_id.encode(), self._codec.encode(record, dict(parsed)), headers)


_Parse = Callable[..., Any]
_PARSERS: Final[dict[str, _Parse]] = {"HotlineWorkOrder": parse_work_order, "ReturnVisit": parse_return_visit}


def _positions(cursor: str | None) -> tuple[str, str]:
    if cursor is None:
        return "0", "0"
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        message = f"cursor {cursor[:40]!r} is not '<orders>:<visits>'"
        raise RetriableError(message)
    return match[1], match[2]
