"""Project-table stage: the latest ``ProjectEvent`` of every project on a compacted topic, keyed by project code.

The 爱山东 router looks cited projects up here (zero materials: permits, drawings and demand come from the
approval system's data, not from the applicant). Compaction keeps one record per project, so reading the
table costs the number of projects, not the length of their history. A retraction does not replace what
is known: the withdrawn record's materials were shared and may still be valid for the earlier stages.

The table keeps no contact (:func:`routing.personal_data.strip_project_event`): its reader never needs one,
and a compacted record lives as long as its project. Records written with a contact by an earlier version
are found when the stage is assigned its partitions (it reads the same partitions of the table: both topics
are keyed by project code with as many partitions) and written again without it at the next tick, unless a
newer event of the project was written first (log ``project_table_scrubbed``).
"""

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output
from routing.errors import DataError
from routing.personal_data import strip_project_event
from routing.records import ProjectEvent
from schemas import Codec

log = structlog.get_logger(__name__)

_RETRACTION = Delivered(filtered_reason="retraction")


class PartitionReader(Protocol):
    """Reads the latest value per key of some partitions of a compacted topic."""

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
        """Key → value per partition."""
        ...


class ProjectTableWriter:
    """Copies each project event, without its contact, to the compacted project table.

    Args:
        input_topic: The project-event topic.
        table_topic: The compacted project table.
        codec: Avro codec.
        reader: Reads table partitions on assignment, to strip what earlier versions wrote (None: not done).
    """

    stage = "project-table"

    def __init__(
        self, *, input_topic: str, table_topic: str, codec: Codec, reader: PartitionReader | None = None
    ) -> None:
        self.input_topics = (input_topic,)
        self._table_topic = table_topic
        self._codec = codec
        self._reader = reader
        self._unstripped: dict[bytes, tuple[int, bytes]] = {}  # key → (partition, stripped value)

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per project event: the copy, or a retraction left out."""
        for record in records:
            try:
                event = cast(ProjectEvent, self._codec.decode_as("ProjectEvent", record.value))
            except DataError as exc:
                yield exc
                continue
            if event["retraction"]:
                yield _RETRACTION
                continue
            key = event["project_code"].encode()
            self._unstripped.pop(key, None)  # a newer event replaces it: the old one must not be written back
            value = self._codec.encode("ProjectEvent", dict(strip_project_event(event)))
            yield Delivered(outputs=(Output(self._table_topic, key, value),))

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Find the table records of ``partitions`` that still hold a contact."""
        if self._reader is None:
            return
        for partition, values in self._reader.read(sorted({tp.partition for tp in partitions})).items():
            for key, value in values.items():
                try:
                    event = cast(ProjectEvent, self._codec.decode_as("ProjectEvent", value))
                except DataError as exc:
                    log.warning("project_table_unreadable", topic=self._table_topic, reason=exc.reason)
                    continue
                stripped = strip_project_event(event)
                if stripped != event:
                    self._unstripped[key] = (partition, self._codec.encode("ProjectEvent", dict(stripped)))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Leave the records of partitions given up to their next owner."""
        given_up = {tp.partition for tp in partitions}
        self._unstripped = {k: item for k, item in self._unstripped.items() if item[0] not in given_up}

    def tick(self, now: datetime) -> list[Output]:
        """Write again, stripped, the records found holding a contact."""
        outputs = [
            Output(self._table_topic, key, value, partition=partition)
            for key, (partition, value) in self._unstripped.items()
        ]
        if outputs:
            log.info("project_table_scrubbed", topic=self._table_topic, projects=len(outputs))
        self._unstripped = {}
        return outputs

    def close(self) -> None:
        """Nothing to release."""
