"""12345 hotline: the platform's JSON → ``HotlineWorkOrder`` / ``ReturnVisit``; a work order → a COMPLAINT task.

The 12345 government-hotline platform dispatches a work order (工单) per matter, with the deadline for the answer
it sets (限期反馈, 002 "限期反馈"), in its own field names::

    {"sjid": "EV-20261125-000123", "gdbh": "SD12345-20261125-000123", "ywlb": "供水", "sqlb": "投诉",
     "xzqhdm": "370602", "fsdz": "芝罘区幸福南路18号3单元", "sqnr": "家中自来水连续三天水压不足…",
     "ldrxm": "王秀英", "ldrdh": "13912345678", "xmdm": null,
     "pdsj": "2026-11-25 09:30:00", "fkqx": "2026-11-30 17:30:00"}

and, once the order was answered, visits the caller and reports the result (回访)::

    {"sjid": "EV-20261201-000031", "hfbh": "HF-20261201-000031", "gdbh": "SD12345-20261125-000123",
     "hfjg": "基本满意", "hfsj": "2026-12-01 10:12:00", "hfsm": "水压已恢复，希望提前通知停水"}

``sjid`` is the platform's id of the event that carried the record (the dedup key with the source); times are
Asia/Shanghai wall-clock. An anonymous caller has neither ``ldrxm`` nor ``ldrdh``. The platform's service
words (供水, 自来水, 燃气, 天然气, 供热, 暖气 …) are :data:`SERVICE_WORDS`; a matter about anything else is not
ubridge's and is refused, naming the word.

A work order becomes one COMPLAINT task for the utility serving its region and service
(:func:`complaint_task`); its id depends only on the order and the utility, so an order the platform sends
again is the same task. Every :class:`~routing.errors.DataError` names the platform's field, and its reason never
quotes a mobile number in clear.
"""

import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypedDict
from zoneinfo import ZoneInfo

from routing.errors import DataError
from routing.identifiers import validate_contact_number, validate_project_code, validate_region_code
from routing.privacy import mask_text
from routing.records import Service, UtilityTask
from routing.satisfaction import VisitResult
from routing.service_areas import ServiceAreaTable
from routing.tasks import task_id

TIME_ZONE: Final = "Asia/Shanghai"
IDENTITY_PREFIX: Final = "hotline:"
PUSH_SOURCE: Final = "hotline-push"
PULL_SOURCE: Final = "hotline-pull"
# A task names the platform and the order, not the intake or event that carried it: a copy of the order sent again
# (by push and by pull, or under another event id) is then the very same content, a repeat the sink filters.
TASK_SOURCE: Final = "hotline"

# The platform classifies matters by its own words; these are the ones that concern a utility's service. 排水
# (drainage) and 污水 are the sewer authority's, not a supplier's, and are refused like any other word.
SERVICE_WORDS: Final[Mapping[str, Service]] = MappingProxyType(
    {
        "供水": "WATER",
        "自来水": "WATER",
        "用水": "WATER",
        "城市供水": "WATER",
        "水务": "WATER",
        "燃气": "GAS",
        "天然气": "GAS",
        "供气": "GAS",
        "煤气": "GAS",
        "管道燃气": "GAS",
        "供热": "HEAT",
        "供暖": "HEAT",
        "采暖": "HEAT",
        "暖气": "HEAT",
        "集中供热": "HEAT",
        "热力": "HEAT",
        "WATER": "WATER",
        "GAS": "GAS",
        "HEAT": "HEAT",
    }
)
# 诉求类型 as the 12345 platforms of Shandong classify them.
CATEGORIES: Final = frozenset({"投诉", "求助", "咨询", "建议", "举报", "表扬"})
VISIT_RESULTS: Final[Mapping[str, VisitResult]] = MappingProxyType(
    {
        "满意": "SATISFIED",
        "非常满意": "SATISFIED",
        "基本满意": "BASICALLY_SATISFIED",
        "不满意": "UNSATISFIED",
        "未接通": "UNREACHABLE",
        "无法联系": "UNREACHABLE",
        "联系不上": "UNREACHABLE",
        "SATISFIED": "SATISFIED",
        "BASICALLY_SATISFIED": "BASICALLY_SATISFIED",
        "UNSATISFIED": "UNSATISFIED",
        "UNREACHABLE": "UNREACHABLE",
    }
)


class HotlineWorkOrder(TypedDict):
    """ubridge.v1.HotlineWorkOrder."""

    order_id: str
    service: Service
    category: str
    region_code: str
    address: str
    content: str
    caller_name: str | None
    caller_mobile: str | None
    project_code: str | None
    dispatched_at: datetime
    answer_due: datetime
    source: str
    source_event_id: str
    ingested_at: datetime


class ReturnVisit(TypedDict):
    """ubridge.v1.ReturnVisit."""

    order_id: str
    visit_id: str
    result: VisitResult
    visited_at: datetime
    comment: str | None
    source: str
    source_event_id: str
    ingested_at: datetime


_ZONE: Final = ZoneInfo(TIME_ZONE)
_UTC: Final = ZoneInfo("UTC")
_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
_LOCAL_TIME: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# The hotline platforms date from the 2010s; a year outside this span is a typing error, not an old order.
_YEARS: Final = (2000, 2100)
_MAX_NAME: Final = 100
_MAX_ADDRESS: Final = 500
_MAX_CONTENT: Final = 4000
_MAX_COMMENT: Final = 2000
_SHOWN_CHARS: Final = 40
_JSON_KINDS: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (type(None), "null"),
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    (list, "array"),
    (Mapping, "object"),
)


def parse_work_order(raw: Mapping[str, Any], *, ingested_at: datetime, source: str) -> HotlineWorkOrder:
    """Validate one work order of the platform and return the canonical record.

    Args:
        raw: The platform's JSON object (see the module's docstring).
        ingested_at: When ubridge received it (timezone-aware).
        source: The intake that read it (:data:`PUSH_SOURCE` or :data:`PULL_SOURCE`).

    Returns:
        The ``HotlineWorkOrder`` (times in UTC).

    Raises:
        DataError: Naming the platform's field (``ywlb``, ``fkqx``, ``ldrdh``…); mobile numbers masked.
        ValueError: If ``ingested_at`` is naive.
    """
    _aware(ingested_at)
    try:
        return _work_order(_object(raw, "a work order"), ingested_at, source)
    except DataError as exc:
        raise DataError(exc.field, mask_text(exc.reason)) from None


def parse_return_visit(raw: Mapping[str, Any], *, ingested_at: datetime, source: str) -> ReturnVisit:
    """Validate one return visit of the platform and return the canonical record.

    Args:
        raw: The platform's JSON object (see the module's docstring).
        ingested_at: When ubridge received it (timezone-aware).
        source: The intake that read it.

    Returns:
        The ``ReturnVisit`` (times in UTC).

    Raises:
        DataError: Naming the platform's field (``hfjg``, ``hfsj``…).
        ValueError: If ``ingested_at`` is naive.
    """
    _aware(ingested_at)
    try:
        return _return_visit(_object(raw, "a return visit"), ingested_at, source)
    except DataError as exc:
        raise DataError(exc.field, mask_text(exc.reason)) from None


def complaint_task(order: HotlineWorkOrder, areas: ServiceAreaTable, *, now: datetime) -> UtilityTask:
    """The COMPLAINT task of a work order, for the utility serving its region and service.

    Args:
        order: The work order.
        areas: The service-area table.
        now: The current time (timezone-aware), recorded as ``created_at``.

    Returns:
        The task: the order's deadline as ``answer_due``, its content as ``complaint``, the caller as contact.

    Raises:
        DataError: ``region_code`` when no utility serves the order's service there.
        ValueError: If ``now`` is naive.
    """
    _aware(now)
    region, service = order["region_code"], order["service"]
    utility = areas.utility_for(region, service)
    if utility is None:
        raise DataError("region_code", f"no utility serves region {region} for {service}")
    return {
        "task_id": complaint_task_id(order["order_id"], utility, service),
        "kind": "COMPLAINT",
        "action": "CREATE",
        "utility_id": utility,
        "service": service,
        "demand": None,
        "project_code": order["project_code"],
        "project_name": None,
        "region_code": region,
        "site_address": order["address"],
        "builder_name": None,
        "builder_uscc": None,
        "contact_name": order["caller_name"],
        "contact_mobile": order["caller_mobile"],
        "project_nature": None,
        "floor_area_m2": None,
        "land_area_m2": None,
        "trigger_stage": None,
        "documents": [],
        "missing_materials": [],
        "application_id": None,
        "source": TASK_SOURCE,
        "source_event_id": order["order_id"],
        "occurred_at": order["dispatched_at"],
        "ingested_at": order["ingested_at"],
        "created_at": now,
        "contact_due": None,
        "contact_due_note": None,
        "flags": [f"hotline_category:{order['category']}"],
        "application_filed_at": None,
        "application_kind": None,
        "permit_granted_at": None,
        "revision": 0,
        "materials_to_fetch": [],
        "dropped_materials": [],
        "user_category": None,
        "work_order_id": order["order_id"],
        "answer_due": order["answer_due"],
        "complaint": order["content"],
    }


def complaint_task_id(order_id: str, utility_id: str, service: Service) -> str:
    """The id of a work order's task: the same for every copy of the order the platform sends."""
    return task_id(IDENTITY_PREFIX + order_id, utility_id, service, "COMPLAINT")


def service_of(word: str, field: str = "ywlb") -> Service:
    """The service a platform word names (供水, 燃气, 暖气 …; the codes themselves too).

    Raises:
        DataError: The word names no utility service.
    """
    service = SERVICE_WORDS.get(word.strip())
    if service is None:
        raise DataError(field, f"{_shown(word)} is not a utility service; one of {', '.join(SERVICE_WORDS)}")
    return service


def _work_order(raw: Mapping[str, Any], ingested_at: datetime, source: str) -> HotlineWorkOrder:
    order_id = _identifier(raw, "gdbh")
    event_id = _identifier(raw, "sjid")
    service = service_of(_required_str(raw, "ywlb"))
    category = _required_str(raw, "sqlb")
    if category not in CATEGORIES:
        raise DataError("sqlb", f"{_shown(category)} is not one of {', '.join(sorted(CATEGORIES))}")
    region = _required_str(raw, "xzqhdm")
    validate_region_code(region, "xzqhdm")
    name = _optional_str(raw, "ldrxm", max_length=_MAX_NAME)
    number = _optional_str(raw, "ldrdh")
    mobile = None if number is None else validate_contact_number(number, "ldrdh")[0]
    project_code = _optional_str(raw, "xmdm")
    if project_code is not None:
        validate_project_code(project_code, "xmdm")
    dispatched = _local_time(raw, "pdsj")
    due = _local_time(raw, "fkqx")
    if due <= dispatched:
        raise DataError("fkqx", f"the deadline {raw['fkqx']} is not after the dispatch {raw['pdsj']}")
    return {
        "order_id": order_id,
        "service": service,
        "category": category,
        "region_code": region,
        "address": _required_str(raw, "fsdz", max_length=_MAX_ADDRESS),
        "content": _required_str(raw, "sqnr", max_length=_MAX_CONTENT),
        "caller_name": name,
        "caller_mobile": mobile,
        "project_code": project_code,
        "dispatched_at": dispatched,
        "answer_due": due,
        "source": source,
        "source_event_id": event_id,
        "ingested_at": ingested_at,
    }


def _return_visit(raw: Mapping[str, Any], ingested_at: datetime, source: str) -> ReturnVisit:
    result = _required_str(raw, "hfjg")
    chosen = VISIT_RESULTS.get(result)
    if chosen is None:
        raise DataError("hfjg", f"{_shown(result)} is not one of {', '.join(VISIT_RESULTS)}")
    return {
        "order_id": _identifier(raw, "gdbh"),
        "visit_id": _identifier(raw, "hfbh"),
        "result": chosen,
        "visited_at": _local_time(raw, "hfsj"),
        "comment": _optional_str(raw, "hfsm", max_length=_MAX_COMMENT),
        "source": source,
        "source_event_id": _identifier(raw, "sjid"),
        "ingested_at": ingested_at,
    }


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        msg = "times must be timezone-aware"
        raise ValueError(msg)


def _object(raw: object, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DataError("", f"{what} must be a JSON object, got {_kind(raw)}")
    return raw


def _identifier(raw: Mapping[str, Any], key: str) -> str:
    value = _required_str(raw, key)
    if _ID.fullmatch(value) is None:
        raise DataError(key, f"{_shown(value)} is not 1-64 letters, digits, - or _")
    return value


def _local_time(raw: Mapping[str, Any], key: str) -> datetime:
    value = raw.get(key)
    if value is None or value == "":
        raise DataError(key, f"{key} is required")
    if not isinstance(value, str):
        raise DataError(key, f"{key} must be a string 'YYYY-MM-DD HH:MM:SS', got {_kind(value)}")
    match = _LOCAL_TIME.fullmatch(value.strip())
    if match is None:
        raise DataError(key, f"{_shown(value)} is not 'YYYY-MM-DD HH:MM:SS' (Asia/Shanghai)")
    try:
        local = datetime.fromisoformat(f"{match[1]}T{match[2]}")
    except ValueError as exc:
        raise DataError(key, f"{_shown(value)} is not a valid date and time") from exc
    if not _YEARS[0] <= local.year <= _YEARS[1]:
        raise DataError(key, f"{_shown(value)} is not a plausible time (years {_YEARS[0]}-{_YEARS[1]})")
    return local.replace(tzinfo=_ZONE).astimezone(_UTC)


def _required_str(raw: Mapping[str, Any], key: str, *, max_length: int = 200) -> str:
    value = _optional_str(raw, key, max_length=max_length)
    if value is None:
        raise DataError(key, f"{key} is required")
    return value


def _optional_str(raw: Mapping[str, Any], key: str, *, max_length: int = 200) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(key, f"{key} must be a string, got {_kind(value)}")
    value = value.strip()
    if not value:
        return None
    if _SURROGATE.search(value) is not None:
        raise DataError(key, f"{key} holds a lone surrogate, which is not text")
    if len(value) > max_length:
        raise DataError(key, f"{key} has {len(value)} characters, at most {max_length} allowed")
    return value


def _kind(value: object) -> str:
    return next((name for types, name in _JSON_KINDS if isinstance(value, types)), type(value).__name__)


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}…"
