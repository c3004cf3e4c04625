"""Normalising one event of the 工改 data interface (vendor format ``default``) into a ProjectEvent.

The interface delivers one JSON object per approval-item event, named in pinyin initials like the national
data-sharing tables (DESIGN §4.1): ``xmdm`` project code, ``jsddxzqh`` site region, ``dybzspjdxh`` stage,
``blzt`` handling status, ``blsj`` handling time (Asia/Shanghai), ``xqxx`` utility demands, ``fjxx``
attachments, ``sjyxbs`` 0 for a withdrawn record. Every fault raises :class:`~routing.errors.DataError`
whose ``field`` is the raw path (``xqxx.0.fwlx``) and whose reason names the canonical field.

This runs once per record in a stage with a throughput target, so it reads each key once, compiles its
patterns at import and does no work for absent optional fields.
"""

import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType, UnionType
from typing import Any, Final

from routing.errors import DataError
from routing.identifiers import check_uscc, validate_contact_number, validate_project_code, validate_region_code
from routing.records import Demand, Document, ItemStatus, ProjectEvent, Repair, Service
from routing.repairs import (
    current_region,
    exchange_time,
    labelled_digest,
    material_link,
    number_text,
    repair,
    upper_code,
)
from routing.services import shipped_services

TIME_ZONE: Final = "Asia/Shanghai"
DEFAULT_STATUS_CODES: Final[Mapping[int, ItemStatus]] = MappingProxyType({1: "RECEIVED", 11: "GRANTED", 13: "REFUSED"})

_EVENT_ID_LENGTH: Final = 32
_STAGES: Final = range(1, 6)
_MAX_PIPE_DIAMETER_MM: Final = 10_000
_MAX_SEQ: Final = 2**63
_SHOWN_CHARS: Final = 40
_SHOWN_INT_LIMIT: Final = 10**15
_DOCUMENT_KINDS: Final = frozenset({"PERMIT", "APPROVAL", "DRAWING", "OTHER"})
# JSON vocabulary reads better in an operator's error than Python's type names; bool before int because
# bool is an int.
_JSON_KINDS: Final[tuple[tuple[type | UnionType, str], ...]] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int | float, "number"),
    (str, "string"),
    (list, "array"),
    (Mapping, "object"),
)


def normalise(
    raw: Mapping[str, Any],
    *,
    source: str,
    ingested_at: datetime,
    status_codes: Mapping[int, ItemStatus] | None = None,
) -> ProjectEvent:
    """Map and validate one raw data-interface event.

    Args:
        raw: The event as decoded from JSON.
        source: The connector that read it, e.g. ``"gonggai-interface"``; part of the event id.
        ingested_at: When ubridge first read it (timezone-aware).
        status_codes: ``blzt`` code table; unlisted codes mean IN_PROGRESS. Defaults to
            :data:`DEFAULT_STATUS_CODES`.

    Returns:
        The canonical event.

    Raises:
        DataError: For any missing, mistyped or invalid field; ``field`` is the raw path.
        ValueError: If ``ingested_at`` is naive (a caller's bug, not the record's).
    """
    if ingested_at.tzinfo is None:
        msg = "ingested_at must be timezone-aware"
        raise ValueError(msg)
    if not isinstance(raw, Mapping):
        whole_record = ""
        raise DataError(whole_record, f"event must be a JSON object, got {_kind(raw)}")
    record_id = _record_id(raw)
    repairs: list[Repair] = []
    project_code = _required_str(raw, "xmdm", "project_code")
    validate_project_code(project_code, "xmdm")
    region_code = _region(raw, project_code, repairs)
    builder_uscc = _repaired(repairs, upper_code, _optional_str(raw, "jsdwdm", "builder_uscc"), "builder_uscc")
    mobile = _optional_str(raw, "lxrsjh", "contact_mobile")
    return {
        "event_id": _event_id(source, record_id),
        "source": source,
        "source_record_id": record_id,
        "project_code": project_code,
        "project_name": _required_str(raw, "xmmc", "project_name"),
        "region_code": region_code,
        "site_address": _optional_str(raw, "jsdd", "site_address") or "",
        "builder_name": _required_str(raw, "jsdw", "builder_name"),
        "builder_uscc": builder_uscc,
        "contact_name": _optional_str(raw, "lxr", "contact_name"),
        "contact_mobile": None if mobile is None else _contact_number(mobile, repairs),
        "stage": _stage(raw),
        "item_code": _optional_str(raw, "spsxbm", "item_code"),
        "item_instance_code": _optional_str(raw, "spsxslbm", "item_instance_code"),
        "item_name": _optional_str(raw, "spsxmc", "item_name"),
        "item_status": _item_status(raw, DEFAULT_STATUS_CODES if status_codes is None else status_codes),
        "retraction": _retraction(raw),
        "occurred_at": _occurred_at(raw, repairs),
        "ingested_at": ingested_at,
        "time_zone": TIME_ZONE,
        "project_nature": _optional_str(raw, "jsxz", "project_nature"),
        "floor_area_m2": _optional_number(raw, "jzmj", "floor_area_m2", repairs=repairs),
        "land_area_m2": _optional_number(raw, "ydmj", "land_area_m2", repairs=repairs),
        "investment_10k_cny": _optional_number(raw, "ztze", "investment_10k_cny", repairs=repairs),
        "demands": _demands(raw.get("xqxx"), repairs),
        "documents": _documents(raw.get("fjxx"), repairs),
        "flags": [] if builder_uscc is None else _uscc_flags(builder_uscc),
        "repairs": repairs,
    }


def _repaired(
    repairs: list[Repair], repair: Callable[[str, str], tuple[str, Repair | None]], value: str | None, field: str
) -> str | None:
    if value is None:
        return None
    value, done = repair(value, field)
    if done is not None:
        repairs.append(done)
    return value


def _region(raw: Mapping[str, Any], project_code: str, repairs: list[Repair]) -> str:
    """The site region; a withdrawn code as its successor; missing, the project code's own region."""
    key = "jsddxzqh"
    given = _optional_str(raw, key, "region_code")
    if given is None:
        block = project_code[5:11]
        code, changed = current_region(block, "region_code")
        detail = f"no site region given: the project code's region {block}" + (" (since changed)" if changed else "")
        repairs.append(repair("region_code", "region_from_project_code", detail))
    else:
        code = _repaired(repairs, current_region, given, "region_code") or given
    validate_region_code(code, key)
    return code


def _contact_number(number: str, repairs: list[Repair]) -> str:
    value, landline = validate_contact_number(number, "lxrsjh")
    if landline:
        repairs.append(repair("contact_mobile", "landline", "a landline with its area code, not a mobile"))
    return value


def _event_id(source: str, record_id: str) -> str:
    # The unit separator cannot occur in a source name, so (source, seq) pairs never collide as text.
    return hashlib.sha256(f"{source}\x1f{record_id}".encode()).hexdigest()[:_EVENT_ID_LENGTH]


def _record_id(raw: Mapping[str, Any]) -> str:
    key = "seq"
    seq = raw.get(key)
    if isinstance(seq, int) and not isinstance(seq, bool):
        if not 0 <= seq < _MAX_SEQ:
            raise DataError(key, f"source_record_id {_show(seq)} is not a serial in 0 to 2**63-1")
        return str(seq)
    if isinstance(seq, str) and seq.strip():
        return seq.strip()
    raise DataError(key, f"source_record_id must be an integer or a non-empty string, got {_kind(seq)}")


def _uscc_flags(code: str) -> list[str]:
    try:
        return check_uscc(code, "builder_uscc")
    except DataError as exc:
        key = "jsdwdm"
        raise DataError(key, exc.reason) from exc


def _stage(raw: Mapping[str, Any]) -> int:
    key = "dybzspjdxh"
    stage = _required_int(raw, key, "stage")
    if stage not in _STAGES:
        raise DataError(key, f"stage {_show(stage)} is not one of 1-5")
    return stage


def _item_status(raw: Mapping[str, Any], codes: Mapping[int, ItemStatus]) -> ItemStatus:
    return codes.get(_required_int(raw, "blzt", "item_status"), "IN_PROGRESS")


def _retraction(raw: Mapping[str, Any]) -> bool:
    key = "sjyxbs"
    flag = raw.get(key)
    if flag is None:
        return False
    if isinstance(flag, int) and not isinstance(flag, bool) and flag in (0, 1):
        return flag == 0
    raise DataError(key, f"retraction flag must be 0 (withdrawn) or 1 (valid), got {_show(flag)}")


def _occurred_at(raw: Mapping[str, Any], repairs: list[Repair]) -> datetime:
    key = "blsj"
    text = _required_str(raw, key, "occurred_at")
    try:
        moment, done = exchange_time(text, "occurred_at")
        moment = moment.astimezone(UTC)
    except DataError as exc:
        raise DataError(key, f"occurred_at {exc.reason}") from exc
    except OverflowError as exc:
        raise DataError(key, f"occurred_at {_show(text)} is not a time like 2026-11-25 10:31:00") from exc
    if done is not None:
        repairs.append(done)
    return moment


def _demands(value: object, repairs: list[Repair]) -> list[Demand]:
    if value is None:
        return []
    if not isinstance(value, list):
        key = "xqxx"
        raise DataError(key, f"demands must be a list, got {_kind(value)}")
    demands: list[Demand] = []
    seen: set[Service] = set()
    for i, item in enumerate(value):
        demand = _demand(item, f"xqxx.{i}.", repairs)
        if demand["service"] in seen:
            path = f"xqxx.{i}.fwlx"
            raise DataError(path, f"demands: {demand['service']} is listed twice")
        seen.add(demand["service"])
        demands.append(demand)
    return demands


def _demand(item: object, prefix: str, repairs: list[Repair]) -> Demand:
    if type(item) is not dict and not isinstance(item, Mapping):
        raise DataError(prefix[:-1], f"demand must be an object, got {_kind(item)}")
    name = _required_str(item, "fwlx", "demands.service", prefix)
    service = shipped_services().find(name)
    if service is None:
        path = f"{prefix}fwlx"
        raise DataError(path, f"demands.service {_show(name)} is not {shipped_services().names()}")
    return {
        "service": service,
        "pipe_diameter_mm": _pipe_diameter(item, prefix, repairs),
        "load": _optional_number(item, "yl", "demands.load", prefix, repairs),
        "load_unit": _optional_str(item, "yldw", "demands.load_unit", prefix),
        "heated_area_m2": _optional_number(item, "grmj", "demands.heated_area_m2", prefix, repairs),
    }


def _pipe_diameter(item: Mapping[str, Any], prefix: str, repairs: list[Repair]) -> int | None:
    value = _optional_number(item, "gj_mm", "demands.pipe_diameter_mm", prefix, repairs)
    if value is None:
        return None
    if not value.is_integer() or not 0 < value <= _MAX_PIPE_DIAMETER_MM:
        reason = f"demands.pipe_diameter_mm {value:g} is not a whole number of mm in 1-{_MAX_PIPE_DIAMETER_MM}"
        path = f"{prefix}gj_mm"
        raise DataError(path, reason)
    return int(value)


def _documents(value: object, repairs: list[Repair]) -> list[Document]:
    if value is None:
        return []
    if not isinstance(value, list):
        key = "fjxx"
        raise DataError(key, f"documents must be a list, got {_kind(value)}")
    return [_document(item, f"fjxx.{i}.", repairs) for i, item in enumerate(value)]


def _document(item: object, prefix: str, repairs: list[Repair]) -> Document:
    if type(item) is not dict and not isinstance(item, Mapping):
        raise DataError(prefix[:-1], f"document must be an object, got {_kind(item)}")
    kind = (_optional_str(item, "wjlx", "documents.kind", prefix) or "OTHER").upper()
    if kind not in _DOCUMENT_KINDS:
        path = f"{prefix}wjlx"
        raise DataError(path, f"documents.kind {_show(kind)} is not one of {sorted(_DOCUMENT_KINDS)}")
    try:
        url = _repaired(repairs, material_link, _optional_str(item, "xzdz", "documents.url", prefix), "documents.url")
    except DataError as exc:
        path = f"{prefix}xzdz"
        raise DataError(path, f"documents.url {exc.reason}") from exc
    try:
        digest = _optional_str(item, "sha256", "documents.digest", prefix)
        digest = _repaired(repairs, labelled_digest, digest, "documents.digest")
    except DataError as exc:
        path = f"{prefix}sha256"
        raise DataError(path, f"documents.digest {exc.reason}") from exc
    return {
        "kind": kind,
        "number": _optional_str(item, "wjbh", "documents.number", prefix),
        "title": _required_str(item, "wjmc", "documents.title", prefix),
        "url": url,
        "digest": digest,
    }


def _optional_str(record: Mapping[str, Any], key: str, canonical: str, prefix: str = "") -> str | None:
    value = record.get(key)
    if type(value) is str:  # the usual case first: this runs ~30 times per record
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    raise DataError(prefix + key, f"{canonical} must be a string, got {_kind(value)}")


def _required_str(record: Mapping[str, Any], key: str, canonical: str, prefix: str = "") -> str:
    value = _optional_str(record, key, canonical, prefix)
    if value is None:
        raise DataError(prefix + key, f"{canonical} is required but missing or empty")
    return value


def _required_int(record: Mapping[str, Any], key: str, canonical: str) -> int:
    value = record.get(key)
    if value is None:
        raise DataError(key, f"{canonical} is required but missing")
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(key, f"{canonical} must be an integer, got {_kind(value)}")
    return value


def _optional_number(
    record: Mapping[str, Any], key: str, canonical: str, prefix: str = "", repairs: list[Repair] | None = None
) -> float | None:
    value = record.get(key)
    if type(value) is float:  # as JSON numbers mostly are; checked as below, without the other branches
        if not math.isfinite(value) or value < 0:
            raise DataError(prefix + key, f"{canonical} {_show(value)} is not a finite non-negative number")
        return value
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        text, done = number_text(value, canonical)
        if done is not None and repairs is not None:
            repairs.append(done)
        try:
            number = float(text)
        except ValueError as exc:
            raise DataError(prefix + key, f"{canonical} {_show(value)} is not a number") from exc
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError as exc:
            raise DataError(prefix + key, f"{canonical} is too large") from exc
    else:
        raise DataError(prefix + key, f"{canonical} must be a number, got {_kind(value)}")
    if not math.isfinite(number) or number < 0:
        raise DataError(prefix + key, f"{canonical} {_show(value)} is not a finite non-negative number")
    return number


def _show(value: object) -> str:
    # Echo a bad value so the operator can find it, but never a huge one: reasons travel in log lines and
    # dead-letter headers (and str() of an int beyond 4300 digits even raises).
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARS else f"{value[:_SHOWN_CHARS]!r}…"
    if isinstance(value, float) or (
        isinstance(value, int) and not isinstance(value, bool) and abs(value) < _SHOWN_INT_LIMIT
    ):
        return repr(value)
    return _kind(value)


def _kind(value: object) -> str:
    for python_type, json_name in _JSON_KINDS:
        if isinstance(value, python_type):
            return json_name
    return type(value).__name__
