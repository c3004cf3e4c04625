import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

import schemas
from routing.gonggai import normalise
from routing.service_areas import load_service_areas
from routing.tasks import route_project_event

SERVICE_AREAS = Path(__file__).resolve().parents[3] / "deploy" / "config" / "service-areas.yaml"


def compatible(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return result.compatibility is SchemaCompatibilityType.compatible


@pytest.mark.parametrize("name", schemas.RECORDS)
def test_every_record_has_a_published_history(name: str) -> None:
    """Each record has at least one published version to stay compatible with."""
    assert [version for version, _ in schemas.history(name)][:1] == [1]


@pytest.mark.parametrize(
    ("name", "version"), [(name, version) for name in schemas.RECORDS for version, _ in schemas.history(name)]
)
def test_current_schema_reads_every_earlier_version(name: str, version: int) -> None:
    """BACKWARD: the current schema can read data written with each earlier version."""
    old = dict(schemas.history(name))[version]
    assert compatible(reader=schemas.load_current(name), writer=old)


def test_checker_catches_a_new_field_without_default() -> None:
    """The check would fail a change that breaks old data (a required field added)."""
    current = schemas.load_current("TaskStatus")
    broken = {**current, "fields": [*current["fields"], {"name": "priority", "type": "int"}]}
    assert not compatible(reader=broken, writer=current)


def test_history_files_are_named_after_their_version() -> None:
    """History files are v<N>.avsc with N increasing from 1 without gaps."""
    for name in schemas.RECORDS:
        versions = [version for version, _ in schemas.history(name)]
        assert versions == list(range(1, len(versions) + 1))


def test_a_task_written_with_the_enum_reads_as_the_same_service_and_power_round_trips() -> None:
    """A HEAT task written before services became configuration reads as HEAT; a POWER task round-trips."""
    enum_only = dict(schemas.history("UtilityTask"))[6]
    raw = {
        "seq": 1,
        "xmdm": "2026-370602-47-01-000777",
        "xmmc": "n",
        "jsdd": "a",
        "jsddxzqh": "370602",
        "jsdw": "b",
        "dybzspjdxh": 2,
        "blzt": 11,
        "blsj": "2026-11-25 10:31:00",
        "xqxx": [{"fwlx": "供热"}],
    }
    at = datetime(2026, 11, 25, tzinfo=UTC)
    event = normalise(raw, source="gonggai-interface", ingested_at=at)
    record = route_project_event(event, load_service_areas(SERVICE_AREAS), now=at).tasks[0]
    old = io.BytesIO()
    fastavro.schemaless_writer(old, fastavro.parse_schema(enum_only), record)
    current = fastavro.parse_schema(schemas.load_current("UtilityTask"))
    read = fastavro.schemaless_reader(io.BytesIO(old.getvalue()), fastavro.parse_schema(enum_only), current)
    new = io.BytesIO()
    fastavro.schemaless_writer(new, current, read | {"service": "POWER"})
    assert (read["service"], fastavro.schemaless_reader(io.BytesIO(new.getvalue()), current)["service"]) == (
        "HEAT",
        "POWER",
    )
