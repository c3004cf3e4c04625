"""Satisfaction as figures: the hotline's return visits (回访) per month, utility and district, against the targets.

Liaocheng (002) wants satisfaction of at least 99.5% from return visits through the 12345 hotline ("依托 12345
热线等平台…对所服务的市场主体和群众用户定期开展回访…确保今年用户满意度不低于 99.5%"); Zhaoyuan (003) scores each
district's department and each utility "按照一定权重比例，计算…用户满意度分值" and dispatches the figures every month
("每月调度办理进展"). Neither document says which answers count as satisfied nor gives the weights, so both are policy
data (``deploy/config/satisfaction.yaml``) with the reading chosen written next to them.

Everything here is plain data in, plain data out: the hotline connector records the visits, the supervision view,
the monthly report and the metrics present these figures.

Example:
    >>> policy = load_satisfaction_policy(Path("deploy/config/satisfaction.yaml"))
    >>> table = monthly_figures(visits, policy, by="utility")
    >>> table[("2026-11", "yantai-water")].rate
    0.996
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.calendar import SHANGHAI
from routing.yaml_files import read_model

VisitResult = Literal["SATISFIED", "BASICALLY_SATISFIED", "UNSATISFIED", "UNREACHABLE"]
RESULTS: tuple[VisitResult, ...] = ("SATISFIED", "BASICALLY_SATISFIED", "UNSATISFIED", "UNREACHABLE")
GroupBy = Literal["utility", "district", "city"]
Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """The seed a number comes from: the document and its sentence."""

    document: Text
    quote: Text


class Target(_Strict):
    """The lowest acceptable satisfaction rate."""

    rate: Annotated[float, Field(gt=0, le=1)]
    source: Source


class SatisfactionPolicy(_Strict):
    """Which answers count as satisfied, which visits count at all, and the weights of the score."""

    target: Target
    satisfied: Annotated[frozenset[VisitResult], Field(min_length=1)]
    counted: Annotated[frozenset[VisitResult], Field(min_length=1)]
    weights: Mapping[VisitResult, Annotated[float, Field(ge=0, le=100)]]
    score_source: Source
    reading: Text

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.satisfied <= self.counted:
            message = f"satisfied {sorted(self.satisfied - self.counted)} must also be counted"
            raise ValueError(message)
        unweighted = sorted(self.counted - set(self.weights))
        if unweighted:
            message = f"weights: no weight for counted result {unweighted}"
            raise ValueError(message)
        return self


class Visit(NamedTuple):
    """One return visit's answer, where and when it was made."""

    utility_id: str
    region_code: str
    visited_at: datetime
    result: VisitResult


@dataclass(frozen=True)
class Satisfaction:
    """A month's visits for one utility or district: counts per answer, the rate and the weighted score.

    ``rate`` and ``score`` are None when no visit counted (a month without reachable users has no figure,
    which is not the same as 0%).
    """

    counts: Mapping[VisitResult, int]
    counted: int
    rate: float | None
    meets_target: bool | None
    score: float | None


def load_satisfaction_policy(path: Path) -> SatisfactionPolicy:
    """The policy file, validated.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; the message names the file and the bad key.
    """
    return read_model(path, SatisfactionPolicy)


def month_of(moment: datetime) -> str:
    """The month (``YYYY-MM``) of an instant in Asia/Shanghai, where the monthly dispatch counts it."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m")


def group_of(visit: Visit, by: GroupBy) -> str:
    """The utility id, the district's code or the city's code the visit counts for."""
    if by == "utility":
        return visit.utility_id
    if by == "district":
        return visit.region_code
    return visit.region_code[:4] + "00"


def satisfaction(results: Iterable[VisitResult], policy: SatisfactionPolicy) -> Satisfaction:
    """The figures of a set of answers."""
    counts = Counter(results)
    counted = sum(n for result, n in counts.items() if result in policy.counted)
    if not counted:
        return Satisfaction({r: counts[r] for r in RESULTS}, 0, None, None, None)
    rate = sum(n for result, n in counts.items() if result in policy.satisfied) / counted
    score = sum(policy.weights[result] * n for result, n in counts.items() if result in policy.counted) / counted
    return Satisfaction({r: counts[r] for r in RESULTS}, counted, rate, rate >= policy.target.rate, score)


def monthly_figures(
    visits: Iterable[Visit], policy: SatisfactionPolicy, *, by: GroupBy
) -> dict[tuple[str, str], Satisfaction]:
    """Per (month, utility or district or city code): the month's figures, in sorted order."""
    grouped: dict[tuple[str, str], list[VisitResult]] = {}
    for visit in visits:
        grouped.setdefault((month_of(visit.visited_at), group_of(visit, by)), []).append(visit.result)
    return {key: satisfaction(grouped[key], policy) for key in sorted(grouped)}
