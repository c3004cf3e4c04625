"""The exception tree every ubridge stage shares.

::

    UbridgeError
     ├── DataError            the record itself is wrong: dead-lettered, never retried
     └── RetriableError       the outside world failed: retried at the I/O edge   (connectors.runtime.errors)
          └── BackpressureError(retry_after_s)  the peer asked us to slow down

Only :class:`DataError` lives here because pure logic can only ever find fault with data; the retriable
branch belongs to the I/O layer.
"""


class UbridgeError(Exception):
    """Root of every error ubridge raises on purpose."""


class DataError(UbridgeError):
    """A record that can never be processed as it is; it goes to the stage's dead-letter topic.

    Args:
        field: The offending field, dotted for nested ones (``demands.0.service``), or ``""`` for the whole
            record.
        reason: What is wrong, precise enough for an operator to fix the source.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)

    def __reduce__(self) -> tuple[type["DataError"], tuple[str, str]]:
        # Exceptions pickle as ``cls(*args)`` by default; args hold the joined message, not the two fields.
        # Stage workers send dead letters back to their loop across a process boundary.
        return type(self), (self.field, self.reason)
