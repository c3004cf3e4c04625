"""The ledger's entries, read from its compacted changelog without a consumer group.

:func:`read_entries` reads every partition once (the monthly report's CLI); :class:`LedgerFollower` keeps them
in memory and follows the topic (the supervision view). Both skip the changelog's held statuses (keys
``held/…``, see :mod:`connectors.ledger.changelog`); a tombstone removes its task; a value that does not decode
as a ``TaskLedgerEntry`` is logged and skipped (the ledger wrote it; the view must not stop over one).

Example:
    >>> follower = LedgerFollower(settings.kafka, settings.topic("ledger_changelog"))
    >>> threading.Thread(target=follower.run, args=(stop,), daemon=True).start()
    >>> follower.wait_caught_up(30); follower.entries()
"""

from typing import cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.ledger.changelog import is_held_key
from connectors.runtime.compacted import read_latest
from connectors.runtime.kafka import make_consumer
from connectors.runtime.topic_follower import TopicFollower, by_field
from connectors.settings import KafkaSettings
from routing.records import TaskLedgerEntry
from schemas import Codec

log = structlog.get_logger(__name__)


def decode(record: ConsumerRecord, codec: Codec) -> TaskLedgerEntry | None:
    """The task's entry of a changelog record; None for a held status or an undecodable value (logged)."""
    if record.key is None or is_held_key(record.key):
        return None
    try:
        return cast(TaskLedgerEntry, codec.decode_as("TaskLedgerEntry", record.value))
    except Exception as exc:
        log.warning("ledger_entry_skipped", partition=record.partition, offset=record.offset, error=type(exc).__name__)
        return None


def read_entries(kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> list[TaskLedgerEntry]:
    """Every task's latest entry on the changelog.

    Raises:
        LookupError: The topic does not exist.
    """
    codec = codec or Codec.default()
    consumer = make_consumer(kafka, group_id=None)
    try:
        latest = read_latest(consumer, topic)
    finally:
        consumer.close()
    decoded = (decode(record, codec) for records in latest.values() for record in records.values())
    return [entry for entry in decoded if entry is not None]


class LedgerFollower(TopicFollower[TaskLedgerEntry]):
    """The changelog's entries in memory, by task, followed from the topic's start (:class:`TopicFollower`).

    Args:
        kafka: The cluster.
        topic: The changelog (prefix applied).
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> None:
        super().__init__(kafka, topic, record="TaskLedgerEntry", key_of=by_field("task_id"), codec=codec)
