"""HTTP delivery to one utility's business system, with retries at this edge only.

2xx is delivered; 408, 429, 5xx and transport errors are retried with capped exponential backoff and full
jitter, honouring ``Retry-After``; any other 4xx is a ``DataError`` (the task will never be accepted as
it is) and goes to the dead-letter topic. ``Idempotency-Key`` is ``<task id>:<revision>``
(:func:`routing.revisions.idempotency_key`), so a retry after a lost acknowledgement never creates a second
task and an update or cancellation is never mistaken for a repeat.

A ``{"status": "duplicate"}`` answer is checked: it must name the revision sent (``"revision"``), or, for
revision 1, may name none. A utility that answers "duplicate" to revision 3 while it holds revision 1 is
deduplicating on the task id and has not applied the change: that is a ``DataError``, never a delivery.
"""

import json
import random
import threading
import time

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_never,
    stop_when_event_set,
)

from connectors.runtime.errors import BackpressureError, RetriableError, StopRequested
from connectors.runtime.http_pull import retry_after_s
from connectors.runtime.metrics import Metrics
from connectors.runtime.trace_context import TRACEPARENT
from connectors.settings import UtilitySettings
from routing.errors import DataError
from routing.revisions import idempotency_key

log = structlog.get_logger(__name__)

_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class UtilityClient:
    """Delivers task bodies to one utility; each utility has its own client, pool and retry state.

    Args:
        settings: The utility's endpoint, credentials, timeout and retry policy.
        metrics: Process metrics (delivery time by outcome, retries by reason).
        stop: When set, an ongoing retry gives up with :class:`StopRequested`.
        transport: Swap point for tests.
    """

    def __init__(
        self,
        settings: UtilitySettings,
        *,
        metrics: Metrics,
        stop: threading.Event,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.utility = settings.id
        self._endpoint = settings.endpoint
        self._retry = settings.retry
        self._metrics = metrics
        self._stop = stop
        self._client = httpx.Client(
            headers={
                "Authorization": f"Bearer {settings.auth.token.get_secret_value()}",
                "Content-Type": "application/json; charset=utf-8",
            },
            timeout=settings.timeout_s,
            transport=transport,
        )

    def deliver(self, task_id: str, revision: int, body: bytes, *, traceparent: str | None = None) -> int:
        """POST one revision of a task until it is accepted; returns the number of retries it took.

        Raises:
            DataError: the utility refused the task for good (4xx other than 408/429), or answered
                "duplicate" for a revision it does not hold.
            StopRequested: shutdown began while retrying.
            RetriableError: ``max_elapsed_s`` passed without success; the stage stops rather than skip
                the task, so the supervisor's restart (and the alert) is the operator's signal.
        """
        retries = 0

        def count(state: RetryCallState) -> None:
            nonlocal retries
            retries += 1
            self._log_retry(task_id, state)

        stop = stop_never if self._retry.max_elapsed_s is None else stop_after_delay(self._retry.max_elapsed_s)
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_any(stop, stop_when_event_set(self._stop)),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=count,
            reraise=True,
        )
        try:
            retrying(self._attempt, task_id, revision, body, traceparent)
        except RetriableError as exc:
            if self._stop.is_set():
                message = f"shutdown while retrying {task_id}"
                raise StopRequested(message) from exc
            raise
        return retries

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _attempt(self, task_id: str, revision: int, body: bytes, traceparent: str | None) -> None:
        if self._stop.is_set():
            message = f"shutdown while delivering {task_id}"
            raise StopRequested(message)
        started = time.perf_counter()
        key = idempotency_key(task_id, revision)
        try:
            headers = {"Idempotency-Key": key} | ({} if traceparent is None else {TRACEPARENT: traceparent})
            response = self._client.post(self._endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._observe("transport_error", started)
            message = f"{self.utility} unreachable: {type(exc).__name__}"
            raise RetriableError(message) from exc
        self._observe(_outcome(response.status_code), started)
        if response.is_success:
            self._check_duplicate(response, revision)
            return
        if response.status_code in _RETRIABLE_STATUS:
            message = f"{self.utility} answered {response.status_code}"
            retry_after = retry_after_s(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise BackpressureError(message, retry_after)
            raise RetriableError(message)
        raise DataError("", f"{self.utility} refused the task with {response.status_code}: {response.text[:300]}")

    def _check_duplicate(self, response: httpx.Response, revision: int) -> None:
        """Refuse a "duplicate" answer that does not confirm the revision sent."""
        try:
            answer = json.loads(response.content) if response.content else None
        except ValueError:
            return  # an answer without a body to read says nothing against the delivery
        if not isinstance(answer, dict) or answer.get("status") != "duplicate":
            return
        held = answer.get("revision")
        if held == revision or (held is None and revision == 1):
            return
        holds = "no revision" if held is None else f"revision {held!r}"
        reason = (
            f"{self.utility} answered duplicate to revision {revision} naming {holds}: it deduplicates on the"
            " task id, not on the Idempotency-Key, so this revision was not applied"
        )
        raise DataError("revision", reason)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, BackpressureError):
            return min(error.retry_after_s, self._retry.max_retry_after_s)
        ceiling = min(self._retry.max_backoff_s, self._retry.initial_backoff_s * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _observe(self, outcome: str, started: float) -> None:
        self._metrics.delivery_seconds.labels(self.utility, outcome).observe(time.perf_counter() - started)

    def _log_retry(self, task_id: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = "backpressure" if isinstance(error, BackpressureError) else "failure"
        self._metrics.delivery_retries.labels(self.utility, reason).inc()
        log.warning(
            "delivery_retried",
            utility=self.utility,
            task_id=task_id,
            attempt=state.attempt_number,
            error=str(error),
            retry_in_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )


def _outcome(status: int) -> str:
    if 200 <= status < 300:  # noqa: PLR2004 - HTTP classes
        return "delivered"
    if status in _RETRIABLE_STATUS:
        return "retriable"
    return "rejected"
