"""爱山东 applications: the gateway's JSON → ``ConnectionApplication`` → one APPLICATION task per service.

The 爱山东 gateway sends one form per application (DESIGN §1, §6)::

    {"sqbh": "AS202611250001", "sqlx": "报装", "fwlx": ["供水", "供气"], "sqrlx": "个人", "sqrxm": "张伟",
     "sfzhm": "370602199001011234", "lxdh": "13912345678", "xmdm": "2026-370602-47-01-000123",
     "xzqhdm": "370602", "dz": "芝罘区幸福南路18号", "sqsj": "2026-11-25 09:30:00",
     "cl": [{"lx": "图纸", "bh": "T-1", "mc": "总平面图", "url": "https://…", "sha256": "…"}], "bz": null}

One service is 点单式, several 套餐式; either way each selected service becomes one task for the utility that
serves the site. The utility must contact the applicant within 3 working hours of filing (seed 000), so
every task carries ``contact_due``; the calendar never holds a task back: when it cannot compute the due
instant (no holiday schedule for the year), the task goes out with ``contact_due`` null, the flag
``contact_due_unclocked`` and the reason in ``contact_due_note``; when the instant rests on a provisional
year, it is flagged ``contact_due_provisional``.

Materials: the application form is the only one a builder is ever asked for (000 "用户只需提交申请表1份材料";
001 "纳入工程建设项目审批管理系统和线上申请的，报装材料减少到零"; 004 "减少至1份（含）以内" and "四免"), so
``missing_materials`` stays empty. What the utility needs beyond the form is shared by data exchange
(:class:`ApplicationRules` ``shared_materials``): attached when the cited project's documents or the form's
own links hold it, otherwise listed in ``materials_to_fetch`` as ``KIND:SOURCE:REFERENCE`` (``DRAWING:
APPROVAL_SYSTEM:<project code>``; with no project code, ``DRAWING:SITE_SURVEY:``, handed over at the site
survey as 000 allows). A material link that cannot be used is dropped with its field and reason in
``dropped_materials``; the application stands (容缺受理, 000 and 004).

The words the form may use for services and applicant types are data (:class:`Vocabulary`, from
``deploy/config/aishandong.yaml``): 供暖/采暖/供热, 自来水/供水, 燃气/天然气/供气…; 居民, 企业, 个体工商户, 公服, 法人.

Every :class:`~routing.errors.DataError` names the gateway's own field (``sfzhm``, ``cl.0.sha256``) and its
reason never quotes an ID or mobile number in clear.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo

from routing.calendar import CalendarError, WorkingCalendar
from routing.errors import DataError
from routing.identifiers import (
    check_uscc,
    validate_contact_number,
    validate_id_number,
    validate_project_code,
    validate_region_code,
)
from routing.privacy import mask_text
from routing.records import (
    ApplicantType,
    ApplicationKind,
    ConnectionApplication,
    Demand,
    Document,
    ProjectEvent,
    Service,
    UserCategory,
    UtilityTask,
)
from routing.service_areas import ServiceAreaTable
from routing.tasks import task_id
from routing.user_category import CategoryTable, of_applicant, shipped_categories, user_category

SOURCE: Final = "aishandong"
IDENTITY_PREFIX: Final = "aishandong:"
TIME_ZONE: Final = "Asia/Shanghai"
CONTACT_WITHIN_WORKING_HOURS: Final = 3.0
PROJECT_NOT_FOUND_FLAG: Final = "project_not_found"
CONTACT_DUE_UNCLOCKED_FLAG: Final = "contact_due_unclocked"
CONTACT_DUE_PROVISIONAL_FLAG: Final = "contact_due_provisional"

KINDS: Final[Mapping[str, ApplicationKind]] = MappingProxyType(
    {"报装": "CONNECTION", "报修": "REPAIR", "报停": "SUSPENSION", "过户": "TRANSFER"}
)
PERSON_TYPES: Final[frozenset[ApplicantType]] = frozenset({"PERSON"})
# Material kinds: the gateway sends the Chinese name or the code itself.
MATERIAL_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "许可证": "PERMIT",
        "批文": "APPROVAL",
        "图纸": "DRAWING",
        "产权证明": "PROPERTY_CERTIFICATE",
        "不动产权证书": "PROPERTY_CERTIFICATE",
        "身份证": "ID_CARD",
        "营业执照": "BUSINESS_LICENSE",
        "其他": "OTHER",
    }
)
MATERIAL_CODES: Final = frozenset(MATERIAL_KINDS.values())
# Where a shared document comes from. APPROVAL_SYSTEM is asked by project code; without one, the document is
# handed over at the site survey (SITE_SURVEY, 000 "项目图纸暂未实现共享或不方便上传的,应容缺受理,在现场踏勘时提交").
MaterialSource = Literal["APPROVAL_SYSTEM", "PROPERTY_REGISTRY", "MARKET_REGULATOR"]
SITE_SURVEY: Final = "SITE_SURVEY"
APPROVAL_SYSTEM: Final = "APPROVAL_SYSTEM"


@dataclass(frozen=True)
class Vocabulary:
    """The words the form may use: ``fwlx`` values → service, ``sqrlx`` values → applicant type."""

    service_names: Mapping[str, Service]
    applicant_types: Mapping[str, ApplicantType]
    categories: CategoryTable = field(default_factory=shipped_categories)


@dataclass(frozen=True)
class ApplicationRules:
    """What ``deploy/config/aishandong.yaml`` says (validated by ``connectors.aishandong.settings``).

    Attributes:
        vocabulary: The form's words.
        shared_materials: Application kind → material kind → where data sharing gets it from.
    """

    vocabulary: Vocabulary
    shared_materials: Mapping[str, Mapping[str, MaterialSource]] = field(default_factory=dict)


_ZONE: Final = ZoneInfo(TIME_ZONE)
_APPLICATION_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
_FILED_AT: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})")
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # JSON escapes can smuggle these in; UTF-8 cannot carry them
_URL: Final = re.compile(r"https?://\S{1,2000}", re.IGNORECASE)
# No online filing predates the platforms, and Avro and the calendar have their own limits far beyond these; a
# year 0001 or 9999 is a typing error. Years the working calendar does not cover inside this span (before
# 2004) still make tasks, without a contact deadline.
_FILED_YEARS: Final = (1990, 2100)
_MAX_NAME: Final = 100
_MAX_ADDRESS: Final = 500
_MAX_NOTE: Final = 2000
_MAX_MATERIALS: Final = 50
_SHOWN_CHARS: Final = 40
_JSON_KINDS: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (type(None), "null"),
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    (list, "array"),
    (Mapping, "object"),
)

_T = TypeVar("_T")


def parse_application(
    raw: Mapping[str, Any], *, ingested_at: datetime, vocabulary: Vocabulary
) -> ConnectionApplication:
    """Validate one gateway application and return the canonical record.

    A material that cannot be used is left out and named, with its reason, in ``dropped_materials``.

    Args:
        raw: The gateway's JSON object.
        ingested_at: When ubridge received it (timezone-aware).
        vocabulary: The words accepted for services and applicant types.

    Returns:
        The ``ConnectionApplication`` (times in UTC, ``time_zone`` Asia/Shanghai).

    Raises:
        DataError: Naming the gateway field (``sfzhm``, ``fwlx.1``, ``cl.0.lx``…); personal data masked.
        ValueError: If ``ingested_at`` is naive.
    """
    if ingested_at.tzinfo is None:
        msg = "ingested_at must be timezone-aware"
        raise ValueError(msg)
    try:
        return _parse(raw, ingested_at, vocabulary)
    except DataError as exc:
        # The validators never quote a number; this is the belt to their braces (names of persons aside).
        raise DataError(exc.field, mask_text(exc.reason)) from None


def _parse(raw: Mapping[str, Any], ingested_at: datetime, vocabulary: Vocabulary) -> ConnectionApplication:
    if not isinstance(raw, Mapping):
        raise DataError("", f"application must be a JSON object, got {_kind(raw)}")
    application_id = _required_str(raw, "sqbh")
    if _APPLICATION_ID.fullmatch(application_id) is None:
        raise DataError("sqbh", f"application id {_shown(application_id)} is not 1-64 letters, digits, - or _")
    kind = _choice(raw, "sqlx", KINDS)
    applicant_type = _choice(raw, "sqrlx", vocabulary.applicant_types)
    name = _required_str(raw, "sqrxm", max_length=_MAX_NAME)
    id_number = _optional_str(raw, "sfzhm")
    uscc = _optional_str(raw, "tyshxydm")
    if applicant_type in PERSON_TYPES and id_number is None:
        raise DataError("sfzhm", "an applicant who is a person (个人, 居民) needs an ID number")
    if applicant_type not in PERSON_TYPES and uscc is None:
        raise DataError("tyshxydm", f"an applicant that is an organisation ({raw.get('sqrlx')}) needs a USCC")
    if id_number is not None:
        id_number = validate_id_number(id_number, "sfzhm")
    if uscc is not None:
        uscc = uscc.strip().upper()
        check_uscc(uscc, "tyshxydm")  # a wrong check character alone still identifies the enterprise
    mobile = validate_contact_number(_required_str(raw, "lxdh"), "lxdh")[0]  # a landline reaches a person too
    project_code = _optional_str(raw, "xmdm")
    if project_code is not None:
        validate_project_code(project_code, "xmdm")
    region = _required_str(raw, "xzqhdm")
    validate_region_code(region, "xzqhdm")
    materials, dropped = _materials(raw.get("cl"))
    return {
        "application_id": application_id,
        "kind": kind,
        "services": _services(raw.get("fwlx"), vocabulary.service_names),
        "applicant_type": applicant_type,
        "applicant_name": name,
        "applicant_id_number": id_number,
        "applicant_uscc": uscc,
        "applicant_mobile": mobile,
        "project_code": project_code,
        "region_code": region,
        "site_address": _required_str(raw, "dz", max_length=_MAX_ADDRESS),
        "materials": materials,
        "note": _optional_str(raw, "bz", max_length=_MAX_NOTE),
        "filed_at": _filed_at(raw.get("sqsj")),
        "ingested_at": ingested_at,
        "time_zone": TIME_ZONE,
        "dropped_materials": dropped,
        "user_category": _category(raw, applicant_type, uscc, vocabulary.categories),
    }


def _category(
    raw: Mapping[str, Any], applicant_type: ApplicantType, uscc: str | None, table: CategoryTable
) -> UserCategory:
    """The form's ``yhlb`` if it fits the applicant's identifier, else what the identifier or the type says."""
    person = applicant_type in PERSON_TYPES
    found = user_category(table, stated=_optional_str(raw, "yhlb"), uscc=uscc, is_person=person, field="yhlb")
    return found if found is not None else of_applicant(applicant_type)


def application_tasks(
    app: ConnectionApplication,
    areas: ServiceAreaTable,
    calendar: WorkingCalendar,
    *,
    now: datetime,
    project: ProjectEvent | None,
    shared_materials: Mapping[str, Mapping[str, MaterialSource]],
) -> list[UtilityTask]:
    """Build one APPLICATION task per selected service, for the utility serving the site.

    Args:
        app: The application.
        areas: The service-area table.
        calendar: The working calendar (``contact_due`` = filing + 3 working hours).
        now: The current time (timezone-aware), recorded as ``created_at``.
        project: The latest event of the project the application cites, if known: its documents, builder and
            figures enrich the tasks.
        shared_materials: Application kind → the material kinds the utility needs → where data sharing gets
            them; those neither the project nor the form holds are listed in ``materials_to_fetch``.

    Returns:
        The tasks, in the order of ``app["services"]``; a service no utility serves is skipped and flagged
        ``unserved_service:<SERVICE>`` on the others.

    Raises:
        DataError: ``xzqhdm`` when no utility serves any selected service at the site.
        ValueError: If ``now`` is naive.
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    region = app["region_code"]
    served: list[tuple[str, Service]] = []
    unserved: list[Service] = []
    for service in app["services"]:
        utility = areas.utility_for(region, service)
        if utility is None:
            unserved.append(service)
        else:
            served.append((utility, service))
    if not served:
        raise DataError("xzqhdm", f"no utility serves region {region} for {', '.join(app['services'])}")
    flags = [f"unserved_service:{service}" for service in unserved]
    if app["project_code"] is not None and project is None:
        flags.append(PROJECT_NOT_FOUND_FLAG)
    documents = _merge_documents(project["documents"] if project is not None else [], app["materials"])
    to_fetch = materials_to_fetch(documents, shared_materials.get(app["kind"], {}), app["project_code"])
    contact_due, note = contact_due_for(app["filed_at"], calendar)
    if note is not None:
        flags.append(CONTACT_DUE_UNCLOCKED_FLAG if contact_due is None else CONTACT_DUE_PROVISIONAL_FLAG)
    identity = IDENTITY_PREFIX + app["application_id"]
    enterprise = app["applicant_type"] not in PERSON_TYPES
    tasks: list[UtilityTask] = []
    for utility, service in served:
        demand = _demand_for(project, service)
        tasks.append(
            {
                "task_id": task_id(identity, utility, service, "APPLICATION"),
                "kind": "APPLICATION",
                "action": "CREATE",
                "utility_id": utility,
                "service": service,
                "demand": demand,
                "project_code": app["project_code"],
                "project_name": project["project_name"] if project is not None else None,
                "region_code": region,
                "site_address": app["site_address"],
                "builder_name": _builder_name(app, project, enterprise=enterprise),
                "builder_uscc": project["builder_uscc"] if project is not None else app["applicant_uscc"],
                "contact_name": app["applicant_name"],
                "contact_mobile": app["applicant_mobile"],
                "project_nature": project["project_nature"] if project is not None else None,
                "floor_area_m2": project["floor_area_m2"] if project is not None else None,
                "land_area_m2": project["land_area_m2"] if project is not None else None,
                "trigger_stage": None,
                "documents": [document.copy() for document in documents],
                "missing_materials": [],
                "application_id": app["application_id"],
                "source": SOURCE,
                "source_event_id": app["application_id"],
                "occurred_at": app["filed_at"],
                "ingested_at": app["ingested_at"],
                "created_at": now,
                "contact_due": contact_due,
                "contact_due_note": note,
                "flags": list(flags),
                "application_filed_at": app["filed_at"],
                "application_kind": app["kind"],
                "permit_granted_at": None,
                "revision": 0,
                "materials_to_fetch": list(to_fetch),
                "dropped_materials": list(app["dropped_materials"]),
                "user_category": app["user_category"],
                "work_order_id": None,
                "answer_due": None,
                "complaint": None,
            }
        )
    return tasks


def awaits_approval_system(tasks: Sequence[UtilityTask]) -> bool:
    """Whether a task still waits for documents the approval system shares (so a later project event helps)."""
    return any(f":{APPROVAL_SYSTEM}:" in wanted for task in tasks for wanted in task["materials_to_fetch"])


def materials_to_fetch(
    documents: Sequence[Document], shared: Mapping[str, MaterialSource], project_code: str | None
) -> list[str]:
    """The shared materials no document covers, as ``KIND:SOURCE:REFERENCE``, in ``shared``'s order.

    The approval system is asked by project code; an application that cites none gets the document at the site
    survey (``KIND:SITE_SURVEY:``). Other registries are asked by what the task already says (site, builder).
    """
    present = {document["kind"] for document in documents}
    wanted: list[str] = []
    for kind, source in shared.items():
        if kind in present:
            continue
        if source == APPROVAL_SYSTEM:
            wanted.append(f"{kind}:{source}:{project_code}" if project_code else f"{kind}:{SITE_SURVEY}:")
        else:
            wanted.append(f"{kind}:{source}:")
    return wanted


def _builder_name(app: ConnectionApplication, project: ProjectEvent | None, *, enterprise: bool) -> str | None:
    if project is not None:
        return project["builder_name"]
    # A person's name is contact data, not a builder; an enterprise applicant is the builder.
    return app["applicant_name"] if enterprise else None


def _demand_for(project: ProjectEvent | None, service: Service) -> Demand | None:
    if project is None:
        return None
    demand = next((d for d in project["demands"] if d["service"] == service), None)
    return None if demand is None else demand.copy()


def contact_due_for(filed_at: datetime, calendar: WorkingCalendar) -> tuple[datetime | None, str | None]:
    """Return the first-contact due instant (filing + 3 working hours) and a note when it is not official.

    ``(None, reason)`` when the calendar cannot compute it; ``(due, note)`` when a provisional year is involved.
    """
    try:
        due = calendar.add_working_hours(filed_at, CONTACT_WITHIN_WORKING_HOURS)
    except CalendarError as exc:
        return None, f"unclocked: {exc}"
    years = calendar.provisional_years(filed_at, due)
    if years:
        listed = ", ".join(map(str, years))
        return due, f"provisional: no State Council holiday notice for {listed} yet; days off from the statutory rules"
    return due, None


def _merge_documents(first: Sequence[Document], second: Sequence[Document]) -> list[Document]:
    merged: list[Document] = []
    for document in [*first, *second]:
        if document not in merged:
            merged.append(document)
    return merged


def _services(value: object, names: Mapping[str, Service]) -> list[Service]:
    if not isinstance(value, list) or not value:
        raise DataError("fwlx", f"fwlx must be a non-empty array of {', '.join(names)}, got {_kind(value)}")
    services: list[Service] = []
    for index, item in enumerate(value):
        service = names.get(item.strip()) if isinstance(item, str) else None
        where = f"fwlx.{index}"
        if service is None:
            raise DataError(where, f"{_shown(item)} is not one of {', '.join(names)}")
        if service in services:
            raise DataError(where, f"{item} selects {service} a second time")
        services.append(service)
    return services


def _materials(value: object) -> tuple[list[Document], list[str]]:
    """The usable materials, and ``"field: reason"`` for each one left out (容缺受理: never the application)."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [f"cl: must be an array of materials, got {_kind(value)}"]
    documents: list[Document] = []
    dropped: list[str] = []
    for index, item in enumerate(value):
        if index >= _MAX_MATERIALS:
            dropped.append(f"cl.{index}: beyond the first {_MAX_MATERIALS} materials")
            continue
        try:
            documents.append(_material(f"cl.{index}", item))
        except DataError as exc:
            dropped.append(f"{exc.field}: {mask_text(exc.reason)}")
    return documents, dropped


def _material(path: str, item: object) -> Document:
    if not isinstance(item, Mapping):
        raise DataError(path, f"material must be an object, got {_kind(item)}")
    given = _required_str(item, "lx", path=f"{path}.lx")
    kind = MATERIAL_KINDS.get(given, given.upper())
    kind_path, url_path, digest_path = f"{path}.lx", f"{path}.url", f"{path}.sha256"
    if kind not in MATERIAL_CODES:
        raise DataError(kind_path, f"{_shown(given)} is not one of {sorted(MATERIAL_KINDS)} or their codes")
    url = _optional_str(item, "url", path=f"{path}.url")
    if url is not None and _URL.fullmatch(url) is None:
        raise DataError(url_path, f"{_shown(url)} is not an http(s) URL")
    digest = _optional_str(item, "sha256", path=f"{path}.sha256")
    if digest is not None and _SHA256.fullmatch(digest) is None:
        raise DataError(digest_path, f"{_shown(digest)} is not 64 hex digits")
    return {
        "kind": kind,
        "number": _optional_str(item, "bh", path=f"{path}.bh"),
        "title": _optional_str(item, "mc", path=f"{path}.mc", max_length=_MAX_NAME * 2) or given,
        "url": url,
        "digest": None if digest is None else f"sha256:{digest.lower()}",
    }


def _filed_at(value: object) -> datetime:
    if not isinstance(value, str):
        raise DataError("sqsj", f"sqsj must be a string 'YYYY-MM-DD HH:MM:SS', got {_kind(value)}")
    match = _FILED_AT.fullmatch(value.strip())
    if match is None:
        raise DataError("sqsj", f"{_shown(value)} is not 'YYYY-MM-DD HH:MM:SS' (Asia/Shanghai)")
    try:
        local = datetime.fromisoformat(f"{match[1]}T{match[2]}")
        filed = local.replace(tzinfo=_ZONE).astimezone(ZoneInfo("UTC"))
    except (ValueError, OverflowError) as exc:
        raise DataError("sqsj", f"{_shown(value)} is not a valid date and time") from exc
    if not _FILED_YEARS[0] <= local.year <= _FILED_YEARS[1]:
        span = f"{_FILED_YEARS[0]}-{_FILED_YEARS[1]}"
        raise DataError("sqsj", f"{_shown(value)} is not a plausible filing time (years {span})")
    return filed


def _choice(raw: Mapping[str, Any], key: str, table: Mapping[str, _T]) -> _T:
    value = raw.get(key)
    chosen = table.get(value) if isinstance(value, str) else None
    if chosen is None:
        raise DataError(key, f"{_shown(value)} is not one of {', '.join(table)}")
    return chosen


def _required_str(raw: Mapping[str, Any], key: str, *, path: str | None = None, max_length: int = 200) -> str:
    value = _optional_str(raw, key, path=path, max_length=max_length)
    if value is None:
        raise DataError(path or key, f"{key} is required")
    return value


def _optional_str(raw: Mapping[str, Any], key: str, *, path: str | None = None, max_length: int = 200) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(path or key, f"{key} must be a string, got {_kind(value)}")
    value = value.strip()
    if not value:
        return None
    if _SURROGATE.search(value) is not None:
        raise DataError(path or key, f"{key} holds a lone surrogate, which is not text")
    if len(value) > max_length:
        raise DataError(path or key, f"{key} has {len(value)} characters, at most {max_length} allowed")
    return value


def _kind(value: object) -> str:
    return next((name for types, name in _JSON_KINDS if isinstance(value, types)), type(value).__name__)


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text) if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]!r}…"
