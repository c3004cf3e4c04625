"""One JSON POST to a peer (a utility's billing system, 爱山东's receipt endpoint), retried a bounded number of times.

The utility sink's rules (:mod:`connectors.utility.client`): 2xx is done; 408, 429, 5xx and transport errors
are retried with capped exponential backoff and full jitter, honouring ``Retry-After`` up to its ceiling; any
other 4xx is a ``DataError``. Unlike the sink, which stops its stage rather than skip a task, a payment's
attempts are bounded (``max_attempts``): one that still fails is a ``DataError`` naming the peer and the last
answer, dead-lettered so that the payments behind it go on. The ``Idempotency-Key`` is the payment id on every
attempt, so a replay from the dead-letter topic, or a retry after a lost answer, never posts twice.
"""

import json
import random
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_when_event_set,
)

from connectors.payments.settings import PaymentRetry
from connectors.runtime.errors import BackpressureError, RetriableError, StopRequested
from connectors.runtime.http_pull import retry_after_s
from connectors.runtime.metrics import Metrics
from routing.errors import DataError
from routing.privacy import mask_text

log = structlog.get_logger(__name__)

_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class PaymentPoster:
    """POSTs JSON bodies to one peer with its bearer token; one per peer, each with its own pool.

    Args:
        peer: The peer's name in logs, metrics and reasons (a utility id, or ``aishandong``).
        token: Its bearer token.
        timeout_s: Per request.
        retry: The bounded retry policy.
        metrics: Process metrics (retries by peer and reason).
        stop: When set, an ongoing retry gives up with :class:`StopRequested`.
        transport: Swap point for tests.
    """

    def __init__(
        self,
        peer: str,
        *,
        token: SecretStr,
        timeout_s: float,
        retry: PaymentRetry,
        metrics: Metrics,
        stop: threading.Event,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.peer = peer
        self._retry = retry
        self._metrics = metrics
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
        raise DataError("", f"{self.peer} refused the payment with {response.status_code}: {text}")

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
        self._metrics.payment_retries.labels(self.peer, reason).inc()
        log.warning(
            "payment_post_retried",
            peer=self.peer,
            payment_id=key,
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
