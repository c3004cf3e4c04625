"""External-works permits a utility files through ubridge (seeds 001, 002, 004), on plain data.

001: "将水气报装工程涉及规划、道路挖掘（占用）、砍伐树木、占用绿地等行政审批的，由供水、燃气经营企业负责申办，办理部门
并联审批、容缺受理，3个工作日内办结；150米以下的管线工程建设项目及其附属设施，实行规划许可豁免…实行告知承诺备案制".

* :func:`parse_application` — the utility's JSON → a :class:`PermitApplication` (a :class:`DataError` names the
  bad field); its id is a digest of the utility and its own number, so a resent application is the same one;
* :func:`filings` — one filing per permit kind, each with its department, all at once (并联); the planning permit
  of a pipe below the region's threshold becomes a 告知承诺 record instead of a submission;
* :func:`advance` — the department's next state for a permit, refused when it would go backwards or leave a
  decision;
* :func:`decision_due` — the department's deadline in working days from the submission, the time the permit
  waited for the utility's 补正 material left out (:class:`routing.sla.RuleClock` with excluded spans);
* :func:`overdue` — whether a permit still undecided is past it.

The rules are data: ``deploy/config/permits.yaml`` (:func:`load_policy`).
"""

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.sla import ExcludedSpan, RuleClock
from routing.yaml_files import read_model

PermitKind = Literal["PLANNING", "ROAD_EXCAVATION", "ROAD_OCCUPATION", "TREE_FELLING", "GREEN_SPACE"]
PermitState = Literal["SUBMITTED", "ACCEPTED", "MORE_REQUIRED", "GRANTED", "REFUSED", "COMMITTED"]
KINDS: Final[tuple[PermitKind, ...]] = get_args(PermitKind)
DECIDED: Final[frozenset[PermitState]] = frozenset({"GRANTED", "REFUSED", "COMMITTED"})
# From a state, where a department may take a permit next (a repeat of the same state is a no-op, not a move).
_NEXT: Final[Mapping[PermitState, frozenset[PermitState]]] = {
    "SUBMITTED": frozenset({"ACCEPTED", "MORE_REQUIRED", "GRANTED", "REFUSED"}),
    "ACCEPTED": frozenset({"MORE_REQUIRED", "GRANTED", "REFUSED"}),
    "MORE_REQUIRED": frozenset({"ACCEPTED", "GRANTED", "REFUSED"}),
    "GRANTED": frozenset(),
    "REFUSED": frozenset(),
    "COMMITTED": frozenset(),
}
_FIELDS: Final = frozenset(
    {"application_no", "task_id", "project_code", "region_code", "kinds", "pipe_length_m", "route", "filed_at"}
)
_MAX_PIPE_M: Final = 100_000.0
_MAX_TEXT: Final = 500
_ID_LENGTH: Final = 32
Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Department(_Strict):
    """The department deciding one kind of permit: its code at the approval system, and its name."""

    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: Text


class Source(_Strict):
    """The seed a rule comes from, and its words."""

    document: Text
    quote: Text


class Rule(_Strict):
    """A region's permit rule: the departments' limit and its short-pipe 告知承诺 threshold (None: none)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    regions: tuple[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")], ...] = Field(min_length=1)
    decision_working_days: Annotated[float, Field(gt=0, le=365)]
    planning_exempt_below_metres: Annotated[float, Field(gt=0)] | None
    source: Source


class PermitPolicy(_Strict):
    """deploy/config/permits.yaml: a department for every kind, and the regions' rules."""

    departments: dict[PermitKind, Department]
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> "PermitPolicy":
        missing = [kind for kind in KINDS if kind not in self.departments]
        if missing:
            message = f"departments: no department for {', '.join(missing)}"
            raise ValueError(message)
        ids = [rule.id for rule in self.rules]
        if len(ids) != len(set(ids)):
            message = "rules: ids must be unique"
            raise ValueError(message)
        return self

    def rule_named(self, rule_id: str | None) -> Rule | None:
        """The rule with this id; None for None or an id the file no longer has."""
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def rule_for(self, region_code: str) -> Rule | None:
        """The first rule whose regions prefix ``region_code``; None when none does."""
        return next((rule for rule in self.rules if region_code.startswith(rule.regions)), None)


def load_policy(path: Path) -> PermitPolicy:
    """Read and validate the permit policy; a :class:`routing.errors.ConfigError` names the bad key."""
    return read_model(path, PermitPolicy)


class PermitApplication(TypedDict):
    """ubridge.v1.PermitApplication."""

    application_id: str
    application_no: str
    utility_id: str
    task_id: str
    project_code: str | None
    region_code: str
    kinds: list[PermitKind]
    pipe_length_m: float
    route: str
    commitment_notice: bool
    rule_id: str | None
    filed_at: datetime
    source: str
    ingested_at: datetime


class PermitStatus(TypedDict):
    """ubridge.v1.PermitStatus."""

    permit_id: str
    application_id: str
    utility_id: str
    task_id: str
    project_code: str | None
    kind: PermitKind
    department: str
    state: PermitState
    reason: str | None
    reference: str | None
    rule_id: str | None
    due_at: datetime | None
    occurred_at: datetime
    reported_at: datetime
    working_hours: float | None


@dataclass(frozen=True)
class Filing:
    """One permit of an application as it is filed: submitted to ``department``, or recorded as 告知承诺."""

    permit_id: str
    kind: PermitKind
    department: Department
    commitment: bool


def application_id(utility_id: str, application_no: str) -> str:
    """The id ubridge gives a utility's application: the same for the same utility and number."""
    return hashlib.sha256(f"{utility_id}\x1f{application_no}".encode()).hexdigest()[:_ID_LENGTH]


def permit_id(application: str, kind: PermitKind) -> str:
    """The id of one permit of an application (the approval system's idempotency key)."""
    return f"{application}:{kind}"


def commitment_applies(rule: Rule | None, pipe_length_m: float) -> bool:
    """Whether a pipe of this length files a 告知承诺 record instead of the planning permit under ``rule``."""
    threshold = None if rule is None else rule.planning_exempt_below_metres
    return threshold is not None and pipe_length_m < threshold


def parse_application(
    payload: Mapping[str, Any], *, utility_id: str, policy: PermitPolicy, source: str, now: datetime
) -> PermitApplication:
    """The utility's application, checked field by field.

    Raises:
        DataError: A field is missing, unknown or invalid (``field`` names it).
    """
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise DataError(unknown[0], f"{unknown[0]}: unknown field")
    number = _text(payload, "application_no", 64)
    region = _text(payload, "region_code", 6)
    if not region.isascii() or not region.isdigit() or len(region) != 6:  # noqa: PLR2004 - GB/T 2260
        raise DataError("region_code", "region_code: a 6-digit GB/T 2260 division code")
    length = _length(payload.get("pipe_length_m"))
    rule = policy.rule_for(region)
    return {
        "application_id": application_id(utility_id, number),
        "application_no": number,
        "utility_id": utility_id,
        "task_id": _text(payload, "task_id", 128),
        "project_code": _optional_text(payload, "project_code", 64),
        "region_code": region,
        "kinds": _kinds(payload.get("kinds")),
        "pipe_length_m": length,
        "route": _text(payload, "route", _MAX_TEXT),
        "commitment_notice": commitment_applies(rule, length),
        "rule_id": None if rule is None else rule.id,
        "filed_at": _instant(payload.get("filed_at")),
        "source": source,
        "ingested_at": now.astimezone(UTC),
    }


def filings(application: PermitApplication, policy: PermitPolicy) -> tuple[Filing, ...]:
    """One filing per permit kind asked for, in the order asked; all go out at once (并联审批)."""
    return tuple(
        Filing(
            permit_id(application["application_id"], kind),
            kind,
            policy.departments[kind],
            commitment=kind == "PLANNING" and application["commitment_notice"],
        )
        for kind in application["kinds"]
    )


def advance(current: PermitState | None, new: PermitState) -> bool:
    """Whether ``new`` is a move from ``current`` (False: a repeat, ignored).

    Raises:
        DataError: ``new`` cannot follow ``current`` (a decided permit, or a step backwards).
    """
    if current is None or current == new:
        return current is None
    if new not in _NEXT[current]:
        raise DataError("state", f"state: a {current} permit cannot become {new}")
    return True


def decision_due(
    submitted_at: datetime,
    *,
    rule: Rule | None,
    calendar: WorkingCalendar,
    waits: Sequence[tuple[datetime, datetime | None]] = (),
    now: datetime,
) -> datetime | None:
    """The department's deadline: ``decision_working_days`` after the submission, 补正 waits left out.

    Args:
        submitted_at: When ubridge submitted the permit.
        rule: The region's rule; None: no deadline.
        calendar: Working days and office hours.
        waits: The spans the permit waited for the utility's material (MORE_REQUIRED to its next state), the
            last one open (None) while it still waits.
        now: Where an open wait ends for now.
    """
    if rule is None:
        return None
    clock = _department_clock(submitted_at, rule.id, waits)
    return clock.instant(calendar, rule.decision_working_days * calendar.hours_per_day, now)


def working_hours_taken(
    submitted_at: datetime,
    *,
    calendar: WorkingCalendar,
    waits: Sequence[tuple[datetime, datetime | None]] = (),
    at: datetime,
) -> float:
    """The department's working hours from the submission to ``at``, 补正 waits left out."""
    clock = _department_clock(submitted_at, "permit", waits)
    return round(clock.elapsed(calendar, at).total_seconds() / 3600, 3)


def _department_clock(
    submitted_at: datetime, rule_id: str, waits: Sequence[tuple[datetime, datetime | None]]
) -> RuleClock:
    excluded = tuple(ExcludedSpan(start, end, "补正") for start, end in sorted(waits, key=lambda span: span[0]))
    return RuleClock(rule_id, "permit", submitted_at, None, None, natural=False, excluded=excluded)


def overdue(status: PermitStatus, now: datetime) -> bool:
    """Whether a permit still undecided is past its deadline (a 补正 wait has no deadline running)."""
    due = status["due_at"]
    return due is not None and status["state"] not in DECIDED and status["state"] != "MORE_REQUIRED" and now > due


def _text(payload: Mapping[str, Any], name: str, longest: int) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataError(name, f"{name}: required, a non-empty string")
    if len(value) > longest:
        raise DataError(name, f"{name}: at most {longest} characters")
    return value.strip()


def _optional_text(payload: Mapping[str, Any], name: str, longest: int) -> str | None:
    """The field's text; None when it is absent or null (not an empty string: that is a mistake)."""
    return None if payload.get(name) is None else _text(payload, name, longest)


def _length(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError("pipe_length_m", "pipe_length_m: required, a number of metres")
    length = float(value)
    if not math.isfinite(length) or not 0 < length <= _MAX_PIPE_M:
        raise DataError("pipe_length_m", f"pipe_length_m: must be above 0 and at most {_MAX_PIPE_M:g} metres")
    return length


def _kinds(value: Any) -> list[PermitKind]:
    if not isinstance(value, list) or not value:
        raise DataError("kinds", f"kinds: required, a non-empty list of {', '.join(KINDS)}")
    kinds: list[PermitKind] = []
    for item in value:
        kind = next((known for known in KINDS if known == item), None)
        if kind is None:
            raise DataError("kinds", f"kinds: {str(item)[:40]!r} is not one of {', '.join(KINDS)}")
        if kind in kinds:
            raise DataError("kinds", f"kinds: {kind} is listed twice")
        kinds.append(kind)
    return kinds


def _instant(value: Any) -> datetime:
    if not isinstance(value, str):
        raise DataError("filed_at", "filed_at: required, an ISO 8601 instant with its offset")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DataError("filed_at", f"filed_at: not an ISO 8601 instant: {value[:40]!r}") from exc
    if instant.tzinfo is None:
        raise DataError("filed_at", "filed_at: the instant needs its UTC offset (e.g. +08:00)")
    return instant.astimezone(UTC)
