"""Joint site surveys (联合踏勘, issue 18 item 2), on plain data: when to propose one, the slot, the agreement.

Seed 003: "接入方案设计阶段，由牵头部门组织专营企业上门组团服务、联合踏勘". When one project has open connection
tasks for several utilities in a region whose policy enables it (``deploy/config/surveys.yaml``, off by default),
:func:`joint_groups` finds them and :func:`propose` makes one proposal that every utility receives: the slot (the
policy's working hours, the first working day after the lead time), the other utilities, the lead department.
Each utility accepts or proposes another slot (:func:`apply_reply`): when every one accepted the slot on the
table the survey is AGREED; a counter-proposal puts its slot on the table for all, as the next round; past the
policy's rounds the survey falls back to separate visits (SEPARATE), which the utilities are told.

Example:
    >>> policy = load_survey_policy(Path("deploy/config/surveys.yaml"))
    >>> (group,) = joint_groups(open_tasks, policy)
    >>> survey = propose(group, policy.for_region(group.region_code), calendar, now=now)
    >>> survey = apply_reply(survey, Reply("yantai-water", "ACCEPT", None, at), policy.for_region("370602"))
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.calendar import SHANGHAI, CalendarError, WorkingCalendar
from routing.errors import DataError
from routing.yaml_files import read_model

SurveyState = Literal["PROPOSED", "AGREED", "SEPARATE"]
Answer = Literal["ACCEPT", "COUNTER"]
Text = Annotated[str, Field(min_length=1)]
_MAX_DAYS_AHEAD = 366  # a calendar without a working day in a year is broken


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The seed a rule comes from: the document and its sentence."""

    document: Text
    quote: Text


class RegionSurveys(_Strict):
    """One region's joint surveys: on or off, who leads, when the slot is, how many rounds before giving up."""

    regions: tuple[Annotated[str, Field(pattern=r"^[0-9]{2,6}$")], ...] = Field(
        (), description="Division code prefixes it applies to; the longest wins."
    )
    enabled: bool = False
    lead_department: Text | None = None
    lead_working_days: Annotated[int, Field(ge=0, le=20)] = Field(
        1, description="Working days between the proposal and the slot's day, to let every utility plan the visit."
    )
    start: time = Field(time(9, 30), description="The slot's start, Asia/Shanghai.")
    duration_hours: Annotated[float, Field(gt=0, le=8)] = 2.0
    max_rounds: Annotated[int, Field(ge=1, le=10)] = 3
    source: Source


class SurveyPolicy(_Strict):
    """Every region's survey policy; ``default`` wherever none applies (off, unless the file says otherwise)."""

    default: RegionSurveys
    regions: tuple[RegionSurveys, ...] = ()

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

    def for_region(self, region_code: str) -> RegionSurveys:
        """The policy of the longest prefix of ``region_code`` that has one; else the default."""
        best: tuple[int, RegionSurveys] = (0, self.default)
        for region in self.regions:
            for prefix in region.regions:
                if region_code.startswith(prefix) and len(prefix) > best[0]:
                    best = (len(prefix), region)
        return best[1]


def load_survey_policy(path: Path) -> SurveyPolicy:
    """The policy file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, SurveyPolicy)


@dataclass(frozen=True)
class OpenTask:
    """A connection task not yet done, as the ledger holds it."""

    task_id: str
    utility_id: str
    project_code: str | None
    region_code: str


@dataclass(frozen=True)
class Group:
    """The open tasks of one project, for two utilities or more: one task per utility (its earliest)."""

    project_code: str
    region_code: str
    tasks: Mapping[str, str]  # utility → task


@dataclass(frozen=True)
class Slot:
    """When the survey is: start and end."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Reply:
    """A utility's answer to the slot on the table: accept it, or counter with another."""

    utility_id: str
    answer: Answer
    slot: Slot | None
    at: datetime
    round: int | None = None  # the round answered; None: the one on the table


@dataclass(frozen=True)
class Survey:
    """A joint survey: who, the slot on the table, this round's acceptances, and its state."""

    survey_id: str
    project_code: str
    region_code: str
    tasks: Mapping[str, str]
    lead_department: str | None
    round: int
    slot: Slot
    accepted: frozenset[str]
    state: SurveyState


def joint_groups(tasks: Iterable[OpenTask], policy: SurveyPolicy) -> list[Group]:
    """The projects whose open tasks span two utilities or more, where the region enables joint surveys."""
    by_project: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for task in sorted(tasks, key=lambda t: t.task_id):
        if task.project_code and policy.for_region(task.region_code).enabled:
            by_project[(task.project_code, task.region_code)].setdefault(task.utility_id, task.task_id)
    return [
        Group(project, region, dict(sorted(utilities.items())))
        for (project, region), utilities in sorted(by_project.items())
        if len(utilities) > 1
    ]


def propose(group: Group, region: RegionSurveys, calendar: WorkingCalendar, *, now: datetime) -> Survey:
    """The first proposal: the policy's slot on the first working day after the lead time.

    Raises:
        DataError: The group has fewer than two utilities.
        CalendarError: The calendar does not cover the days ahead.
    """
    if len(group.tasks) < 2:  # noqa: PLR2004 - joint means two or more
        raise DataError("tasks", "a joint survey needs the tasks of two utilities or more")
    day = now.astimezone(SHANGHAI).date()
    for _ in range(region.lead_working_days + 1):
        day = _next_working_day(day, calendar)
    start = datetime.combine(day, region.start, SHANGHAI)
    slot = Slot(start, start + timedelta(hours=region.duration_hours))
    return Survey(
        survey_id=survey_id(group),
        project_code=group.project_code,
        region_code=group.region_code,
        tasks=group.tasks,
        lead_department=region.lead_department,
        round=1,
        slot=slot,
        accepted=frozenset(),
        state="PROPOSED",
    )


def survey_id(group: Group) -> str:
    """The survey's id: the same for the same project and tasks, whichever process proposes it."""
    basis = "|".join([group.project_code, *(f"{u}={t}" for u, t in sorted(group.tasks.items()))])
    return "survey-" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def apply_reply(survey: Survey, reply: Reply, region: RegionSurveys) -> Survey:
    """The survey after one utility's reply.

    An acceptance counts for the slot on the table; when every utility accepted it the survey is AGREED. A
    counter-proposal opens the next round with its slot, which its proposer accepts; past ``max_rounds`` the
    survey is SEPARATE. Replies to a survey no longer PROPOSED, or to an earlier round, change nothing.

    Raises:
        DataError: The reply is from a utility not in the survey, or a counter-proposal without a slot or with
            a slot that ends before it starts.
    """
    if reply.utility_id not in survey.tasks:
        raise DataError("utility_id", f"{reply.utility_id} is not one of the survey's utilities")
    if survey.state != "PROPOSED" or reply.round not in (None, survey.round):
        return survey
    if reply.answer == "ACCEPT":
        accepted = survey.accepted | {reply.utility_id}
        state: SurveyState = "AGREED" if accepted == set(survey.tasks) else "PROPOSED"
        return replace(survey, accepted=accepted, state=state)
    if reply.slot is None:
        raise DataError("slot", "a counter-proposal names the slot it proposes")
    if reply.slot.end <= reply.slot.start:
        raise DataError("slot", "the slot proposed ends before it starts")
    if survey.round >= region.max_rounds:
        return replace(survey, state="SEPARATE")
    return replace(survey, round=survey.round + 1, slot=reply.slot, accepted=frozenset({reply.utility_id}))


def _next_working_day(day: date, calendar: WorkingCalendar) -> date:
    for _ in range(_MAX_DAYS_AHEAD):
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            return day
    message = f"no working day in the year after {day.isoformat()}"
    raise CalendarError(message)


def proposal_record(survey: Survey, *, proposed_by: str | None, at: datetime) -> dict[str, Any]:
    """The survey as an Avro ``SurveyProposal``."""
    return {
        "survey_id": survey.survey_id,
        "project_code": survey.project_code,
        "region_code": survey.region_code,
        "round": survey.round,
        "state": survey.state,
        "slot_start": survey.slot.start,
        "slot_end": survey.slot.end,
        "lead_department": survey.lead_department,
        "participants": [{"utility_id": u, "task_id": t} for u, t in sorted(survey.tasks.items())],
        "accepted": sorted(survey.accepted),
        "proposed_by": proposed_by,
        "occurred_at": at,
    }


def survey_of(record: Mapping[str, Any]) -> Survey:
    """The survey a ``SurveyProposal`` record holds."""
    return Survey(
        survey_id=record["survey_id"],
        project_code=record["project_code"],
        region_code=record["region_code"],
        tasks={p["utility_id"]: p["task_id"] for p in record["participants"]},
        lead_department=record["lead_department"],
        round=record["round"],
        slot=Slot(record["slot_start"], record["slot_end"]),
        accepted=frozenset(record["accepted"]),
        state=record["state"],
    )


def reply_of(record: Mapping[str, Any]) -> Reply:
    """The reply a ``SurveyReply`` record holds."""
    start, end = record["slot_start"], record["slot_end"]
    slot = None if start is None or end is None else Slot(start, end)
    return Reply(record["utility_id"], record["answer"], slot, record["replied_at"], record["round"])


def standing(records: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Survey id → its ``SurveyProposal`` record as it stands last: the latest round, its decision over it."""
    last: dict[str, Mapping[str, Any]] = {}
    for record in records:
        held = last.get(record["survey_id"])
        if held is None or _progress(record) >= _progress(held):
            last[record["survey_id"]] = record
    return last


def _progress(record: Mapping[str, Any]) -> tuple[int, bool]:
    return record["round"], record["state"] != "PROPOSED"
