"""Supervision figures: how each city, district and utility is doing against the SLA rules (issue 16, item 4).

Pure functions over plain data: ledger entries and their timelines (:func:`routing.ledger.timeline`) read at one
instant. Per group (all tasks, a city, a district, a utility):

* per rule, the tasks whose rule clock is ``open`` (still running, ``warning`` included), ``met`` (stopped in
  time, or a clock without a limit that is done), ``breached``, or ``ended`` (rejected or cancelled before its
  stop, in time); a rule's own clock is counted, not its steps;
* per stage, the median and 90th percentile of the working hours of the stage's completed spans (a span still
  running or unclocked is left out: its time is not known yet).

Only connection tasks (:data:`CONNECTION_KINDS`) are counted. Complaint figures (12345 work orders, 清零,
satisfaction) are not computed here: :class:`ComplaintFigures` is the slot they fill per group once the
complaint loop provides them, and the pages and the workbook show them when present.

Example:
    >>> facts = [task_facts(entry, timeline(entry, book, calendar, now)) for entry in entries]
    >>> figures = figures_of(facts, now=now)
    >>> figures.by_utility[0].rules[0].breached
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal

from routing.ledger import STAGE_ORDER, Timeline
from routing.records import Service, StageSpan, TaskKind, TaskLedgerEntry
from routing.regions import region_name
from routing.services import shipped_services
from routing.sla import RuleState

Outcome = Literal["open", "met", "breached", "ended", "unjudged"]
Level = Literal["total", "city", "district", "utility", "category"]

CONNECTION_KINDS: Final[frozenset[str]] = frozenset(
    {"PRE_INTERVENTION", "CONSTRUCTION_READY", "CONNECT", "APPLICATION"}
)
# 002's ledger by category ("企业用户、个体工商户、居民用户、公服用户"); entries written before the field have none
CATEGORY_LABELS: Final[dict[str, str]] = {
    "ENTERPRISE": "企业用户",
    "INDIVIDUAL_BUSINESS": "个体工商户",
    "RESIDENT": "居民用户",
    "PUBLIC_SERVICE": "公服用户",
}
UNKNOWN_CATEGORY: Final = "UNKNOWN"
_OUTCOMES: Final[dict[RuleState, Outcome]] = {
    "open": "open",
    "warning": "open",
    "not_started": "open",
    "met": "met",
    "done": "met",
    "breached": "breached",
    "rejected": "ended",
    "cancelled": "ended",
}
_TIMED_STAGES: Final = tuple(stage for stage in STAGE_ORDER if stage != "CLOSED")
_P90: Final = 0.9


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule governing a task, as its own clock reads: the outcome and the due instant (None: no limit)."""

    rule_id: str
    outcome: Outcome
    due: datetime | None
    stopped: datetime | None


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the figures need of one task, read at one instant."""

    task_id: str
    utility_id: str
    service: Service
    kind: TaskKind
    region_code: str
    created_at: datetime
    stage: str | None
    closed: bool
    rules: tuple[RuleOutcome, ...]
    stage_hours: tuple[tuple[str, float], ...]  # completed stages only
    user_category: str | None = None

    @property
    def breached(self) -> bool:
        """Whether any rule's clock is breached."""
        return any(rule.outcome == "breached" for rule in self.rules)

    @property
    def overdue(self) -> bool:
        """Still open with a rule's clock running past its due instant (督办)."""
        return not self.closed and any(rule.outcome == "breached" and rule.stopped is None for rule in self.rules)


@dataclass(frozen=True, slots=True)
class RuleCount:
    """Tasks per outcome of one rule."""

    rule_id: str
    open: int = 0
    met: int = 0
    breached: int = 0
    ended: int = 0

    @property
    def judged(self) -> int:
        """Tasks whose clock has an outcome (met or breached)."""
        return self.met + self.breached

    @property
    def met_rate(self) -> float | None:
        """The share met of the tasks judged; None when none is judged yet."""
        return None if self.judged == 0 else self.met / self.judged


@dataclass(frozen=True, slots=True)
class StageTime:
    """The working hours of one stage's completed spans: how many, median and 90th percentile."""

    stage: str
    count: int
    median_h: float
    p90_h: float


@dataclass(frozen=True, slots=True)
class ComplaintFigures:
    """A group's 12345 complaint figures, read from the complaint loop's ledger; None where it has none.

    ``satisfaction`` is the share of return visits satisfied or basically satisfied, ``target`` the seed's 99.5%,
    ``weighted_score`` the 003 score with its configured weights.
    """

    open: int
    overdue: int
    cleared: int
    satisfaction: float | None = None
    target: float | None = None
    weighted_score: float | None = None


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """The figures of one group of tasks."""

    level: Level
    key: str
    label: str
    tasks: int
    closed: int
    breached: int
    rules: tuple[RuleCount, ...]
    stages: tuple[StageTime, ...]
    complaints: ComplaintFigures | None = None

    @property
    def open(self) -> int:
        """Tasks not closed."""
        return self.tasks - self.closed


@dataclass(frozen=True, slots=True)
class Figures:
    """Every group's figures at ``now``."""

    now: datetime
    total: GroupFigures
    by_city: tuple[GroupFigures, ...]
    by_district: tuple[GroupFigures, ...]
    by_utility: tuple[GroupFigures, ...]
    by_category: tuple[GroupFigures, ...] = ()

    @property
    def has_complaints(self) -> bool:
        """Whether any group carries complaint figures (the pages then show their columns)."""
        groups = (self.total, *self.by_city, *self.by_district, *self.by_utility, *self.by_category)
        return any(group.complaints is not None for group in groups)


def is_connection(entry: TaskLedgerEntry) -> bool:
    """Whether the entry is a connection task (complaint tasks are counted by the complaint loop)."""
    return entry["kind"] in CONNECTION_KINDS


def as_of(entry: TaskLedgerEntry, at: datetime) -> TaskLedgerEntry | None:
    """The entry as it stood at ``at``: stages reported later removed; None when the task was created later.

    A month's report read after the month ended must not count what happened in the next month.
    """
    if entry["created_at"] > at:
        return None
    spans: list[StageSpan] = [{**span} for span in entry["stages"] if span["started_at"] <= at]
    last_end = spans[-1]["ended_at"] if spans else None
    if spans and last_end is not None and last_end > at:
        spans[-1] = {**spans[-1], "ended_at": None, "elapsed_working_hours": None}
    cancelled = entry["cancelled_at"] if entry["cancelled_at"] is not None and entry["cancelled_at"] <= at else None
    names = {span["stage"] for span in spans}
    return {
        **entry,
        "stages": spans,
        "stage": spans[-1]["stage"] if spans else None,
        "closed": bool(names & {"CLOSED", "REJECTED"}) or cancelled is not None,
        "cancelled_at": cancelled,
        "emitted": list(entry["emitted"]),
    }


def task_facts(entry: TaskLedgerEntry, view: Timeline) -> TaskFacts:
    """The facts of one task from its entry and its timeline."""
    rules = tuple(
        RuleOutcome(rule.rule_id, _OUTCOMES[rule.rows[0].state], rule.rows[0].due, rule.rows[0].ended)
        if rule.rows
        # no variant covers the task's pipe: the rule names it, but cannot judge it
        else RuleOutcome(rule.rule_id, "unjudged", None, None)
        for rule in view.rules
    )
    hours = tuple(
        (row.name, row.elapsed_working_hours)
        for row in view.stages
        if row.name in _TIMED_STAGES and row.ended is not None and row.elapsed_working_hours is not None
    )
    return TaskFacts(
        task_id=entry["task_id"],
        utility_id=entry["utility_id"],
        service=entry["service"],
        kind=entry["kind"],
        region_code=entry["region_code"],
        created_at=entry["created_at"],
        stage=entry["stage"],
        closed=entry["closed"],
        rules=rules,
        stage_hours=hours,
        user_category=entry.get("user_category"),
    )


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between the closest ranks (numpy's default).

    Raises:
        ValueError: For no values, or ``q`` outside [0, 1].
    """
    if not values:
        msg = "the quantile of no values is undefined"
        raise ValueError(msg)
    if not 0 <= q <= 1:
        msg = f"quantile {q} is outside [0, 1]"
        raise ValueError(msg)
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def city_code(region_code: str) -> str:
    """The prefecture city of a region code (``370602`` → ``370600``)."""
    return f"{region_code[:4]}00"


def region_label(code: str) -> str:
    """The region's name when tabulated, else its code."""
    return region_name(code) or code


def group(level: Level, key: str, label: str, facts: Iterable[TaskFacts]) -> GroupFigures:
    """The figures of one group of tasks."""
    members = list(facts)
    counts: dict[str, dict[Outcome, int]] = {}
    for task in members:
        for rule in task.rules:
            if rule.outcome != "unjudged":
                tally = counts.setdefault(rule.rule_id, {})
                tally[rule.outcome] = tally.get(rule.outcome, 0) + 1
    rules = tuple(
        RuleCount(rule_id, tally.get("open", 0), tally.get("met", 0), tally.get("breached", 0), tally.get("ended", 0))
        for rule_id, tally in sorted(counts.items())
    )
    closed, breached = sum(t.closed for t in members), sum(t.breached for t in members)
    return GroupFigures(level, key, label, len(members), closed, breached, rules, _stage_times(members))


def _category_label(key: str) -> str:
    return CATEGORY_LABELS.get(key, "未登记类别")


def figures_of(facts: Iterable[TaskFacts], *, now: datetime) -> Figures:
    """Every group's figures: all tasks, per city, per district, per utility (each sorted by key)."""
    tasks = list(facts)
    return Figures(
        now=now,
        total=group("total", "", "全部", tasks),
        by_city=_grouped("city", tasks, lambda t: city_code(t.region_code), region_label),
        by_district=_grouped("district", tasks, lambda t: t.region_code, _district_label),
        by_utility=_grouped("utility", tasks, lambda t: t.utility_id, _utility_label(tasks)),
        by_category=_grouped("category", tasks, lambda t: t.user_category or UNKNOWN_CATEGORY, _category_label),
    )


def with_complaints(figures: Figures, complaints: dict[tuple[Level, str], ComplaintFigures]) -> Figures:
    """``figures`` with each group's complaint figures (keyed by level and group key) attached.

    A group with complaints and no connection task (a utility only the hotline has brought work) is added with
    zero tasks: the department must see it, not only the total line.
    """

    def attach(level: Level, groups: tuple[GroupFigures, ...], label: Callable[[str], str]) -> tuple[GroupFigures, ...]:
        present = {g.key for g in groups}
        added = [group(level, key, label(key), ()) for lvl, key in complaints if lvl == level and key not in present]
        merged = sorted((*groups, *added), key=lambda g: g.key)
        return tuple(replace(g, complaints=complaints.get((g.level, g.key), g.complaints)) for g in merged)

    total = figures.total
    return replace(
        figures,
        total=replace(total, complaints=complaints.get((total.level, total.key), total.complaints)),
        by_city=attach("city", figures.by_city, region_label),
        by_district=attach("district", figures.by_district, _district_label),
        by_utility=attach("utility", figures.by_utility, lambda key: key),
        by_category=attach("category", figures.by_category, _category_label),
    )


def _grouped(
    level: Level, tasks: list[TaskFacts], key: Callable[[TaskFacts], str], label: Callable[[str], str]
) -> tuple[GroupFigures, ...]:
    buckets: dict[str, list[TaskFacts]] = {}
    for task in tasks:
        buckets.setdefault(key(task), []).append(task)
    return tuple(group(level, k, label(k), members) for k, members in sorted(buckets.items()))


def _district_label(code: str) -> str:
    city = city_code(code)
    if city == code:
        return region_label(code)
    return f"{region_label(city)} {region_label(code)}"


def _utility_label(tasks: list[TaskFacts]) -> Callable[[str], str]:
    services: dict[str, set[str]] = {}
    for task in tasks:
        services.setdefault(task.utility_id, set()).add(task.service)

    def label(utility_id: str) -> str:
        table = shipped_services()
        kinds = "/".join(table.name(s) for s in table.codes if s in services.get(utility_id, ()))
        return f"{utility_id}（{kinds}）"

    return label


def _stage_times(tasks: list[TaskFacts]) -> tuple[StageTime, ...]:
    hours: dict[str, list[float]] = {}
    for task in tasks:
        for stage, value in task.stage_hours:
            hours.setdefault(stage, []).append(value)
    return tuple(
        StageTime(stage, len(hours[stage]), quantile(hours[stage], 0.5), quantile(hours[stage], _P90))
        for stage in _TIMED_STAGES
        if stage in hours
    )
