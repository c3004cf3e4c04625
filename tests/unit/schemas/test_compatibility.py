import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

import schemas


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
