"""Paged JSON feeds of outside platforms (爱山东, 12345), read with a bearer token: each entry one record.

A feed answers ``GET <path>?cursor=N&limit=M`` with ``{<items>: [...], "next_cursor": …, "has_more": …}``
(:func:`connectors.runtime.http_pull.json_page`). Each entry, less its ``seq``, is validated by the feed's
parser, exactly as the push intake of the same records validates it, and becomes one Avro record keyed by its
id, with headers ``ubridge.source`` and ``ubridge.ingested_at``. An entry that fails validation becomes a dead
letter holding the entry as received and its reason; the source runner writes it in the same transaction as
the cursor, so nothing is lost or skipped and the entries after it go on.

Example:
    >>> reader = FeedReader(settings, name="aishandong-pull", who="爱山东 gateway", dlq_topic=dlq)
    >>> outputs, next_cursor, has_more = reader.page(APPLICATIONS, "0")
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from connectors.runtime.dlq import source_dead_letter
from connectors.runtime.errors import RetriableError
from connectors.runtime.http_pull import json_page, raise_for_status
from connectors.runtime.interface import Output
from routing.errors import DataError
from schemas import Codec


class FeedSettings(Protocol):
    """What a pull source's settings say about its feed."""

    @property
    def base_url(self) -> str:
        """The platform's base URL."""
        ...

    @property
    def token(self) -> SecretStr:
        """The bearer token."""
        ...

    @property
    def page_size(self) -> int:
        """Entries asked for per page."""
        ...

    @property
    def timeout_s(self) -> float:
        """Each request's timeout."""
        ...


@dataclass(frozen=True)
class Feed:
    """One feed: where it is, what its entries become, and how they are read.

    Attributes:
        path: The feed's URL path.
        items: The page's key of the list of entries.
        topic: Where its records go (with the prefix).
        record: The Avro record an entry becomes.
        id_field: The record's field that keys it.
        what: An entry in words, for the reason of one that is not an object ("a payment").
        parse: An entry (less ``seq``) and the ingestion instant → the record (raises ``DataError``).
        entry_key: The entry's field whose text keys its dead letter (None: dead letters are not keyed).
    """

    path: str
    items: str
    topic: str
    record: str
    id_field: str
    what: str
    parse: Callable[[Mapping[str, Any], datetime], Mapping[str, Any]]
    entry_key: str | None = None


class FeedReader:
    """Reads pages of a platform's feeds over one connection pool.

    Args:
        settings: The feed's base URL, token, page size and timeout.
        name: The source's stage name (the ``ubridge.source`` header, the dead letters' stage).
        who: The platform in words, for the errors.
        dlq_topic: The source's dead-letter topic.
        codec: Avro codec (the process-wide one by default).
        transport: Replaces the network (tests).
    """

    def __init__(
        self,
        settings: FeedSettings,
        *,
        name: str,
        who: str,
        dlq_topic: str,
        codec: Codec | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._name = name
        self._source = name.encode()
        self._who = who
        self._dlq_topic = dlq_topic
        self._page_size = settings.page_size
        self._codec = codec or Codec.default()
        self._client = httpx.Client(
            base_url=settings.base_url,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout_s,
            transport=transport,
        )

    def page(self, feed: Feed, position: str) -> tuple[list[Output], str, bool]:
        """The records of the page after ``position``, the next position, and whether more are waiting.

        Raises:
            RetriableError: transport failure, a non-2xx answer, or a page that is not the documented JSON.
        """
        try:
            response = self._client.get(feed.path, params={"cursor": position, "limit": self._page_size})
        except httpx.HTTPError as exc:
            message = f"{self._who} unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        raise_for_status(response, self._who)
        page = json_page(response, feed.items, self._who)
        now = datetime.now(UTC)
        records = [self._record(feed, entry, now) for entry in page[feed.items]]
        return records, str(page["next_cursor"]), bool(page.get("has_more"))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _record(self, feed: Feed, entry: Any, now: datetime) -> Output:
        value = json.dumps(entry, ensure_ascii=False).encode()
        seq = str(entry.get("seq", "")) if isinstance(entry, dict) else ""
        try:
            if not isinstance(entry, dict):
                raise DataError("", f"{feed.what} must be a JSON object")
            record = feed.parse({k: v for k, v in entry.items() if k != "seq"}, now)
        except DataError as exc:
            key = _entry_key(entry, feed.entry_key)
            return source_dead_letter(
                exc, stage=self._name, topic=self._dlq_topic, key=key, value=value, where=seq, now=now
            )
        headers = (
            ("ubridge.source", self._source),
            ("ubridge.ingested_at", now.isoformat(timespec="milliseconds").encode()),
        )
        record_id = str(record[feed.id_field])
        return Output(feed.topic, record_id.encode(), self._codec.encode(feed.record, dict(record)), headers)


def _entry_key(entry: Any, field: str | None) -> bytes | None:
    text = entry.get(field) if field is not None and isinstance(entry, dict) else None
    return text.encode() if isinstance(text, str) and text else None
