"""The I/O branch of ubridge's exception tree (the root and :class:`DataError` live in ``routing.errors``).

::

    UbridgeError
     ├── DataError                         dead-lettered, never retried
     └── RetriableError                    retried at the I/O edge with capped backoff
          └── BackpressureError            the peer said when to come back (Retry-After)
"""

from routing.errors import DataError, UbridgeError

__all__ = ["BackpressureError", "DataError", "RetriableError", "StopRequested", "UbridgeError"]


class RetriableError(UbridgeError):
    """A failure of the outside world (network, 5xx, broker) that may succeed if tried again."""


class BackpressureError(RetriableError):
    """The peer asked us to wait ``retry_after_s`` seconds before trying again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StopRequested(UbridgeError):
    """Shutdown began while a record was still being retried; the record stays uncommitted."""
