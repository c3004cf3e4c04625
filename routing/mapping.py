"""Declarative vendor mappings: one vendor's JSON event → the ``default`` 工改 format (DESIGN §4.2).

Vendors of the 工改 data interface differ city by city in field names, nesting, codes, units and time
formats. A mapping, written in YAML, turns a vendor's event into the default format that
:func:`routing.gonggai.normalise` validates, so validation lives in one place and a new vendor needs no code::

    vendor: yantai                      # lowercase name; becomes the ubridge.vendor header
    description: 烟台 工改系统 数据接口 (flat camelCase)
    fields:                             # default-format field -> rule
      xmmc: projectName                 # shorthand: the value at this source path, if present
      xmdm: {path: projectCode, required: true}
      dybzspjdxh: {path: approval.stage, type: int}
      blzt: {path: approval.records[0].status, table: {受理: 1, 办结: 11, 不予许可: 13}}
      blsj: {path: handledAt, time: epoch_ms}
      ydmj: {path: project.landAreaHa, scale: 10000, round: 1}
      sjyxbs: {const: 1}
      xqxx:
        list: demands                   # a source array; each item mapped by `item`
        item:
          fwlx: {path: serviceCode, required: true, table: {WS: 供水, GS: 供气, HS: 供热}}
          gj_mm: pipeDn

Rules:
    * ``path``: dotted names and ``[n]`` indexes into nested objects and arrays (``[-1]`` is the last item);
      names may be Chinese, but cannot contain ``.``, ``[`` or ``]``. A missing key, an index past the end or
      ``null`` anywhere on the way means *absent*: the output field is left out, unless ``required: true``
      (then a :class:`~routing.errors.DataError` naming the vendor path) or ``default: <value>``.
    * Then, in this order: ``table`` (vendor value → default value; a value not listed is a DataError; keys
      compare as text, so ``11`` matches ``"11"``; quote ``"Y"``/``"N"``, which YAML reads as booleans),
      ``time`` (``epoch_ms``, ``epoch_s``, ``iso`` or a pattern such as ``yyyyMMddHHmmss``; read as
      Asia/Shanghai unless it carries an offset; written ``YYYY-MM-DD HH:MM:SS`` Asia/Shanghai),
      ``scale`` (multiply a number; unit conversion) with ``round`` (decimal places), and ``type``
      (``int``, ``number`` or ``string``).
    * ``const``: a fixed value. ``list`` + ``item``: map each object of a source array (rules inside are
      relative to the item); ``required`` as for ``path``.

:func:`apply_mapping` raises only :class:`~routing.errors.DataError`, whose ``field`` is the *vendor's* path
(``attachments[2].名称``), so an operator can fix the sender. :meth:`VendorMapping.source_of` translates a
field named by ``normalise`` (``xqxx.0.fwlx``) back to the vendor's path the same way.
"""

import math
import re
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Final, Literal, Self, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from routing.errors import DataError
from routing.spelling import did_you_mean
from routing.yaml_files import read_yaml

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
ValueType = Literal["int", "number", "string"]
_Parsed = TypeVar("_Parsed")

_ZONE: Final = ZoneInfo("Asia/Shanghai")
_VENDOR: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_STEP: Final = re.compile(r"([^.\[\]]+)((?:\[-?\d{1,9}\])*)")
_INDEX: Final = re.compile(r"\[(-?\d+)\]")
_INTEGER: Final = re.compile(r"[+-]?\d{1,18}")
_PATTERN_TOKENS: Final = {
    "yyyy": "%Y", "YYYY": "%Y", "MM": "%m", "dd": "%d", "DD": "%d", "HH": "%H", "mm": "%M", "ss": "%S"
}  # fmt: skip
_PATTERN_TOKEN: Final = re.compile("|".join(sorted(_PATTERN_TOKENS, key=len, reverse=True)))
_SAMPLE_TIME: Final = datetime(2026, 11, 25, 10, 31, 5)  # noqa: DTZ001 - only checks a format round-trips
_NAMED_TIMES: Final = frozenset({"epoch_ms", "epoch_s", "iso"})
_TYPES: Final = frozenset({"int", "number", "string"})
_MAX_EXACT_INT: Final = 10**18
_SHOWN_CHARS: Final = 40
_JSON_KINDS: Final[tuple[tuple[type | UnionType, str], ...]] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int | float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)
_RULE_KEYS: Final = frozenset({"path", "required", "default", "table", "time", "scale", "round", "type"})
_LIST_KEYS: Final = frozenset({"list", "item", "required"})
_TOP_KEYS: Final = frozenset({"vendor", "description", "fields"})
_ALL_RULE_KEYS: Final = _RULE_KEYS | _LIST_KEYS | {"const"}


@dataclass(frozen=True)
class SourcePath:
    """A parsed source path: its text (as written) and its steps (names and indexes)."""

    text: str
    steps: tuple[str | int, ...]
    prefixes: tuple[str, ...]  # the text up to and including each step, for errors on the way


@dataclass(frozen=True)
class ValueRule:
    """One output field from a source path (or a constant), converted."""

    target: str
    path: SourcePath | None
    const: Json = None
    required: bool = False
    default: Json = None
    has_default: bool = False
    table: abc.Mapping[str, Json] | None = None
    time: str | None = None  # "epoch_ms", "epoch_s", "iso" or a strptime format
    scale: float | None = None
    round_digits: int | None = None
    type: ValueType | None = None


@dataclass(frozen=True)
class ListRule:
    """One output array from a source array, each item mapped by ``item``."""

    target: str
    path: SourcePath
    item: tuple["Rule", ...]
    required: bool = False


Rule = ValueRule | ListRule


@dataclass(frozen=True)
class VendorMapping:
    """A parsed mapping: the vendor's name and one rule per default-format field."""

    vendor: str
    rules: tuple[Rule, ...]
    origin: str
    description: str = ""

    def source_of(self, field: str) -> str:
        """The vendor path behind a default-format field (``xqxx.0.fwlx`` → ``demands[0].serviceCode``).

        Fields the mapping does not take from a path (constants, unmapped) are returned unchanged.
        """
        return _source_of(self.rules, field) or field

    def vendor_error(self, error: DataError) -> DataError:
        """``error`` (raised on the mapped event) with its field renamed to the vendor's path."""
        return DataError(self.source_of(error.field), error.reason)


def load_mapping(path: Path) -> VendorMapping:
    """Read and parse a mapping file.

    Raises:
        ValueError: unreadable file, bad YAML or an invalid mapping, naming the file (and the key).
    """
    try:
        document = read_yaml(path)
    except OSError as exc:
        message = f"{path}: {exc}"
        raise ValueError(message) from exc
    return parse_mapping(document, origin=str(path))


def parse_mapping(document: Any, *, origin: str) -> VendorMapping:
    """Validate a parsed YAML mapping document.

    Raises:
        ValueError: naming ``origin`` and the offending key (``vendor-x.yaml: fields.blzt.table: ...``).
    """
    try:
        model = MappingFile.model_validate(document)
    except ValidationError as exc:
        raise ValueError("\n".join(_describe(item, origin) for item in exc.errors(include_url=False))) from None
    return VendorMapping(vendor=model.vendor, rules=_rules(model.fields), origin=origin, description=model.description)


def apply_mapping(mapping: VendorMapping, vendor_event: Any) -> dict[str, Json]:
    """Map one vendor event (decoded JSON) to the default format.

    Raises:
        DataError: the event is not an object, a source field it requires is absent, a value is not in a
            table or cannot be converted; ``field`` is the vendor's path.
    """
    if not isinstance(vendor_event, dict):
        whole_record = ""
        raise DataError(whole_record, f"event must be a JSON object, got {_kind(vendor_event)}")
    return _apply_rules(mapping.rules, vendor_event, "")


# --- applying ---------------------------------------------------------------------------------------------


def _apply_rules(rules: tuple[Rule, ...], node: dict[str, Any], prefix: str) -> dict[str, Json]:
    out: dict[str, Json] = {}
    for rule in rules:
        if isinstance(rule, ListRule):
            items = _list(rule, node, prefix)
            if items is not None:
                out[rule.target] = items
            continue
        if rule.path is None:
            out[rule.target] = rule.const
            continue
        value = _resolve(rule.path, node, prefix)
        if value is None:
            if rule.has_default:
                out[rule.target] = rule.default
            elif rule.required:
                raise DataError(prefix + rule.path.text, f"required for {rule.target} but missing or null")
            continue
        out[rule.target] = _convert(rule, value, prefix + rule.path.text)
    return out


def _list(rule: ListRule, node: dict[str, Any], prefix: str) -> list[Json] | None:
    where = prefix + rule.path.text
    value = _resolve(rule.path, node, prefix)
    if value is None:
        if rule.required:
            raise DataError(where, f"required for {rule.target} but missing or null")
        return None
    if not isinstance(value, list):
        raise DataError(where, f"{rule.target} must come from an array, got {_kind(value)}")
    items: list[Json] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            at = f"{where}[{i}]"
            raise DataError(at, f"{rule.target} items must be objects, got {_kind(item)}")
        items.append(_apply_rules(rule.item, item, f"{where}[{i}]."))
    return items


def _resolve(path: SourcePath, node: object, prefix: str) -> Any:
    for i, step in enumerate(path.steps):
        if isinstance(step, str):
            if not isinstance(node, dict):
                where = prefix + path.prefixes[i - 1]
                raise DataError(where, f"must be an object to read {step!r}, got {_kind(node)}")
            node = node.get(step)
        else:
            if not isinstance(node, list):
                where = prefix + path.prefixes[i - 1]
                raise DataError(where, f"must be an array to read [{step}], got {_kind(node)}")
            node = node[step] if -len(node) <= step < len(node) else None
        if node is None:
            return None
    return node


def _convert(rule: ValueRule, value: Any, where: str) -> Json:
    if rule.table is not None:
        key = _table_key(value)
        if key is None or key not in rule.table:
            shown = ", ".join(list(rule.table)[:12])
            raise DataError(where, f"{_show(value)} is not a known {rule.target} value (known: {shown})")
        value = rule.table[key]
    if rule.time is not None:
        value = _time(rule.time, value, where)
    if rule.scale is not None:
        value = _scaled(rule, value, where)
    if rule.type is not None:
        value = _typed(rule.type, value, where)
    result: Json = value  # decoded JSON, or what a conversion made of it
    return result


def _table_key(value: object) -> str | None:
    """The text a value is looked up by; None for values no table can list (arrays, objects, huge numbers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_EXACT_INT else None
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _MAX_EXACT_INT:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    return None


def _time(spec: str, value: object, where: str) -> str:
    try:
        if spec in ("epoch_ms", "epoch_s"):
            number = _number(value)
            if number is None:
                raise DataError(where, f"time {_show(value)} is not a number of {spec[6:]} since 1970")
            moment = datetime.fromtimestamp(number / 1000 if spec == "epoch_ms" else number, tz=_ZONE)
        elif not isinstance(value, str):
            raise DataError(where, f"time must be a string, got {_kind(value)}")
        elif spec == "iso":
            moment = datetime.fromisoformat(value.strip())
        else:
            moment = datetime.strptime(value.strip(), spec)  # noqa: DTZ007 - the zone is added just below
    except (ValueError, OverflowError, OSError) as exc:
        raise DataError(where, f"time {_show(value)} does not match {spec}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_ZONE)
    try:
        local = moment.astimezone(_ZONE)
    except (ValueError, OverflowError) as exc:
        raise DataError(where, f"time {_show(value)} is out of range") from exc
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}:{local.second:02d}"


def _scaled(rule: ValueRule, value: object, where: str) -> float:
    number = _number(value)
    if number is None:
        raise DataError(where, f"{rule.target} {_show(value)} is not a number")
    scaled = number * (rule.scale or 1.0)
    if not math.isfinite(scaled):
        raise DataError(where, f"{rule.target} {_show(value)} is out of range")
    return scaled if rule.round_digits is None else round(scaled, rule.round_digits)


def _typed(kind: ValueType, value: object, where: str) -> Json:
    if kind == "string":
        text = _table_key(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        if text is None:
            raise DataError(where, f"{_show(value)} cannot be read as text")
        return text
    if kind == "int":
        return _whole(value, where)
    number = _number(value)
    if number is None:
        raise DataError(where, f"{_show(value)} is not a number")
    return value if isinstance(value, int) and not isinstance(value, bool) else number


def _whole(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise DataError(where, f"{_show(value)} is not a whole number")


def _number(value: object) -> float | None:
    """A finite float from a JSON number or numeric text; None when it is neither."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and value.strip():
            number = float(value)
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _source_of(rules: tuple[Rule, ...], field: str) -> str | None:
    head, _, rest = field.partition(".")
    rule = next((r for r in rules if r.target == head), None)
    if rule is None or rule.path is None:
        return None
    if isinstance(rule, ValueRule):
        return rule.path.text if not rest else None
    if not rest:
        return rule.path.text
    index, _, inner = rest.partition(".")
    if not index.isdigit():
        return None
    item = f"{rule.path.text}[{index}]"
    if not inner:
        return item
    sub = _source_of(rule.item, inner)
    return None if sub is None else f"{item}.{sub}"


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else f"{value[:_SHOWN_CHARS]!r}…"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) or (isinstance(value, int) and abs(value) < _MAX_EXACT_INT):
        return repr(value)
    return _kind(value)


def _kind(value: object) -> str:
    # JSON vocabulary reads better in an operator's error than Python's type names; bool before int.
    for python_type, json_name in _JSON_KINDS:
        if isinstance(value, python_type):
            return json_name
    return type(value).__name__


# --- parsing ----------------------------------------------------------------------------------------------


class _ParseError(Exception):
    def __init__(self, *, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def _parse_path(text: Any, key: str) -> SourcePath:
    if not isinstance(text, str) or not text.strip():
        raise _ParseError(
            key=key, reason="a source path must be non-empty text like 'project.code' or 'items[0].status'"
        )
    steps: list[str | int] = []
    prefixes: list[str] = []
    so_far = ""
    for part in text.strip().split("."):
        match = _STEP.fullmatch(part)
        if match is None:
            raise _ParseError(
                key=key, reason=f"{text!r} is not a path like 'project.code' or 'approval.items[0].status'"
            )
        name, indexes = match.groups()
        so_far = f"{so_far}.{name}" if so_far else name
        steps.append(name)
        prefixes.append(so_far)
        for index in _INDEX.findall(indexes):
            so_far += f"[{index}]"
            steps.append(int(index))
            prefixes.append(so_far)
    return SourcePath(text=text.strip(), steps=tuple(steps), prefixes=tuple(prefixes))


def _parse_table(node: Any, key: str) -> abc.Mapping[str, Json] | None:
    if node is None:
        return None
    if not isinstance(node, dict) or not node:
        raise _ParseError(key=key, reason="must be a non-empty mapping of vendor value to default value")
    table: dict[str, Json] = {}
    for vendor_value, value in node.items():
        text = _table_key(vendor_value)
        if text is None:
            raise _ParseError(key=f"{key}.{vendor_value}", reason="vendor values must be text, numbers or booleans")
        table[text] = _json(value, f"{key}.{vendor_value}")
    return table


def _parse_time(node: Any, key: str) -> str | None:
    if node is None:
        return None
    if not isinstance(node, str) or not node.strip():
        raise _ParseError(key=key, reason="must be epoch_ms, epoch_s, iso or a pattern like yyyyMMddHHmmss")
    if node in _NAMED_TIMES:
        return node
    if "%" in node:
        return _check_format(node, key)  # already a strptime format
    missing = [t for t in ("yyyy", "MM", "dd") if t not in node and t.upper() not in node]
    if missing:
        raise _ParseError(key=key, reason=f"pattern {node!r} lacks {', '.join(missing)}; or use epoch_ms, epoch_s, iso")
    return _check_format(_PATTERN_TOKEN.sub(lambda m: _PATTERN_TOKENS[m.group(0)], node.replace("%", "%%")), key)


def _check_format(spec: str, key: str) -> str:
    try:
        parsed = datetime.strptime(_SAMPLE_TIME.strftime(spec), spec)  # noqa: DTZ007 - naive on purpose
    except ValueError as exc:
        raise _ParseError(key=key, reason=f"{spec!r} is not a usable time format: {exc}") from None
    if parsed.date() != _SAMPLE_TIME.date():
        raise _ParseError(key=key, reason=f"{spec!r} does not carry the whole date")
    return spec


def _parse_scale(node: Any, key: str) -> float | None:
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node) or node == 0:
        raise _ParseError(key=key, reason="must be a non-zero number")
    return float(node)


def _parse_type(node: Any, key: str) -> ValueType | None:
    if node is None:
        return None
    if node not in _TYPES:
        raise _ParseError(key=key, reason=f"must be one of {sorted(_TYPES)}")
    return node  # type: ignore[no-any-return]


def _json(node: Any, key: str) -> Json:
    """``node`` if it is plain JSON data (YAML may also yield dates and other types JSON cannot carry)."""
    if node is None or isinstance(node, bool | int | str):
        return node
    if isinstance(node, float):
        if not math.isfinite(node):
            raise _ParseError(key=key, reason="must be a finite number")
        return node
    if isinstance(node, list):
        return [_json(item, f"{key}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict) and all(isinstance(k, str) for k in node):
        return {k: _json(v, f"{key}.{k}") for k, v in node.items()}
    raise _ParseError(
        key=key, reason=f"must be JSON data (text, number, boolean, null, list, mapping), got {_kind(node)}"
    )


# --- the file's model: structure and keys by pydantic, each value by the parsers above ----------------------


def _checked(parse: Callable[[Any, str], _Parsed]) -> Callable[[Any], _Parsed]:
    """One of the parsers above as a pydantic validator: its reason, at the key pydantic is validating."""

    def validate(value: Any) -> _Parsed:
        try:
            return parse(value, "")
        except _ParseError as exc:
            raise _invalid(exc.reason) from None

    return validate


def _invalid(reason: str) -> PydanticCustomError:
    # The reason goes in as context so that braces in a quoted value are not read as a template.
    return PydanticCustomError("mapping", "{reason}", {"reason": reason})


def _vendor(value: str) -> str:
    if _VENDOR.fullmatch(value) is None:
        reason = "must be a lowercase name like 'yantai' (a-z, 0-9, -)"
        raise _invalid(reason)
    return value


def _field_name(value: str) -> str:
    if not value or "." in value:
        reason = "output field names must be non-empty text without '.'"
        raise _invalid(reason)
    return value


def _rule_map(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        reason = "must be a non-empty mapping of output field to rule"
        raise _invalid(reason)
    return value


_Path = Annotated[SourcePath | None, BeforeValidator(_checked(_parse_path))]
_FieldName = Annotated[str, AfterValidator(_field_name)]
_JsonValue = Annotated[Any, BeforeValidator(_checked(_json))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class RuleSpec(_Strict):
    """One output field's rule: a source path (the shorthand is just the path), a constant, or a list."""

    path: _Path = None
    const: _JsonValue = None
    source_list: _Path = Field(None, alias="list")
    item: Annotated[dict[_FieldName, "RuleSpec"] | None, BeforeValidator(_rule_map)] = None
    required: StrictBool = False
    default: _JsonValue = None
    table: Annotated[dict[str, Any] | None, BeforeValidator(_checked(_parse_table))] = None
    time: Annotated[str | None, BeforeValidator(_checked(_parse_time))] = None
    scale: Annotated[float | None, BeforeValidator(_checked(_parse_scale))] = None
    round_digits: StrictInt | None = Field(None, alias="round", ge=0, le=12)
    value_type: Annotated[ValueType | None, BeforeValidator(_checked(_parse_type))] = Field(None, alias="type")

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        if not isinstance(value, dict):
            reason = "must be a source path or a mapping with 'path', 'const' or 'list'"
            raise _invalid(reason)
        kinds = [key for key in ("path", "const", "list") if key in value]
        if len(kinds) != 1:
            reason = "needs exactly one of 'path', 'const' or 'list'"
            raise _invalid(reason)
        allowed = {"const": {"const"}, "list": _LIST_KEYS, "path": _RULE_KEYS}[kinds[0]]
        misplaced = sorted(str(key) for key in value if key in _ALL_RULE_KEYS and key not in allowed)
        if misplaced:
            reason = f"{misplaced[0]!r} does not apply to a {kinds[0]!r} rule; it takes {sorted(allowed)}"
            raise _invalid(reason)
        # a list's item rules are required: absent, they are reported like empty ones
        return {"item": None, **value} if kinds[0] == "list" else value

    @field_validator("round_digits")
    @classmethod
    def _with_scale(cls, digits: int | None, info: ValidationInfo) -> int | None:
        if digits is not None and info.data.get("scale") is None:
            reason = "only applies together with 'scale'"
            raise _invalid(reason)
        return digits

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.required and "default" in self.model_fields_set:
            reason = "'required' and 'default' contradict each other"
            raise _invalid(reason)
        return self


class MappingFile(_Strict):
    """A vendor mapping file: the vendor's name, a description, and one rule per default-format field."""

    vendor: Annotated[StrictStr, AfterValidator(_vendor)]
    description: StrictStr = ""
    fields: Annotated[dict[_FieldName, RuleSpec], BeforeValidator(_rule_map)]

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            reason = "a mapping file must be a YAML mapping with 'vendor' and 'fields'"
            raise _invalid(reason)
        return value


def _rules(specs: dict[str, RuleSpec]) -> tuple[Rule, ...]:
    return tuple(_rule(target, spec) for target, spec in specs.items())


def _rule(target: str, spec: RuleSpec) -> Rule:
    if spec.source_list is not None:
        return ListRule(target=target, path=spec.source_list, item=_rules(spec.item or {}), required=spec.required)
    if spec.path is None:
        return ValueRule(target=target, path=None, const=spec.const)
    return ValueRule(
        target=target,
        path=spec.path,
        required=spec.required,
        default=spec.default,
        has_default="default" in spec.model_fields_set,
        table=spec.table,
        time=spec.time,
        scale=spec.scale,
        round_digits=spec.round_digits,
        type=spec.value_type,
    )


def _describe(item: Any, origin: str) -> str:
    loc = item["loc"]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    hint = ""
    if item["type"] == "extra_forbidden":
        hint = did_you_mean(loc[-1], _TOP_KEYS if len(loc) == 1 else _ALL_RULE_KEYS)
    return f"{origin}: {key}: {item['msg']}{hint}" if key else f"{origin}: {item['msg']}"
