"""One JSON POST to a peer (a utility's system, 爱山东, the approval system), retried a bounded number of times.

The utility sink's rules (:mod:`connectors.utility.client`): 2xx is done; 408, 429, 5xx and transport errors
are retried with capped exponential backoff and full jitter, honouring ``Retry-After`` up to its ceiling; any
other 4xx is a ``DataError``. Unlike the sink, which stops its stage rather than skip a task, a post's attempts
are bounded (``max_attempts``): one that still fails is a ``DataError`` naming the peer and the last answer,
dead-lettered so that the records behind it go on. The ``Idempotency-Key`` is the record's id (a payment's, a
permit's) on every attempt, so a replay from the dead-letter topic, or a retry after a lost answer, never posts
twice.
"""

import json
import random
import threading
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_when_event_set,
)

from connectors.runtime.errors import BackpressureError, RetriableError, StopRequested
from connectors.runtime.http_pull import retry_after_s
from routing.errors import DataError
from routing.privacy import mask_text

log = structlog.get_logger(__name__)

_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class BoundedRetry(BaseModel):
    """Bounded retries: a record whose peer stays down goes to the dead-letter topic, never holding the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_backoff_s: Annotated[float, Field(gt=0)] = 0.2
    max_backoff_s: Annotated[float, Field(gt=0)] = 30.0
    max_retry_after_s: Annotated[float, Field(gt=0)] = 60.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="Attempts per peer before the record is dead-lettered with the reason."
    )


def http_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL (a pydantic validator of peers' endpoints).

    Raises:
        ValueError: It is not.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        message = f"must be an http(s) URL, not {url!r}"
        raise ValueError(message)
    return url


def http_urls(endpoints: dict[str, str]) -> dict[str, str]:
    """``endpoints`` (peer → URL) when every URL is an http(s) URL; the error names the peer."""
    for peer, url in endpoints.items():
        try:
            http_url(url)
        except ValueError as exc:
            message = f"{peer}: {exc}"
            raise ValueError(message) from exc
    return endpoints


def on_origin(endpoint: str, path: str) -> str:
    """``path`` on the origin of ``endpoint``: where a utility's other interfaces are, next to its task one."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}{path}"


class PeerPoster:
    """POSTs JSON bodies to one peer with its bearer token; one per peer, each with its own pool.

    Args:
        peer: The peer's name in logs, metrics and reasons (a utility id, ``aishandong``, ``approval``).
        subject: What is posted, in reasons and logs (``payment``, ``permit``).
        token: Its bearer token.
        timeout_s: Per request.
        retry: The bounded retry policy.
        retries: The counter of retries, labelled by peer and reason.
        stop: When set, an ongoing retry gives up with :class:`StopRequested`.
        transport: Swap point for tests.
    """

    def __init__(
        self,
        peer: str,
        *,
        subject: str,
        token: SecretStr,
        timeout_s: float,
        retry: BoundedRetry,
        retries: Counter,
        stop: threading.Event,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.peer = peer
        self._subject = subject
        self._retry = retry
        self._retries = retries
        self._stop = stop
        self._client = httpx.Client(
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Content-Type": "application/json; charset=utf-8",
            },
            timeout=timeout_s,
            transport=transport,
        )

    def post(self, url: str, body: Mapping[str, Any], *, key: str) -> dict[str, Any]:
        """POST ``body`` until the peer accepts it; its JSON answer (``{}`` when it sent none).

        Raises:
            DataError: the peer refused it for good, or still failed after ``max_attempts``.
            StopRequested: shutdown began while retrying.
        """
        content = json.dumps(body, ensure_ascii=False).encode()
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_any(stop_after_attempt(self._retry.max_attempts), stop_when_event_set(self._stop)),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(key, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, url, content, key)
        except RetriableError as exc:
            if self._stop.is_set():
                message = f"shutdown while posting {key} to {self.peer}"
                raise StopRequested(message) from exc
            reason = f"{self.peer} still failing after {self._retry.max_attempts} attempts: {exc}"
            raise DataError("", reason) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _attempt(self, url: str, content: bytes, key: str) -> dict[str, Any]:
        if self._stop.is_set():
            message = f"shutdown while posting {key}"
            raise StopRequested(message)
        try:
            response = self._client.post(url, content=content, headers={"Idempotency-Key": key})
        except httpx.HTTPError as exc:
            message = f"{self.peer} unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        if response.is_success:
            return _answer(response)
        if response.status_code in _RETRIABLE_STATUS:
            message = f"{self.peer} answered {response.status_code}"
            retry_after = retry_after_s(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise BackpressureError(message, retry_after)
            raise RetriableError(message)
        text = mask_text(response.text[:300])
        raise DataError("", f"{self.peer} refused the {self._subject} with {response.status_code}: {text}")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, BackpressureError):
            return min(error.retry_after_s, self._retry.max_retry_after_s)
        ceiling = min(self._retry.max_backoff_s, self._retry.initial_backoff_s * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _log_retry(self, key: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = "backpressure" if isinstance(error, BackpressureError) else "failure"
        self._retries.labels(self.peer, reason).inc()
        log.warning(
            "peer_post_retried",
            peer=self.peer,
            subject=self._subject,
            key=key,
            attempt=state.attempt_number,
            error=str(error),
            retry_in_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; an empty or unreadable body says nothing, so it is ``{}``."""
    try:
        answer = json.loads(response.content) if response.content else {}
    except ValueError:
        answer = {}
    return answer if isinstance(answer, dict) else {}
