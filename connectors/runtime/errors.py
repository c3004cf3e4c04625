"""The I/O branch of ubridge's exception tree (the root and :class:`DataError` live in ``routing.errors``).

::

    UbridgeError
     ├── DataError                         dead-lettered, never retried
     │    └── RecordFailed                 an unexpected exception on one record, after bounded retries
     └── RetriableError                    retried at the I/O edge with capped backoff
          └── BackpressureError            the peer said when to come back (Retry-After)
"""

from routing.errors import DataError, UbridgeError

__all__ = ["BackpressureError", "DataError", "RecordFailed", "RetriableError", "StopRequested", "UbridgeError"]


class RetriableError(UbridgeError):
    """A failure of the outside world (network, 5xx, broker) that may succeed if tried again."""


class BackpressureError(RetriableError):
    """The peer asked us to wait ``retry_after_s`` seconds before trying again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class StopRequested(UbridgeError):
    """Shutdown began while a record was still being retried; the record stays uncommitted."""


class RecordFailed(DataError):
    """Processing one record raised something no connector expects (a bug, a value no code foresaw).

    It is dead-lettered like a ``DataError``, after bounded retries, so one record can never stop a stage.

    Args:
        error_class: The class name of the exception, kept for the dead letter's headers and the metric.
        reason: Its message and how many attempts were made.
    """

    def __init__(self, error_class: str, reason: str) -> None:
        self.error_class = error_class
        super().__init__("", reason)

    def __reduce__(self) -> tuple[type["RecordFailed"], tuple[str, str]]:
        return type(self), (self.error_class, self.reason)
