"""The answer (反馈) of a work order, sent back to the 12345 platform through its interface.

``POST {url}/api/v1/work-orders/{order_id}/answer`` (simulators/hotline.py documents the platform's side)
with ``Authorization: Bearer <token>`` and the JSON body
``{"order_id", "utility_id", "result", "answered_at"}``; ``Idempotency-Key: <order id>:<answered_at>`` so that a
repeat after a lost acknowledgement (or a replay) is the same answer to the platform. 2xx is sent; 408, 429,
5xx and transport errors are retried a few times with a doubling pause (tenacity), then given up; any other
status is refused for good. Either failure is a :class:`~routing.errors.DataError` the stage dead-letters with
its reason, without holding up the other orders.
"""

import threading
from datetime import datetime
from typing import Final

import httpx
import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_any, stop_when_event_set
from tenacity.wait import wait_exponential

from connectors.complaints.settings import HotlinePlatformSettings
from connectors.runtime.errors import RetriableError, StopRequested
from routing.errors import DataError

log = structlog.get_logger(__name__)

_RETRIABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
_LONGEST_PAUSE_S: Final = 8.0


class PlatformClient:
    """Sends answers to one hotline platform.

    Args:
        settings: Its URL, token, timeout and tries.
        stop: When set, a retry in progress gives up with :class:`StopRequested`.
        transport: Swap point for tests.
    """

    def __init__(
        self, settings: HotlinePlatformSettings, *, stop: threading.Event, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._base = settings.url.rstrip("/")
        self._settings = settings
        self._stop = stop
        self._client = httpx.Client(
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Content-Type": "application/json; charset=utf-8",
            },
            timeout=settings.timeout_s,
            transport=transport,
        )

    def send_answer(self, *, order_id: str, utility_id: str, answer: str, answered_at: datetime) -> int:
        """POST the answer until the platform takes it; returns the tries it took.

        Raises:
            DataError: The platform refused it for good, or kept failing for every try (field ``answer``).
            StopRequested: The stage is stopping.
        """
        at = answered_at.isoformat()
        body = {"order_id": order_id, "utility_id": utility_id, "result": answer, "answered_at": at}
        headers = {"Idempotency-Key": f"{order_id}:{answered_at.isoformat()}"}
        url = f"{self._base}/api/v1/work-orders/{order_id}/answer"
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_any(stop_after_attempt(self._settings.attempts), stop_when_event_set(self._stop)),
            wait=wait_exponential(multiplier=self._settings.backoff_s, max=_LONGEST_PAUSE_S),
            reraise=True,
        )
        tries = 0
        try:
            for attempt in retrying:
                with attempt:
                    tries += 1
                    self._post(url, body, headers)
        except RetriableError as exc:
            if self._stop.is_set():
                raise StopRequested from exc
            message = f"the hotline platform did not take the answer after {tries} tries: {exc}"
            raise DataError("answer", message) from exc
        log.info("complaint_answer_sent", order_id=order_id, utility=utility_id, tries=tries)
        return tries

    def _post(self, url: str, body: dict[str, str], headers: dict[str, str]) -> None:
        try:
            response = self._client.post(url, json=body, headers=headers)
        except httpx.TransportError as exc:
            log.warning("complaint_answer_retried", reason=type(exc).__name__)
            raise RetriableError(type(exc).__name__) from exc
        if response.is_success:
            return
        if response.status_code in _RETRIABLE_STATUS:
            log.warning("complaint_answer_retried", reason=f"http_{response.status_code}")
            retry = f"HTTP {response.status_code}"
            raise RetriableError(retry)
        message = f"the hotline platform refused the answer: HTTP {response.status_code} {response.text[:200]}"
        raise DataError("answer", message)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()
