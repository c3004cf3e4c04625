"""Project-table stage: the latest ``ProjectEvent`` of every project on a compacted topic, keyed by project code.

The 爱山东 router looks cited projects up here (zero materials: permits, drawings and demand come from the
approval system's data, not from the applicant). Compaction keeps one record per project, so reading the
table costs the number of projects, not the length of their history. A retraction does not replace what
is known: the withdrawn record's materials were shared and may still be valid for the earlier stages.
The table keeps no contact (:func:`routing.personal_data.strip_project_event`): its reader never needs one,
and a compacted record lives as long as its project.
"""

from collections.abc import Iterator, Sequence
from typing import cast

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output
from routing.errors import DataError
from routing.personal_data import strip_project_event
from routing.records import ProjectEvent
from schemas import Codec

_RETRACTION = Delivered(filtered_reason="retraction")


class ProjectTableWriter:
    """Copies each project event, without its contact, to the compacted project table."""

    stage = "project-table"

    def __init__(self, *, input_topic: str, table_topic: str, codec: Codec) -> None:
        self.input_topics = (input_topic,)
        self._table_topic = table_topic
        self._codec = codec

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
            value = self._codec.encode("ProjectEvent", dict(strip_project_event(event)))
            yield Delivered(outputs=(Output(self._table_topic, event["project_code"].encode(), value),))

    def close(self) -> None:
        """Nothing to release."""
