"""Normaliser stage for every 工改 vendor: raw JSON (any vendor's format) → canonical ``ProjectEvent`` (Avro).

The mapping to the canonical record is pure (:func:`routing.gonggai.normalise`). A record in a vendor's format
is first mapped to the default format with that vendor's declarative mapping (:mod:`routing.mapping`), chosen by the
record's ``ubridge.source`` header. A record is taken as already in the default format, and not mapped,
when its header ``ubridge.format`` or ``ubridge.vendor`` says ``default`` (the webhook writes mapped
records so), when its source has no mapping, or when that mapping is the identity (vendor ``default``).

Every fault is a ``DataError`` dead-lettered by the runtime; its field is the *vendor's* path
(``approval.办理记录[0].状态``), also when validation after mapping found it.

Example:
    >>> normaliser = GonggaiNormaliser(input_topic=raw, output_topic=events, status_codes=codes, codec=codec,
    ...                               mappings={"gonggai-interface": load_mapping(Path("vendor-yantai.yaml"))})
"""

from collections.abc import Iterator, Mapping, Sequence

from kafka.consumer.fetcher import ConsumerRecord

from connectors.gonggai.raw import read_raw
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.errors import DataError
from routing.gonggai import normalise
from routing.mapping import VendorMapping, apply_mapping
from routing.records import ItemStatus, ProjectEvent
from schemas import Codec

DEFAULT_FORMAT = "default"


class GonggaiNormaliser:
    """Turns each raw approval-system event, of whichever vendor, into one ProjectEvent."""

    stage = "normaliser-gonggai"

    def __init__(
        self,
        *,
        input_topic: str,
        output_topic: str,
        status_codes: Mapping[int, ItemStatus],
        codec: Codec,
        mappings: Mapping[str, VendorMapping] | None = None,
    ) -> None:
        self.input_topics = (input_topic,)
        self._output_topic = output_topic
        self._status_codes = dict(status_codes)
        self._codec = codec
        self._mappings = {source: m for source, m in (mappings or {}).items() if m.vendor != DEFAULT_FORMAT}

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per raw record."""
        return each_record(records, self._normalise)

    def _normalise(self, record: ConsumerRecord) -> Delivered:
        raw = read_raw(record)
        source = raw.headers.get("ubridge.source", "gonggai")
        mapping = self._mapping_for(source, raw.headers)
        codes = self._status_codes
        if mapping is None:
            event = normalise(raw.body, source=source, ingested_at=raw.ingested_at, status_codes=codes)
        else:
            mapped = apply_mapping(mapping, raw.body)
            try:
                event = normalise(mapped, source=source, ingested_at=raw.ingested_at, status_codes=codes)
            except DataError as exc:
                raise mapping.vendor_error(exc) from exc
        value = self._codec.encode("ProjectEvent", event)
        return Delivered(
            outputs=(Output(self._output_topic, event["project_code"].encode(), value),), repairs=repairs_of(event)
        )

    def _mapping_for(self, source: str, headers: Mapping[str, str]) -> VendorMapping | None:
        if DEFAULT_FORMAT in (headers.get("ubridge.format"), headers.get("ubridge.vendor")):
            return None
        return self._mappings.get(source)

    def close(self) -> None:
        """Nothing to release."""


def repairs_of(event: ProjectEvent) -> tuple[tuple[str, str], ...]:
    """The (field, kind) of each repair an event records, for the stage's ``ubridge_records_repaired_total``."""
    return tuple((r["field"], r["kind"]) for r in event["repairs"])
