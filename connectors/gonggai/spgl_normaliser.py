"""Normaliser stage for the query account: joined ``SPGL_*`` JSON → canonical ``ProjectEvent`` (Avro).

The mapping is pure (:func:`routing.spgl.joined_to_event`); this stage only decodes, encodes and keys. A
record that does not parse or validate is a ``DataError`` naming the SPGL field and is dead-lettered.

Example:
    >>> stage = SpglNormaliser(input_topic="ubridge.raw.gonggai-spgl.v1",
    ...                        output_topic="ubridge.canonical.project-events.v1",
    ...                        status_codes={1: "RECEIVED", 11: "GRANTED", 13: "REFUSED"}, codec=Codec.default())
"""

from collections.abc import Iterator, Mapping, Sequence

from kafka.consumer.fetcher import ConsumerRecord

from connectors.gonggai.normaliser import repairs_of
from connectors.gonggai.raw import read_raw
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.records import ItemStatus
from routing.spgl import joined_to_event
from schemas import Codec

DEFAULT_SOURCE = "gonggai-spgl"


class SpglNormaliser:
    """Turns each joined approval record into one ProjectEvent."""

    stage = "normaliser-gonggai-spgl"

    def __init__(
        self, *, input_topic: str, output_topic: str, status_codes: Mapping[int, ItemStatus], codec: Codec
    ) -> None:
        self.input_topics = (input_topic,)
        self._output_topic = output_topic
        self._status_codes = dict(status_codes)
        self._codec = codec

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per raw record."""
        return each_record(records, self._normalise)

    def _normalise(self, record: ConsumerRecord) -> Delivered:
        raw = read_raw(record)
        source = raw.headers.get("ubridge.source", DEFAULT_SOURCE)
        event = joined_to_event(raw.body, source=source, ingested_at=raw.ingested_at, status_codes=self._status_codes)
        value = self._codec.encode("ProjectEvent", event)
        return Delivered(
            outputs=(Output(self._output_topic, event["project_code"].encode(), value),), repairs=repairs_of(event)
        )

    def close(self) -> None:
        """Nothing to release."""
