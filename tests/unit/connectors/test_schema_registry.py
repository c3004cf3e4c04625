import io
from typing import Any

import fastavro
import pytest

from connectors.runtime.record_headers import CONTENT_TYPE, FINGERPRINT, SCHEMA, value_headers
from connectors.runtime.schema_registry import (
    RegistryClient,
    RegistryCodec,
    frame,
    schema_id_of,
    short_name,
    subjects,
)
from connectors.settings import ConfigError, parse_settings
from routing.errors import DataError
from schemas import Codec, fingerprint, load_current
from tests.support import make_task

MINIMAL = {"routing": {"service_areas": "areas.yaml"}}
REGISTRY = {"url": "http://127.0.0.1:8080/apis/ccompat/v7"}


class _Schemas(RegistryClient):
    """The registry's answers by id, from memory: the codec's framing is under test here, not HTTP."""

    def __init__(self, by_id: dict[int, dict[str, Any]]) -> None:
        self._by_id = by_id
        self.asked: list[int] = []

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        self.asked.append(schema_id)
        return self._by_id.get(schema_id)


def test_frame_is_magic_zero_and_big_endian_id() -> None:
    """The registry framing is 00 then the id in four big-endian bytes."""
    assert frame(258) == b"\x00\x00\x00\x01\x02"
    assert schema_id_of(frame(258) + b"body") == 258


def test_single_object_values_have_no_schema_id() -> None:
    """A C3 01 value, or one too short for an id, is not registry-framed."""
    assert schema_id_of(Codec.default().encode("UtilityTask", dict(make_task("yantai-water", 1)))) is None
    assert schema_id_of(b"\x00\x00\x01") is None


def test_subjects_follow_topic_name_strategy_and_split_the_ledger_changelog() -> None:
    """One subject per topic (<topic>-value); the changelog's two record types each get <topic>-<full name>."""
    settings = parse_settings(MINIMAL)
    fields = ("project_events", "projects", "applications", "applications_awaiting", "task_status", "sla")
    topics = {field: [settings.topic(field)] for field in (*fields, "ledger_changelog")}
    plan = subjects({**topics, "tasks": ["ubridge.tasks.yantai-water.v1", "ubridge.tasks.yantai-gas.v1"]})
    assert plan["ubridge.tasks.yantai-water.v1-value"] == plan["ubridge.tasks.yantai-gas.v1-value"] == ("UtilityTask",)
    assert plan["ubridge.projects.v1-value"] == ("ProjectEvent",)
    assert plan["ubridge.ledger.changelog.v1-ubridge.v1.TaskLedgerEntry"] == ("TaskLedgerEntry",)
    assert plan["ubridge.ledger.changelog.v1-ubridge.v1.TaskStatus"] == ("TaskStatus",)
    assert "ubridge.ledger.changelog.v1-value" not in plan


def test_short_name_reads_full_names_and_namespaces() -> None:
    """A registry may return the name qualified or with a separate namespace."""
    assert short_name({"name": "ubridge.v1.UtilityTask"}) == "UtilityTask"
    assert short_name({"name": "TaskStatus", "namespace": "ubridge.v1"}) == "TaskStatus"


def test_registry_encoding_needs_a_registry() -> None:
    """value_encoding registry without schema_registry is refused, naming what is missing."""
    with pytest.raises(ConfigError, match="schema_registry"):
        parse_settings({**MINIMAL, "kafka": {"value_encoding": "registry"}})


def test_registry_auth_comes_in_pairs() -> None:
    """A username without a password is refused."""
    with pytest.raises(ConfigError, match="username and password go together"):
        parse_settings({**MINIMAL, "schema_registry": {**REGISTRY, "username": "ubridge"}})


def test_single_object_stays_the_default() -> None:
    """Without the option values stay single-object encoded."""
    assert parse_settings(MINIMAL).kafka.value_encoding == "single-object"


def test_registry_codec_frames_and_resolves_by_id_once() -> None:
    """A task is framed with its registered id, decodes through the registry's schema, and the id is cached."""
    client = _Schemas({7: load_current("UtilityTask")})
    codec = RegistryCodec(client, {"UtilityTask": 7})
    task = dict(make_task("yantai-water", 1))
    data = codec.encode("UtilityTask", task)
    assert data[:5] == frame(7)
    body = fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(load_current("UtilityTask")))
    assert codec.decode(data) == ("UtilityTask", body)
    codec.decode(data)
    assert client.asked == [7]


def test_registry_codec_headers_name_the_schema() -> None:
    """Registry-framed values carry their own content type and the writer's name and fingerprint."""
    codec = RegistryCodec(_Schemas({7: load_current("UtilityTask")}), {"UtilityTask": 7})
    headers = dict(value_headers(codec.encode("UtilityTask", dict(make_task("yantai-water", 1))), codec))
    assert headers == {
        CONTENT_TYPE: b"avro/binary; encoding=schema-registry",
        SCHEMA: b"ubridge.v1.UtilityTask",
        FINGERPRINT: fingerprint(load_current("UtilityTask")).hex().encode(),
    }


def test_registry_codec_still_reads_single_object_values() -> None:
    """Records written before the switch decode after it."""
    codec = RegistryCodec(_Schemas({}), {})
    data = Codec.default().encode("UtilityTask", dict(make_task("yantai-water", 1)))
    assert codec.decode(data)[0] == "UtilityTask"


def test_unknown_id_and_foreign_schema_are_data_errors() -> None:
    """An id the registry does not have, or one naming another record, is bad input with its reason."""
    foreign = {"type": "record", "name": "Other", "namespace": "x", "fields": []}
    codec = RegistryCodec(_Schemas({9: foreign}), {})
    with pytest.raises(DataError, match="unknown schema id 8"):
        codec.decode(frame(8) + b"\x00")
    with pytest.raises(DataError, match=r"schema id 9 is x\.Other, not a ubridge record"):
        codec.decode(frame(9) + b"\x00")
