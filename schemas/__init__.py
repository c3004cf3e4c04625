"""The published Avro contract of ubridge and its one codec.

Every record on a canonical or task topic is Avro *single-object encoded* (DESIGN §9)::

    C3 01 | CRC-64-AVRO of the writer schema's parsing canonical form (8 bytes, little-endian) | body

so any consumer can find the writer schema among the published ones. Decoding resolves that writer schema
(the current one or any earlier version kept under ``history/``) and reads into the current schema.

Example:
    >>> codec = Codec.default()
    >>> raw = codec.encode("ProjectEvent", event)
    >>> name, record = codec.decode(raw)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from routing.errors import DataError
from schemas.compiled import Unsupported, compile_writer
from schemas.compiled import Writer as CompiledWriter

SCHEMA_DIR = Path(__file__).parent
NAMESPACE = "ubridge.v1"
RECORDS = (
    "ProjectEvent",
    "ConnectionApplication",
    "UtilityTask",
    "TaskStatus",
    "SlaEvent",
    "TaskLedgerEntry",
    "HotlineWorkOrder",
    "ReturnVisit",
    "ComplaintLedgerEntry",
    "Escalation",
    "ComplaintClose",
    "Payment",
    "PermitApplication",
    "PermitStatus",
    "SurveyProposal",
    "SurveyReply",
)
MAGIC = b"\xc3\x01"
_HEADER_LEN = 10


def schema_path(name: str) -> Path:
    """Path of the current ``.avsc`` file of a named type."""
    return SCHEMA_DIR / f"{NAMESPACE}.{name}.avsc"


def load_current(name: str) -> dict[str, Any]:
    """The current schema of a record, each named type it references inlined where it first appears."""
    schema: dict[str, Any] = _inline(_read_named(name), set())
    return schema


def _read_named(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return schema


def _inline(node: Any, defined: set[str]) -> Any:
    """Replace references to other ``.avsc`` files by their definition, once; Avro forbids redefinition."""
    if isinstance(node, str):
        short = node.removeprefix(f"{NAMESPACE}.")
        if short in defined or not schema_path(short).exists():
            return node
        return _inline(_read_named(short), defined)
    if isinstance(node, list):
        return [_inline(item, defined) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("record", "enum", "fixed"):
        defined.add(node["name"])
    return {
        key: _inline(value, defined) if key in ("type", "items", "values", "fields") else value
        for key, value in node.items()
    }


def history(name: str) -> list[tuple[int, dict[str, Any]]]:
    """Earlier published versions of a record, oldest first, as ``(version, schema)``."""
    folder = SCHEMA_DIR / "history" / name
    versions = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    return [(int(p.stem[1:]), json.loads(p.read_text(encoding="utf-8"))) for p in versions]


def fingerprint(schema: dict[str, Any]) -> bytes:
    """CRC-64-AVRO fingerprint of a schema's parsing canonical form, in single-object byte order."""
    canonical = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema))
    # fastavro renders the fingerprint's bytes little-endian, the order single-object encoding wants.
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True)
class Writer:
    """A writer schema of record ``name`` (short name), parsed, with its fingerprint as hex."""

    name: str
    parsed: Any
    fingerprint: str

    @classmethod
    def of(cls, name: str, schema: dict[str, Any]) -> Writer:
        """Parse ``schema``, a version of record ``name``."""
        return cls(name, fastavro.parse_schema(schema), fingerprint(schema).hex())


_installed: list[Codec] = []


class Codec:
    """Encodes and decodes ubridge records in Avro single-object encoding.

    The framing is two hooks (:meth:`_prefix`, :meth:`_resolve`) so another wire format (the schema
    registry's, ``connectors.runtime.schema_registry``) is a subclass chosen once at start-up. Records are
    written by a function compiled once per current schema (:mod:`schemas.compiled`); fastavro writes any
    record that function does not take as it is, so its errors are the codec's errors, and reads.

    Thread-safe: it holds only parsed schemas and compiled functions, which nothing mutates.
    """

    content_type = b"avro/binary; encoding=single-object"

    def __init__(self, records: tuple[str, ...] = RECORDS) -> None:
        self._current: dict[str, Any] = {}
        self._header: dict[str, bytes] = {}
        self._writers: dict[bytes, Writer] = {}
        self._compiled_writers: dict[str, CompiledWriter] = {}
        self._sources: dict[str, dict[str, Any]] = {}
        self._current_writers: dict[str, Writer] = {}
        for name in records:
            current = load_current(name)
            parsed = fastavro.parse_schema(current)
            self._current[name] = parsed
            self._header[name] = MAGIC + fingerprint(current)
            self._current_writers[name] = self._writers[fingerprint(current)] = Writer.of(name, current)
            self._sources[name] = current
            for _, old in history(name):
                self._writers.setdefault(fingerprint(old), Writer.of(name, old))
        self._compile()

    def _compile(self) -> None:
        for name, current in self._sources.items():
            try:
                self._compiled_writers[name] = compile_writer(current)
            except Unsupported:
                pass  # fastavro alone, for a schema outside the compiled subset

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process receives: everything but the compiled functions, which do not pickle."""
        return {key: value for key, value in self.__dict__.items() if key != "_compiled_writers"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Compile the writers again in the process that unpickled the codec."""
        self.__dict__.update(state)
        self._compiled_writers = {}
        self._compile()

    @classmethod
    def default(cls) -> Codec:
        """The process-wide codec over every published record: the one installed at start-up, or single-object."""
        if not _installed:
            _installed.append(Codec())
        return _installed[0]

    @staticmethod
    def install(codec: Codec) -> None:
        """Make ``codec`` the process-wide one (start-up chooses the value encoding once)."""
        _installed[:] = [codec]

    def close(self) -> None:
        """Release what the codec holds: nothing here; a registry codec's HTTP connections."""

    def _prefix(self, name: str) -> bytes:
        """The bytes that precede a ``name`` body: ``C3 01`` and the current schema's fingerprint."""
        return self._header[name]

    def _resolve(self, data: bytes) -> tuple[Writer, int]:
        """The writer schema of ``data`` and where its body starts.

        Raises:
            DataError: not single-object encoded, or an unknown fingerprint.
        """
        if len(data) < _HEADER_LEN or data[:2] != MAGIC:
            raise DataError("", "not Avro single-object encoded (missing C3 01 marker)")
        writer = self._writers.get(data[2:_HEADER_LEN])
        if writer is None:
            raise DataError("", f"unknown schema fingerprint {data[2:_HEADER_LEN].hex()}")
        return writer, _HEADER_LEN

    def writer_of(self, data: bytes) -> Writer | None:
        """The writer schema of ``data``, or None if it is not ubridge Avro."""
        try:
            writer, _ = self._resolve(data)
        except DataError:
            return None
        return writer

    def fingerprint_of(self, data: bytes) -> str | None:
        """The CRC-64-AVRO fingerprint (hex, single-object byte order) of the writer schema of ``data``."""
        try:
            writer, _ = self._resolve(data)
        except DataError:
            return None
        return writer.fingerprint

    def encode(self, name: str, record: dict[str, Any] | Any) -> bytes:
        """Single-object encode ``record`` with the current schema of ``name``.

        Raises:
            DataError: the record does not fit the schema (missing field, wrong type).
        """
        fast = self._compiled_writers.get(name)
        if fast is not None:
            written = bytearray(self._prefix(name))
            if _compiled(fast, record, written):
                return bytes(written)
        out = io.BytesIO()
        out.write(self._prefix(name))
        try:
            fastavro.schemaless_writer(out, self._current[name], record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DataError("", f"record does not fit {NAMESPACE}.{name}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Decode a single-object encoded record into the current schema of its type.

        Raises:
            DataError: not single-object encoded, an unknown fingerprint, or a corrupt body.
        """
        writer, start = self._resolve(data)
        # A record written with the current schema needs no resolution; fastavro would find that out by comparing
        # the two parsed schemas, whole, on every record.
        reader = None if writer is self._current_writers.get(writer.name) else self._current[writer.name]
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[start:]), writer.parsed, reader)
        except Exception as exc:  # fastavro raises bare EOFError/ValueError/IndexError on corrupt bodies
            raise DataError("", f"corrupt {NAMESPACE}.{writer.name} body: {exc}") from exc
        if not isinstance(record, dict):
            raise DataError("", f"{NAMESPACE}.{writer.name} body is not a record")
        return writer.name, record

    def schema_of(self, data: bytes) -> str | None:
        """The full name of the schema ``data`` was written with (any version), or None if not ubridge Avro."""
        try:
            writer, _ = self._resolve(data)
        except DataError:
            return None
        return f"{NAMESPACE}.{writer.name}"

    def decode_as(self, name: str, data: bytes) -> dict[str, Any]:
        """Decode and check the record is of the expected type.

        Raises:
            DataError: as :meth:`decode`, or the record is of another type.
        """
        actual, record = self.decode(data)
        if actual != name:
            raise DataError("", f"expected {NAMESPACE}.{name}, got {NAMESPACE}.{actual}")
        return record


def _compiled(writer: CompiledWriter, record: Any, out: bytearray) -> bool:
    """Whether the compiled writer wrote ``record`` (else fastavro writes it, or names what is wrong)."""
    try:
        writer(record, out)
    except Exception:
        return False
    return True
