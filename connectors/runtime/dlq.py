"""Dead letters: the original record, untouched, plus headers that say where it came from and why.

Header names follow Kafka Connect's ``__connect.errors.*`` context, under ``ubridge.``. The message is
masked: a reason may quote a phone or ID number from the record, and operators read these headers.
"""

from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import RecordFailed
from connectors.runtime.interface import Output
from routing.errors import DataError
from routing.privacy import mask_text

PREFIX = "ubridge.error."


def dead_letter(record: ConsumerRecord, error: DataError, *, stage: str, topic: str, now: datetime) -> Output:
    """The dead-letter output for ``record``, which ``stage`` could not process because of ``error``."""
    context = {
        "stage": stage,
        "class": error_class(error),
        "field": error.field,
        "message": mask_text(str(error)),
        "topic": record.topic,
        "partition": str(record.partition),
        "offset": str(record.offset),
        "failed_at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    ours = tuple((PREFIX + name, value.encode()) for name, value in context.items())
    original = tuple((name, value) for name, value in (record.headers or []) if not name.startswith(PREFIX))
    return Output(topic=topic, key=record.key, value=record.value, headers=original + ours)


def error_class(error: DataError) -> str:
    """The class a dead letter names: the original exception's for a :class:`RecordFailed`."""
    return error.error_class if isinstance(error, RecordFailed) else type(error).__name__


def error_context(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """The ``ubridge.error.*`` headers of a dead letter as a plain mapping (for ``ubridge tail``)."""
    return {
        name.removeprefix(PREFIX): value.decode("utf-8", "replace")
        for name, value in headers
        if name.startswith(PREFIX)
    }


def source_dead_letter(
    error: DataError, *, stage: str, topic: str, key: bytes | None, value: bytes, where: str, now: datetime
) -> Output:
    """The dead letter of a record a *source* could not turn into a record (no input topic to point at).

    Args:
        error: Why.
        stage: The source.
        topic: The source's dead-letter topic.
        key: Key to keep the letter with its entity.
        value: The record as the outside system gave it.
        where: Its position at the source (a cursor or serial), recorded as ``offset``.
        now: When it failed.
    """
    context = {
        "stage": stage,
        "class": type(error).__name__,
        "field": error.field,
        "message": mask_text(str(error)),
        "topic": stage,
        "partition": "",
        "offset": where,
        "failed_at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    headers = (("ubridge.source", stage.encode()), *((PREFIX + k, v.encode()) for k, v in context.items()))
    return Output(topic=topic, key=key, value=value, headers=headers)
