"""The README's recipe for reading ubridge's records with the Python ``avro`` package, checked."""

import io
import json
from datetime import UTC, datetime
from typing import Any

import avro.io
import avro.schema
import fastavro
import fastavro.schema

from schemas import Codec, history, load_current

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
STATUS = {
    "task_id": "t-1",
    "utility_id": "yantai-water",
    "application_id": None,
    "stage": "CONTACTED",
    "occurred_at": NOW,
    "reported_at": NOW,
    "pipe_length_m": None,
    "reason": None,
    "detail": None,
    "reporter": "callback",
    "task": None,
}


def spec_fingerprint(schema: dict[str, Any]) -> bytes:
    """The workaround: CRC-64-AVRO of the specification's canonical form (``avro`` keeps {"type": "long"})."""
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema))
    return avro.schema._crc_64_fingerprint(canonical.encode())  # the package's own CRC-64-AVRO


def test_avro_package_fingerprint_differs_for_logical_types() -> None:
    """The caveat: for a schema with timestamp-millis, the avro package's fingerprint is not the header's."""
    value = Codec.default().encode("TaskStatus", STATUS)
    parsed = avro.schema.parse(json.dumps(load_current("TaskStatus")))
    assert parsed.fingerprint("CRC-64-AVRO") != value[2:10]
    assert spec_fingerprint(load_current("TaskStatus")) == value[2:10]


def test_avro_package_decodes_with_the_workaround() -> None:
    """Writers found by the specification's fingerprint, the avro package decodes ubridge's bytes."""
    name = "TaskStatus"
    versions = [load_current(name), *(old for _, old in history(name))]
    writers = {spec_fingerprint(s): avro.schema.parse(json.dumps(s)) for s in versions}
    reader = avro.schema.parse(json.dumps(load_current(name)))
    value = Codec.default().encode(name, STATUS)
    datum = avro.io.DatumReader(writers[value[2:10]], reader).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    assert datum == STATUS
