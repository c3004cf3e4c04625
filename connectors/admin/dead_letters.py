"""Choosing dead letters and turning one back into the record it was (pure; Kafka I/O is in the service).

A dead letter (:mod:`connectors.runtime.dlq`) is the original record plus ``ubridge.error.*`` headers naming
the stage, error class, field, reason and the topic, partition and offset it came from. A replay sends the
original key, value and headers (minus ``ubridge.error.*``) back to that topic and partition, or to a topic the
operator names; a source's dead letter has no input topic, so its replay needs one named.

Example:
    >>> DeadLetterFilter(error_class="DataError", field="region_code").matches(letter)
    True
"""

from dataclasses import dataclass
from datetime import datetime

from connectors.runtime.dlq import PREFIX
from connectors.runtime.interface import Headers, Output


@dataclass(frozen=True)
class Letter:
    """What a filter looks at: a dead letter's place, time and error context."""

    partition: int
    offset: int
    timestamp: datetime
    context: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class DeadLetterFilter:
    """Which dead letters an operator means; every criterion left at None matches all.

    Times are bounds on the dead letter's own timestamp (``since`` inclusive, ``until`` exclusive); offsets
    on its offset in the dead-letter topic (both inclusive).
    """

    stage: str | None = None
    error_class: str | None = None
    field: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def matches(self, letter: Letter) -> bool:
        """Whether ``letter`` meets every criterion set."""
        context = letter.context
        checks = (
            self.stage is None or context.get("stage") == self.stage,
            self.error_class is None or context.get("class") == self.error_class,
            self.field is None or context.get("field") == self.field,
            self.since is None or letter.timestamp >= self.since,
            self.until is None or letter.timestamp < self.until,
            self.from_offset is None or letter.offset >= self.from_offset,
            self.to_offset is None or letter.offset <= self.to_offset,
        )
        return all(checks)


class NotReplayableError(ValueError):
    """A dead letter that cannot go back where it came from (a source's: it had no input topic)."""


def replay_output(
    context: dict[str, str], key: bytes | None, value: bytes | None, headers: Headers, *, topic: str | None
) -> Output:
    """The record to produce for a dead letter: to ``topic`` if given, else back to its input topic and partition.

    Raises:
        NotReplayableError: no ``topic`` was given and the dead letter names no input partition.
    """
    original = tuple((name, v) for name, v in headers if not name.startswith(PREFIX))
    if topic is not None:
        return Output(topic=topic, key=key, value=value, headers=original)
    source, partition = context.get("topic", ""), context.get("partition", "")
    if not source or not partition.isdigit():
        message = f"the dead letter came from source {source or '?'}, not from a topic: name the topic to replay to"
        raise NotReplayableError(message)
    return Output(topic=source, key=key, value=value, headers=original, partition=int(partition))
