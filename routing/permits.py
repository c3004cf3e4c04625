"""External-works permits a utility files for its pipe (issue 18 item 1), on plain data: which, where, how long.

Seed 001: "将水气报装工程涉及规划、道路挖掘（占用）、砍伐树木、占用绿地等行政审批的，由供水、燃气经营企业负责申办，办理
部门并联审批、容缺受理，3个工作日内办结；150米以下的管线工程建设项目及其附属设施，实行规划许可豁免…实行告知承诺备案制".
A utility asks for the permits its route needs; :func:`plan_filings` says, by the region's policy
(``deploy/config/permits.yaml``, each rule with its source), what each becomes: an application to the department
that grants it, a 告知承诺 record instead (a commitment filed, no approval awaited), or nothing (exempt, 零审批).
The applications go to every department at once (并联), each due :attr:`RegionPermits.limit_working_days` working
days after it was filed (:func:`department_due`). Where the region's policy says the departments' time is not the
utility's (004: "不含工程设计、施工和专营企业不可控的时间"), :func:`excluded_working_hours` is the working time
during which at least one permit was pending, to be left out of the utility's own limit.

Example:
    >>> policy = load_permit_policy(Path("deploy/config/permits.yaml"))
    >>> plan_filings(PermitRequest(("PLANNING", "ROAD_EXCAVATION"), 120.0, "370602"), policy)
    [Filing(kind='PLANNING', how='COMMITMENT', ...), Filing(kind='ROAD_EXCAVATION', how='APPLICATION', ...)]
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.yaml_files import read_model

PermitKind = Literal["PLANNING", "ROAD_EXCAVATION", "ROAD_OCCUPATION", "TREE_FELLING", "GREEN_SPACE"]
FilingHow = Literal["APPLICATION", "COMMITMENT", "EXEMPT"]
PERMIT_KINDS: tuple[PermitKind, ...] = ("PLANNING", "ROAD_EXCAVATION", "ROAD_OCCUPATION", "TREE_FELLING", "GREEN_SPACE")
Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The seed a rule comes from: the document and its sentence."""

    document: Text
    quote: Text


class Exemption(_Strict):
    """Pipe shorter than ``below_m`` needs no application for ``kinds``: a 告知承诺 record, or nothing at all."""

    below_m: Annotated[float, Field(gt=0)]
    kinds: Annotated[frozenset[PermitKind], Field(min_length=1)]
    filing: Literal["COMMITMENT", "EXEMPT"]
    simple_low_risk_only: bool = Field(
        False, description="Only for 社会投资简易低风险 projects (the approval system's flag on the task)."
    )
    source: Source


class RegionPermits(_Strict):
    """One region's departments, their limit, its exemptions, and whether their time is the utility's."""

    regions: tuple[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")], ...] = Field(
        (), description="Division code prefixes (a province, city or county) it applies to; the longest wins."
    )
    departments: dict[PermitKind, Text] = Field(description="Who grants each kind of permit there.")
    limit_working_days: Annotated[int, Field(ge=1, le=60)]
    limit_source: Source
    exemptions: tuple[Exemption, ...] = ()
    departments_time_excluded: bool = Field(
        description="Whether the time a permit is pending is left out of the utility's own connection limit."
    )
    exclusion_source: Source | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = [kind for kind in PERMIT_KINDS if kind not in self.departments]
        if missing:
            message = f"departments: no department for {', '.join(missing)}"
            raise ValueError(message)
        if self.departments_time_excluded and self.exclusion_source is None:
            message = "exclusion_source: required when departments_time_excluded is true (the seed that says so)"
            raise ValueError(message)
        return self


class PermitPolicy(_Strict):
    """Every region's permit policy; ``default`` where none of them applies."""

    default: RegionPermits
    regions: tuple[RegionPermits, ...] = ()

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.default.regions:
            message = "default.regions: the default applies wherever no region's policy does; it names no regions"
            raise ValueError(message)
        seen: set[str] = set()
        for index, region in enumerate(self.regions):
            if not region.regions:
                message = f"regions[{index}].regions: name at least one division code prefix"
                raise ValueError(message)
            twice = seen.intersection(region.regions)
            if twice:
                message = f"regions[{index}].regions: {', '.join(sorted(twice))} already has a policy"
                raise ValueError(message)
            seen.update(region.regions)
        return self

    def for_region(self, region_code: str) -> RegionPermits:
        """The policy of the longest prefix of ``region_code`` that has one; else the default."""
        best: tuple[int, RegionPermits] = (0, self.default)
        for region in self.regions:
            for prefix in region.regions:
                if region_code.startswith(prefix) and len(prefix) > best[0]:
                    best = (len(prefix), region)
        return best[1]


def load_permit_policy(path: Path) -> PermitPolicy:
    """The policy file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, PermitPolicy)


@dataclass(frozen=True)
class PermitRequest:
    """What a utility asks for: the permits its route needs, the pipe's length, where, and the project's kind."""

    kinds: Sequence[PermitKind]
    pipe_length_m: float
    region_code: str
    simple_low_risk: bool = False


@dataclass(frozen=True)
class Filing:
    """What one permit of a request becomes: an application to its department, a 告知承诺 record, or nothing."""

    kind: PermitKind
    how: FilingHow
    department: str
    source: Source


def plan_filings(request: PermitRequest, policy: PermitPolicy) -> list[Filing]:
    """One filing per permit asked for, in the order asked, by the region's policy.

    Raises:
        DataError: No permit asked for, one asked twice, or a pipe length that is not a positive number of metres.
    """
    if not request.kinds:
        raise DataError("kinds", "name at least one permit (PLANNING, ROAD_EXCAVATION, …)")
    twice = sorted({kind for kind in request.kinds if request.kinds.count(kind) > 1})
    if twice:
        raise DataError("kinds", f"{', '.join(twice)} asked more than once")
    if not request.pipe_length_m > 0:
        raise DataError("pipe_length_m", "must be a positive length in metres")
    region = policy.for_region(request.region_code)
    return [_filing(kind, request, region) for kind in request.kinds]


def _filing(kind: PermitKind, request: PermitRequest, region: RegionPermits) -> Filing:
    department = region.departments[kind]
    for exemption in region.exemptions:
        applies = request.pipe_length_m < exemption.below_m and kind in exemption.kinds
        if applies and (request.simple_low_risk or not exemption.simple_low_risk_only):
            return Filing(kind, exemption.filing, department, exemption.source)
    return Filing(kind, "APPLICATION", department, region.limit_source)


def department_due(filed_at: datetime, region: RegionPermits, calendar: WorkingCalendar) -> datetime:
    """When the department must have decided an application filed at ``filed_at`` (working days of the calendar)."""
    return calendar.add_working_hours(filed_at, region.limit_working_days * calendar.hours_per_day)


def excluded_working_hours(
    pending: Iterable[tuple[datetime, datetime]], region: RegionPermits, calendar: WorkingCalendar
) -> float:
    """Working hours during which at least one permit was pending, where the region leaves them out; else 0.

    Permits run in parallel: overlapping intervals count once.

    Raises:
        DataError: An interval ends before it starts.
    """
    if not region.departments_time_excluded:
        return 0.0
    intervals = sorted(pending)
    for start, end in intervals:
        if end < start:
            raise DataError("decided_at", f"a permit decided at {end.isoformat()} before it was filed")
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in intervals:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += calendar.working_hours_between(*current)
        current = (start, end)
    if current is not None:
        total += calendar.working_hours_between(*current)
    return total
