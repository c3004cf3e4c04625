import io
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.errors import DataError
from schemas import RECORDS, Codec, load_current
from schemas.compiled import Unsupported, compile_writer
from tests.support import make_task

NOW = datetime(2026, 11, 25, 8, 30, 15, 123987, tzinfo=UTC)


def values(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    """Any value that fits ``schema`` (as loaded: named types inlined at first use)."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named) for branch in schema))
    if isinstance(schema, str):
        primitives: dict[str, st.SearchStrategy[Any]] = {
            "null": st.none(),
            "string": st.text(max_size=12),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "double": st.floats(allow_nan=False),
            "boolean": st.booleans(),
        }
        if schema in primitives:
            return primitives[schema]
        return named[schema.rsplit(".", 1)[-1]]
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return values(kind, named)
    if schema.get("logicalType") == "timestamp-millis":
        zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
        return st.datetimes(timezones=zones) | st.integers(-(2**40), 2**40)
    if kind == "enum":
        named[schema["name"]] = st.sampled_from(schema["symbols"])
        return named[schema["name"]]
    if kind == "array":
        return st.lists(values(schema["items"], named), max_size=3)
    if kind == "record":
        fields = {field["name"]: values(field["type"], named) for field in schema["fields"]}
        named[schema["name"]] = st.fixed_dictionaries(fields)
        return named[schema["name"]]
    return values(kind, named)


def fastavro_bytes(name: str, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(load_current(name)), record)
    return out.getvalue()


@pytest.mark.parametrize("name", RECORDS)
def test_every_published_schema_compiles(name: str) -> None:
    """The codec's own records are all within the compiled subset (else they silently stay slow)."""
    compile_writer(load_current(name))


@pytest.mark.parametrize("name", RECORDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_writer_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    """Any record that fits a schema is written byte for byte as fastavro writes it."""
    record = data.draw(values(load_current(name)))
    out = bytearray()
    compile_writer(load_current(name))(record, out)
    assert bytes(out) == fastavro_bytes(name, record)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pipe_length_m", True),  # a union of null and double: bool is no number to fastavro
        ("pipe_length_m", "12"),
        ("pipe_length_m", 2**70),  # an int beyond 64 bits: fastavro writes it as a double
        ("detail", 5),
        ("occurred_at", datetime(2026, 11, 25, 8, 30)),  # noqa: DTZ001 - naive: fastavro's local-time rule
        ("stage", "NOT_A_STAGE"),
        ("stage", 3),
        ("task", {"task_id": "t-1"}),  # a nested record missing its fields
    ],
)
def test_a_record_the_compiled_writer_refuses_gets_fastavros_verdict(field: str, value: Any) -> None:
    """What the compiled writer does not take is written, or refused with its error, exactly as fastavro does."""
    record = status(**{field: value})
    codec = Codec.default()
    try:
        expected: bytes | str = fastavro_bytes("TaskStatus", record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        expected = f"record does not fit ubridge.v1.TaskStatus: {exc}"
    with pytest.raises((TypeError, KeyError)):
        compile_writer(load_current("TaskStatus"))(record, bytearray())
    if isinstance(expected, bytes):
        assert codec.encode("TaskStatus", record)[10:] == expected
    else:
        with pytest.raises(DataError) as raised:
            codec.encode("TaskStatus", record)
        assert raised.value.reason == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trigger_stage", True),  # a union of null and int: fastavro takes a bool for an int
        ("trigger_stage", 2**31),
        ("contact_due", datetime(2026, 11, 25, 8, 30)),  # noqa: DTZ001 - naive
        ("contact_due", "2026-11-25"),
        ("floor_area_m2", 12),  # an int in a union of null and double
        ("kind", "NOT_A_KIND"),
        ("action", None),
    ],
)
def test_a_task_field_written_inline_takes_what_fastavro_takes(field: str, value: Any) -> None:
    """The fields a task's generated writer writes inline: an odd value is written, or refused, as fastavro does."""
    task = {**make_task("yantai-water", 1), field: value}
    try:
        expected: bytes | None = fastavro_bytes("UtilityTask", task)
    except (ValueError, TypeError, KeyError, AttributeError):
        expected = None
    if expected is None:
        with pytest.raises(DataError, match=r"record does not fit ubridge\.v1\.UtilityTask"):
            Codec.default().encode("UtilityTask", task)
    else:
        assert Codec.default().encode("UtilityTask", task)[10:] == expected


def test_numbers_out_of_range_are_left_to_fastavro() -> None:
    """An int beyond 32 bits in an int field is refused by the compiled writer, not wrapped around."""
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
    with pytest.raises(OverflowError):
        compile_writer(schema)({"n": 2**31}, bytearray())


def test_schemas_outside_the_subset_are_named_unsupported() -> None:
    """A union other than ["null", T] or [enum, "string"], or a map, is reported so that the codec keeps fastavro."""
    for schema in (
        {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["string", "null"]}]},
        {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}]},
    ):
        with pytest.raises(Unsupported):
            compile_writer(schema)


def test_timestamps_keep_fastavros_millisecond_truncation() -> None:
    """Microseconds below a millisecond are dropped, before and after the epoch alike."""
    for moment in (NOW, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        record = status(occurred_at=moment, reported_at=moment)
        out = bytearray()
        compile_writer(load_current("TaskStatus"))(record, out)
        assert bytes(out) == fastavro_bytes("TaskStatus", record)


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


def test_a_codec_sent_to_a_worker_process_compiles_its_writers_again() -> None:
    """A pickled codec (as the normaliser's workers receive it) writes the same bytes, on the compiled path."""
    copy = pickle.loads(pickle.dumps(Codec()))  # noqa: S301 - our own object, as the worker pool sends it
    assert copy.encode("TaskStatus", status()) == Codec.default().encode("TaskStatus", status())
    assert set(copy._compiled_writers) == set(RECORDS)


@pytest.mark.parametrize(("service", "expected"), [("GAS", b"\x00\x02"), ("POWER", b"\x02\x0aPOWER")])
def test_a_configured_service_is_the_enum_branch_when_it_has_a_symbol_else_the_string(
    service: str, expected: bytes
) -> None:
    """[Service, string]: GAS as enum symbol 1 (old readers still read it), POWER as text, both as fastavro does."""
    enum = {"type": "enum", "name": "Service", "symbols": ["WATER", "GAS", "HEAT"]}
    schema = {"type": "record", "name": "R", "fields": [{"name": "service", "type": [enum, "string"]}]}
    out = bytearray()
    compile_writer(schema)({"service": service}, out)
    written = io.BytesIO()
    fastavro.schemaless_writer(written, fastavro.parse_schema(schema), {"service": service})
    assert (bytes(out), written.getvalue()) == (expected, expected)
