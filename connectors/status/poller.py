"""Status polling: for a utility that cannot call back, pull its change feed of task statuses.

``GET {base_url}/v1/task-status?cursor=<n>&limit=<m>`` with the utility's bearer token answers
``{"statuses": [{"seq", "task_id", "stage", "occurred_at", "pipe_length_m"?, "reason"?, "detail"?}],
"next_cursor": n, "has_more": bool}``. Each entry becomes one Avro ``TaskStatus`` (reporter ``poll``) keyed by
task id. An entry that cannot be mapped is not dropped: it goes, as received, to the dead-letter topic with
the ``ubridge.error.*`` headers of :mod:`connectors.runtime.dlq`, in the same transaction as the good records
and the cursor (:class:`~connectors.runtime.source_runner.SourceRunner`).

Errors: transport failures and any non-2xx answer raise :class:`RetriableError` (429 and 503 raise
:class:`BackpressureError` honouring ``Retry-After``); so does a page that is not the documented JSON, since
only the feed as a whole can be at fault then, and the cursor must not move past it.

Example:
    >>> poller = StatusPoller(config, utility_id="jinan-heat", token=SecretStr("T"),
    ...                       topic="ubridge.task-status.v1", dlq_topic="ubridge.dlq.status-poll-jinan-heat.v1")
    >>> batch = poller.poll(cursor=None)
"""

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from connectors.runtime.dlq import PREFIX
from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.http_pull import DEFAULT_RETRY_AFTER_S, retry_after_s
from connectors.runtime.interface import Output, SourceBatch
from connectors.settings import StatusPollSettings
from connectors.status.mapping import REPORT_FIELDS, check_task_id, parse_status
from routing.errors import DataError
from routing.privacy import mask_text
from schemas import Codec

log = structlog.get_logger(__name__)

PATH = "/v1/task-status"
FEED_FIELDS = REPORT_FIELDS | {"seq", "task_id"}


def stage_name(utility_id: str) -> str:
    """The stage (and source) name of a utility's poller, e.g. ``status-poll-jinan-heat``."""
    return f"status-poll-{utility_id}"


def _now() -> datetime:
    return datetime.now(UTC)


class StatusPoller:
    """Pulls one utility's status change feed page by page from the cursor the runtime hands it; a ``Source``.

    Args:
        settings: Where the feed is and how to read it.
        utility_id: The utility polled; every status is attributed to it.
        token: Its bearer token.
        topic: The task-status topic.
        dlq_topic: Where entries that cannot be mapped go.
        codec: Avro codec (the process-wide one by default).
        transport: httpx transport (tests pass ``httpx.MockTransport``).
        clock: Gives ``reported_at`` and ``failed_at`` (UTC).
    """

    def __init__(
        self,
        settings: StatusPollSettings,
        *,
        utility_id: str,
        token: SecretStr,
        topic: str,
        dlq_topic: str,
        codec: Codec | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.name = stage_name(utility_id)
        self.utility = utility_id
        self._topic = topic
        self._dlq_topic = dlq_topic
        self._page_size = settings.page_size
        self._codec = codec or Codec.default()
        self._clock = clock
        self._feed_url = settings.base_url.rstrip("/") + PATH
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            timeout=settings.timeout_s,
            transport=transport,
        )

    def poll(self, cursor: str | None) -> SourceBatch:
        """Fetch the page after ``cursor`` and map it.

        Raises:
            RetriableError: transport failure, a non-2xx answer, or a page that is not the documented JSON.
        """
        after = cursor or "0"
        try:
            response = self._client.get(self._feed_url, params={"cursor": after, "limit": self._page_size})
        except httpx.HTTPError as exc:
            message = f"utility {self.utility} status feed unreachable: {exc!r}"
            raise RetriableError(message) from exc
        self._raise_for_status(response)
        statuses, next_cursor, has_more = self._parse_page(response)
        now = self._clock()
        records = [self._map(entry, cursor=after, now=now) for entry in statuses]
        return SourceBatch(records=records, cursor=next_cursor, has_more=has_more)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _map(self, entry: Any, *, cursor: str, now: datetime) -> Output:
        """The TaskStatus record of one entry, or its dead letter."""
        try:
            if not isinstance(entry, dict):
                raise DataError("", "a status entry must be a JSON object")
            task_id = check_task_id(entry.get("task_id"))
            status = parse_status(
                entry, task_id=task_id, utility_id=self.utility, reporter="poll", reported_at=now, allowed=FEED_FIELDS
            )
        except DataError as exc:
            return self._dead_letter(entry, exc, cursor=cursor, now=now)
        headers = (("ubridge.source", self.name.encode()), ("ubridge.utility", self.utility.encode()))
        return Output(self._topic, task_id.encode(), self._codec.encode("TaskStatus", dict(status)), headers)

    def _dead_letter(self, entry: Any, error: DataError, *, cursor: str, now: datetime) -> Output:
        task_id = entry.get("task_id") if isinstance(entry, dict) else None
        seq = entry.get("seq") if isinstance(entry, dict) else None
        context = {
            "stage": self.name,
            "class": type(error).__name__,
            "field": error.field,
            "message": mask_text(str(error)),
            "source": self._feed_url,
            "cursor": cursor,
            "seq": "" if seq is None else str(seq),
            "failed_at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
        }
        ours = tuple((PREFIX + name, value.encode()) for name, value in context.items())
        headers = (("ubridge.source", self.name.encode()), *ours)
        key = task_id.encode() if isinstance(task_id, str) and task_id else None
        log.warning("status_dead_lettered", stage=self.name, field=error.field, reason=context["message"])
        return Output(self._dlq_topic, key, json.dumps(entry, ensure_ascii=False).encode(), headers)

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code in (429, 503):
            wait = retry_after_s(response.headers.get("Retry-After"), now=self._clock())
            retry_after = DEFAULT_RETRY_AFTER_S if wait is None else wait
            message = f"utility {self.utility} status feed answered {response.status_code}"
            raise BackpressureError(message, retry_after)
        if not response.is_success:
            message = f"utility {self.utility} status feed answered {response.status_code}: {response.text[:200]}"
            raise RetriableError(message)

    def _parse_page(self, response: httpx.Response) -> tuple[list[Any], str, bool]:
        try:
            page = response.json()
        except ValueError as exc:
            message = f"utility {self.utility} status feed answered with a body that is not JSON"
            raise RetriableError(message) from exc
        if not isinstance(page, Mapping) or not isinstance(page.get("statuses"), list):
            message = f"utility {self.utility} status feed page lacks a 'statuses' list"
            raise RetriableError(message)
        next_cursor = page.get("next_cursor")
        if isinstance(next_cursor, bool) or not isinstance(next_cursor, int | str) or not str(next_cursor).isdigit():
            message = f"utility {self.utility} status feed page has no valid 'next_cursor': {next_cursor!r}"
            raise RetriableError(message)
        return page["statuses"], str(next_cursor), page.get("has_more") is True
