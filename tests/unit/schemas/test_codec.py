import io
import json
from datetime import UTC, datetime
from typing import Any

import avro.schema
import fastavro
import fastavro.schema
import pytest

import schemas
from routing.errors import DataError
from schemas import MAGIC, Codec

NOW = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def status(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
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
    record.update(overrides)
    return record


def test_round_trip_keeps_every_field() -> None:
    """A record decodes to what was encoded."""
    codec = Codec.default()
    assert codec.decode(codec.encode("TaskStatus", status())) == ("TaskStatus", status())


def test_header_is_single_object_marker_and_little_endian_crc64() -> None:
    """The 10-byte header is C3 01 and the avro package's CRC-64-AVRO of the parsing canonical form."""
    data = Codec.default().encode("TaskStatus", status())
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schemas.load_current("TaskStatus")))
    assert data[:2] == MAGIC
    assert data[2:10] == avro.schema._crc_64_fingerprint(canonical.encode())


def test_fingerprint_agrees_with_avro_package_without_logical_types() -> None:
    """For a schema both libraries canonicalise alike, the fingerprints are equal."""
    plain = {
        "type": "record",
        "name": "P",
        "namespace": "ubridge.v1",
        "fields": [{"name": "a", "type": "string"}],
    }
    assert schemas.fingerprint(plain) == avro.schema.parse(json.dumps(plain)).fingerprint("CRC-64-AVRO")


def test_unknown_fingerprint_is_a_data_error() -> None:
    """A fingerprint no published schema has cannot be decoded."""
    data = bytearray(Codec.default().encode("TaskStatus", status()))
    data[2:10] = b"\x00" * 8
    with pytest.raises(DataError, match="unknown schema fingerprint 0000000000000000"):
        Codec.default().decode(bytes(data))


def test_plain_json_is_not_single_object() -> None:
    """Bytes without the C3 01 marker are rejected with a reason."""
    with pytest.raises(DataError, match="single-object"):
        Codec.default().decode(b'{"task_id": "t-1"}')


def test_truncated_body_is_a_data_error() -> None:
    """A body cut short is reported as corrupt, not as a crash."""
    data = Codec.default().encode("TaskStatus", status())
    with pytest.raises(DataError, match=r"corrupt ubridge\.v1\.TaskStatus"):
        Codec.default().decode(data[:14])


def test_record_not_fitting_its_schema_is_a_data_error() -> None:
    """An enum symbol outside the schema is refused at encoding."""
    with pytest.raises(DataError, match=r"does not fit ubridge\.v1\.TaskStatus"):
        Codec.default().encode("TaskStatus", status(stage="TELEPORTED"))


def test_decode_as_checks_the_type() -> None:
    """Decoding a TaskStatus where a UtilityTask is expected says which it got."""
    data = Codec.default().encode("TaskStatus", status())
    with pytest.raises(DataError, match=r"expected ubridge\.v1\.UtilityTask, got ubridge\.v1\.TaskStatus"):
        Codec.default().decode_as("UtilityTask", data)


def test_published_v1_record_is_resolved_into_current() -> None:
    """A TaskStatus written with published v1 decodes into the current schema, new fields at their defaults."""
    v1 = dict(schemas.history("TaskStatus"))[1]
    body = io.BytesIO()
    old_record = {k: v for k, v in status().items() if k not in ("reporter", "task")}
    fastavro.schemaless_writer(body, fastavro.parse_schema(v1), old_record)
    data = MAGIC + schemas.fingerprint(v1) + body.getvalue()
    assert Codec.default().decode(data) == ("TaskStatus", status(reporter="utility", task=None))
