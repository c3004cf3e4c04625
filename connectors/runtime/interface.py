"""The connector interface: what a source, a transform and a sink promise the runtime.

Contract:
    * **At-least-once.** The runtime commits a consumer offset only after every output of that record (or
      its dead letter) is acknowledged by Kafka; a source's cursor is committed in the same Kafka
      transaction as the records it covers. A crash therefore repeats work, never loses it, so every
      step must be idempotent (task ids are deterministic; utilities deduplicate on ``Idempotency-Key``).
    * **Errors.** Raise ``DataError`` for a record that can never succeed: the runtime dead-letters it with
      its original bytes and moves on. Raise ``RetriableError`` for the outside world failing: sources are
      polled again after a backoff, sinks retry inside their client; one that escapes (or a Kafka error)
      restarts the stage after a backoff. Any other exception on one record is retried a few times
      (:func:`outcome_of`), then the record is dead-lettered as :class:`RecordFailed`: one record never stops
      a stage.
    * **Threads.** Each stage runs in one thread of its own with its own Kafka clients; a connector object
      is used by that thread only, and ``close()`` is called once, from it.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from connectors.runtime.errors import RecordFailed, RetriableError, StopRequested
from routing.errors import DataError

RECORD_ATTEMPTS: Final = 3
_RECORD_BACKOFF_S: Final = 0.1

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Output:
    """A record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None  # None is a tombstone, for a compacted topic to forget the key
    headers: Headers = ()
    partition: int | None = None  # set only to co-partition a changelog with its input; else by key


@dataclass(frozen=True)
class SourceBatch:
    """What one poll of a source returned: raw records and the cursor that follows them."""

    records: Sequence[Output]
    cursor: str
    has_more: bool = False


@dataclass(frozen=True)
class Delivered:
    """A record handled with nothing left to do; ``outputs`` may be empty (filtered or delivered)."""

    outputs: Sequence[Output] = ()
    filtered_reason: str | None = None
    repairs: tuple[tuple[str, str], ...] = ()  # (field, kind) of each value read other than as written


Outcome = Delivered | DataError


def each_record(records: Iterable[ConsumerRecord], handle: Callable[[ConsumerRecord], Delivered]) -> Iterator[Outcome]:
    """One outcome per record, in order: what :func:`outcome_of` made of it."""
    for record in records:
        yield outcome_of(handle, record)


def outcome_of(handle: Callable[[ConsumerRecord], Delivered], record: ConsumerRecord) -> Outcome:
    """What ``handle`` made of ``record``: its result, the ``DataError`` it raised, or a :class:`RecordFailed`.

    An unexpected exception is retried :data:`RECORD_ATTEMPTS` times in all, with a doubling pause (a
    passing fault may clear), then becomes a ``RecordFailed`` naming its class. The failures of the world
    outside the record (``RetriableError``, Kafka's errors) and shutdown propagate: the stage deals with those.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            return handle(record)
        except DataError as exc:
            return exc
        except (RetriableError, StopRequested, KafkaError):
            raise
        except Exception as exc:  # containing the unforeseen is the point
            if attempt == RECORD_ATTEMPTS:
                reason = f"{type(exc).__name__}: {exc} (failed {attempt} times)"
                return RecordFailed(type(exc).__name__, reason)
            time.sleep(_RECORD_BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError  # pragma: no cover - the last attempt returns


class Source(Protocol):
    """Reads an upstream system from a cursor."""

    name: str

    def poll(self, cursor: str | None) -> SourceBatch:
        """Return the records after ``cursor`` (None: from the start). Raise RetriableError to back off."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Probing(Protocol):
    """A source that can tell cheaply whether anything is new after a cursor, so that it can be asked often."""

    def has_news(self, cursor: str | None) -> bool:
        """Whether a poll from ``cursor`` would find new records. Raise RetriableError when it cannot tell."""
        ...


class Processor(Protocol):
    """Consumes records and says, in order, what became of each (transforms and sinks alike)."""

    stage: str

    @property
    def input_topics(self) -> Sequence[str]:
        """Topics the stage consumes."""
        ...

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Yield one outcome per record, in order; stop early by raising StopRequested."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class Ticking(Protocol):
    """A processor that also acts on the passing of time (deadlines), not only on records."""

    def tick(self, now: datetime) -> Sequence[Output]:
        """Called about once a second between batches; outputs are produced and flushed at once."""
        ...


@runtime_checkable
class Stateful(Protocol):
    """A processor whose state follows its input partitions (rebuilt from a changelog on assignment)."""

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """The consumer now owns ``partitions``: load their state before their first record."""
        ...

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """The consumer gave ``partitions`` up: drop their state."""
        ...


@dataclass
class StageState:
    """What the health endpoint reports of one stage."""

    started: bool = False
    ready: bool = False
    failed: bool = False
    detail: list[str] = field(default_factory=list)
