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

import re
from typing import Final

import httpx

from connectors.runtime.errors import RetriableError
from connectors.runtime.feed_pull import Feed, FeedReader
from connectors.runtime.interface import SourceBatch
from connectors.settings import HotlinePullSettings
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
        self._orders = Feed(
            ORDER_FEED,
            "work_orders",
            work_orders_topic,
            "HotlineWorkOrder",
            "order_id",
            "a feed entry",
            lambda raw, now: parse_work_order(raw, ingested_at=now, source=PULL_SOURCE),
        )
        self._visits = Feed(
            VISIT_FEED,
            "return_visits",
            return_visits_topic,
            "ReturnVisit",
            "order_id",
            "a feed entry",
            lambda raw, now: parse_return_visit(raw, ingested_at=now, source=PULL_SOURCE),
        )
        self._reader = FeedReader(
            settings, name=settings.name, who=_WHO, dlq_topic=dlq_topic, codec=codec, transport=transport
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch and validate the pages after ``cursor``'s two positions.

        Raises:
            RetriableError: transport failure, a non-2xx answer, a page that is not the documented JSON, or a
                cursor this source never wrote.
        """
        orders, visits = _positions(cursor)
        order_records, orders_next, orders_more = self._reader.page(self._orders, orders)
        visit_records, visits_next, visits_more = self._reader.page(self._visits, visits)
        for position in (orders_next, visits_next):
            if not position.isdigit():
                message = f"{_WHO} page's next_cursor {position[:40]!r} is not a sequence number"
                raise RetriableError(message)
        return SourceBatch(
            records=[*order_records, *visit_records],
            cursor=f"{orders_next}:{visits_next}",
            has_more=orders_more or visits_more,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._reader.close()


def _positions(cursor: str | None) -> tuple[str, str]:
    if cursor is None:
        return "0", "0"
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        message = f"cursor {cursor[:40]!r} is not '<orders>:<visits>'"
        raise RetriableError(message)
    return match[1], match[2]
