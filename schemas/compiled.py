"""Avro binary writers compiled once per schema: the codec's fast path for writing ubridge's own records.

fastavro interprets the schema on every record, and to write a union it validates the value against each
branch (a whole nested record, for ``["null", "Demand"]``): that was most of a stage's Avro time. A schema is
turned here, once, into one generated function per record type, which writes the record's fields in a row:
strings, numbers, booleans, enums, times and their ``["null", T]`` unions inline, and arrays, other unions
and nested records by calling their own writers (writing a task took 31-55 µs with fastavro, 16 µs with a
function per field, 13 µs so; a project event 16 and 12.5 µs). They cover the subset ubridge's
schemas use (records, enums, arrays, ``["null", T]`` and ``[enum, "string"]`` unions, string, boolean, int,
long, double, ``timestamp-millis``); :func:`compile_writer` raises :class:`Unsupported` for anything else, and the codec
then keeps fastavro. Reading stays fastavro's: a compiled reader measured no faster than its Cython one.

The output is byte for byte fastavro's. Anything out of the ordinary (a value of an unexpected type, a missing
field, a number out of range, a naive datetime) raises here instead, and the codec redoes that record with
fastavro, so errors and edge cases stay exactly fastavro's.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from struct import Struct
from typing import Any

Writer = Callable[[Any, bytearray], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = Struct("<d")
_INT_RANGE = (-(2**31), 2**31)
_LONG_RANGE = (-(2**63), 2**63)
_SECONDS_PER_DAY = 86400


class Unsupported(Exception):
    """The schema uses something outside the compiled subset."""


def compile_writer(schema: Any) -> Writer:
    """A writer of ``schema`` (as loaded, named types inlined at first use), appending to a bytearray."""
    return _writer(schema, {}, "")


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _write_long(value: int, out: bytearray) -> None:
    if not _LONG_RANGE[0] <= value < _LONG_RANGE[1]:
        raise OverflowError(value)
    _write_varint((value << 1) ^ (value >> 63), out)


def _write_varint(n: int, out: bytearray) -> None:
    """``n`` (zigzagged already, or a length) as a variable-length integer."""
    if n < 0x80:  # noqa: PLR2004 - one byte: most lengths, flags and small numbers
        out.append(n)
        return
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_int(value: int, out: bytearray) -> None:
    if not _INT_RANGE[0] <= value < _INT_RANGE[1]:
        raise OverflowError(value)
    _write_long(value, out)


def _write_string(value: str, out: bytearray) -> None:
    data = value.encode()
    _write_varint(len(data) << 1, out)
    out += data


def _write_double(value: float, out: bytearray) -> None:
    out += _DOUBLE.pack(value)


def _write_boolean(value: bool, out: bytearray) -> None:
    out.append(1 if value else 0)


def _write_timestamp_millis(value: datetime | int, out: bytearray) -> None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime")
        delta = value - _EPOCH
        value = (delta.days * _SECONDS_PER_DAY + delta.seconds) * 1000 + delta.microseconds // 1000
    _write_long(value, out)


_PRIMITIVE_WRITERS: dict[str, Writer] = {
    "string": _write_string,
    "int": _write_int,
    "long": _write_long,
    "double": _write_double,
    "boolean": _write_boolean,
}
# The Python types a value of each kind has, for choosing a union's branch as fastavro would (bool is no number).
_UNION_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "double": (float, int),
    "boolean": (bool,),
    "enum": (str,),
    "array": (list,),
    "record": (dict,),
    "timestamp-millis": (datetime, int),
}


def _kind(schema: Any, named: dict[str, Any], namespace: str) -> str:
    """What a (possibly named) schema is: a primitive, ``enum``, ``array``, ``record`` or a logical type."""
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return schema
        return str(named[_full(schema, namespace)][0])
    if isinstance(schema, dict):
        if isinstance(schema["type"], str) and schema["type"] in _PRIMITIVE_WRITERS:
            return str(schema.get("logicalType") or schema["type"])
        if isinstance(schema["type"], dict | list):
            return _kind(schema["type"], named, namespace)
        return str(schema["type"])
    raise Unsupported(repr(schema))


def _writer(schema: Any, named: dict[str, Any], namespace: str) -> Writer:  # noqa: PLR0911
    if isinstance(schema, str):
        if schema in _PRIMITIVE_WRITERS:
            return _PRIMITIVE_WRITERS[schema]
        full = _full(schema, namespace)
        if full not in named:
            raise Unsupported(schema)
        kind, writer = named[full]
        if kind == "record-pending":
            raise Unsupported(schema)
        return writer  # type: ignore[no-any-return]
    if isinstance(schema, list):
        return _union_writer(schema, named, namespace)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _writer(kind, named, namespace)
    logical = schema.get("logicalType")
    if logical == "timestamp-millis" and kind == "long":
        return _write_timestamp_millis
    if logical is not None:
        raise Unsupported(logical)
    if kind in _PRIMITIVE_WRITERS:
        return _PRIMITIVE_WRITERS[kind]
    if kind == "enum":
        return _enum_writer(schema, named, namespace)
    if kind == "array":
        return _array_writer(_writer(schema["items"], named, namespace))
    if kind == "record":
        return _record_writer(schema, named, namespace)
    raise Unsupported(kind)


def _union_writer(schema: list[Any], named: dict[str, Any], namespace: str) -> Writer:
    if len(schema) != 2:  # noqa: PLR2004 - ubridge's unions are ["null", T] and [enum, "string"]
        raise Unsupported(repr(schema))
    if schema[0] != "null":
        if schema[1] != "string" or _kind(schema[0], named, namespace) != "enum":
            raise Unsupported(repr(schema))
        return _enum_or_string_writer(_writer(schema[0], named, namespace))
    branch = _writer(schema[1], named, namespace)
    kinds = _UNION_TYPES.get(_kind(schema[1], named, namespace))
    if kinds is None:
        raise Unsupported(repr(schema))
    range_ = _INT_RANGE if _kind(schema[1], named, namespace) == "int" else _LONG_RANGE
    if branch is _write_string:
        return _write_optional_string

    def write(value: Any, out: bytearray) -> None:
        if value is None:
            out.append(0)
            return
        if type(value) not in kinds or (type(value) is int and not range_[0] <= value < range_[1]):
            raise TypeError(type(value).__name__)
        out.append(2)
        branch(value, out)

    return write


def _enum_or_string_writer(enum: Writer) -> Writer:
    """``[E, "string"]`` (a configured service): a symbol as the enum branch, other text as the string.

    The enum branch first, as fastavro writes it: the first branch a value is valid for.
    """

    def write(value: Any, out: bytearray) -> None:
        if type(value) is not str:
            raise TypeError(type(value).__name__)
        mark = len(out)
        out.append(0)
        try:
            enum(value, out)  # fails on the symbol lookup, before writing anything
        except KeyError:
            out[mark] = 2
            _write_string(value, out)

    return write


def _write_optional_string(value: str | None, out: bytearray) -> None:
    """``["null", "string"]``, the most common field of all, in one call."""
    if value is None:
        out.append(0)
        return
    if type(value) is not str:
        raise TypeError(type(value).__name__)
    data = value.encode()
    out.append(2)
    size = len(data) << 1
    if size < 0x80:  # noqa: PLR2004 - a one-byte length
        out.append(size)
    else:
        _write_varint(size, out)
    out += data


def _enum_writer(schema: dict[str, Any], named: dict[str, Any], namespace: str) -> Writer:
    index = {symbol: i for i, symbol in enumerate(schema["symbols"])}

    def write(value: str, out: bytearray) -> None:
        _write_varint(index[value] << 1, out)

    full = _full(schema["name"], schema.get("namespace", namespace))
    named[full] = ("enum", write)
    return write


def _array_writer(item: Writer) -> Writer:
    def write(value: list[Any], out: bytearray) -> None:
        if value:
            _write_varint(len(value) << 1, out)
            for element in value:
                item(element, out)
        out.append(0)

    return write


def _record_writer(schema: dict[str, Any], named: dict[str, Any], namespace: str) -> Writer:
    namespace = schema.get("namespace", namespace)
    full = _full(schema["name"], namespace)
    named[full] = ("record-pending", None)
    fields = [(field["name"], field["type"]) for field in schema["fields"]]
    write = _generated_record(full, [(name, _inline_kind(kind), kind) for name, kind in fields], named, namespace)
    named[full] = ("record", write)
    return write


def _inline_kind(schema: Any) -> str | None:
    """How a field's value is written inline in its record's function, or None: by calling its own writer."""
    optional = isinstance(schema, list) and len(schema) == 2 and schema[0] == "null"  # noqa: PLR2004 - ["null", T]
    kind = schema[1] if optional else schema
    if isinstance(kind, dict):
        timestamp = kind.get("type") == "long" and kind.get("logicalType") == "timestamp-millis"
        kind = "timestamp-millis" if timestamp else "enum" if kind.get("type") == "enum" else None
    name = f"optional-{kind}" if optional else kind
    return name if isinstance(name, str) and name in _INLINE else None


# The code writing a value ``v`` inline, per kind, composed from the pieces below; each is the code of the
# matching writer above, so the bytes and the errors (which send the record to fastavro) are theirs.
_LONG_FITS = "-0x8000000000000000 <= v < 0x8000000000000000"
_INT_FITS = "-0x80000000 <= v < 0x80000000"
_VARINT = "if n < 0x80:\n    out.append(n)\nelse:\n    _write_varint(n, out)"  # n, a length or zigzagged
_WRITES = {  # the bytes of ``v``
    "string": f"d = v.encode()\nn = len(d) << 1\n{_VARINT}\nout += d",
    "long": f"n = (v << 1) ^ (v >> 63)\n{_VARINT}",
    "int": f"n = (v << 1) ^ (v >> 63)\n{_VARINT}",
    "boolean": "out.append(1 if v else 0)",
    "double": "out += _DOUBLE.pack(v)",
    "timestamp-millis": "_write_timestamp_millis(v, out)",
    "enum": f"n = SYMBOLS[v] << 1\n{_VARINT}",
}
_CHECKS = {  # what a field of the kind refuses before writing
    "long": f"if not {_LONG_FITS}:\n    raise OverflowError(v)\n",
    "int": f"if not {_INT_FITS}:\n    raise OverflowError(v)\n",
}
_BRANCH_REFUSES = {  # the values that ``["null", T]`` does not write as T, as :func:`_union_writer` decides
    "string": "type(v) is not str",
    "double": f"type(v) is not float and (type(v) is not int or not {_LONG_FITS})",
    "int": f"type(v) is not int or not {_INT_FITS}",
    "timestamp-millis": f"type(v) is not datetime and (type(v) is not int or not {_LONG_FITS})",
}
_INLINE = frozenset({*_WRITES, *(f"optional-{kind}" for kind in _BRANCH_REFUSES)})


def _indented(code: str) -> str:
    return "\n".join(f"    {line}" for line in code.splitlines())


def _inline_code(kind: str) -> str:
    """The statements writing a value ``v`` of an :data:`_INLINE` kind to ``out``."""
    branch = kind.removeprefix("optional-")
    if branch == kind:
        return _CHECKS.get(kind, "") + _WRITES[kind]
    written = f"if {_BRANCH_REFUSES[branch]}:\n    raise TypeError(type(v).__name__)\nout.append(2)\n{_WRITES[branch]}"
    return f"if v is None:\n    out.append(0)\nelse:\n{_indented(written)}"


def _generated_record(
    full: str, fields: list[tuple[str, str | None, Any]], named: dict[str, Any], namespace: str
) -> Writer:
    """One function writing every field of a record in a row: a call per value cost as much as the writing.

    The fields of an :data:`_INLINE` kind are written inline; the others call their own writer.
    """
    scope: dict[str, Any] = {
        "_write_varint": _write_varint,
        "_write_timestamp_millis": _write_timestamp_millis,
        "_DOUBLE": _DOUBLE,
        "datetime": datetime,
    }
    lines = ["def write(value, out):"]
    for number, (name, inline, kind) in enumerate(fields):
        lines.append(f"    v = value[{name!r}]")
        writer = _writer(kind, named, namespace)  # also defines the named types the field declares
        if inline is None:
            scope[f"w{number}"] = writer
            lines.append(f"    w{number}(v, out)")
        else:
            if inline == "enum":
                scope[f"symbols{number}"] = {symbol: i for i, symbol in enumerate(kind["symbols"])}
            lines.append(_indented(_inline_code(inline)).replace("SYMBOLS", f"symbols{number}"))
    if not fields:
        lines.append("    pass")
    exec(compile("\n".join(lines), f"<avro writer {full}>", "exec"), scope)  # noqa: S102 - our own schema's code
    return scope["write"]  # type: ignore[no-any-return]
