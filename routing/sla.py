"""SLA policies as data, and the evaluation of a task's clocks against them (DESIGN §7).

A policy row gives, for a region prefix and a scenario, up to three limits, each a *rule* clocked in working
time by :class:`routing.calendar.WorkingCalendar`:

- ``first_contact``: task creation → the first stage at or after CONTACTED, ``first_contact_hours`` hours;
- ``total``: task creation → the first stage at or after CONNECTED, ``total_days`` working days, less the
  time spent in ``excluded_stages`` (Yantai leaves design and construction out);
- ``step:<STAGE>``: each stage before CONNECTED, from its start to the next stage's, ``step_days``.

A working day is :attr:`~routing.calendar.WorkingCalendar.hours_per_day` office hours. Per rule,
:func:`evaluate` emits WARNING once the elapsed time reaches ``warning_fraction`` of the limit while the rule
is open, BREACHED once it exceeds the limit (``occurred_at`` = the due instant), and MET when the rule closed
within it. Event ids are ``sha256(task, rule, kind)``, so a replay emits nothing new. An event whose clock runs
over a year with only a provisional holiday schedule says so (``provisional_calendar``).

Example:
    >>> row = {"id": "p", "region_prefix": "37", "source": "doc", "first_contact_hours": 3,
    ...        "scenarios": {"no_external_works": {"total_days": 3}}}
    >>> parse_policies({"policies": [row]}).policy_for("370602", "no_external_works").total_days
    3.0
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, NoReturn

from routing.calendar import TIME_ZONE, WorkingCalendar
from routing.errors import DataError
from routing.records import SlaEvent, SlaEventKind, TaskLedgerEntry, TaskStage
from routing.regions import PROVINCES, is_known_region
from routing.yaml_files import read_yaml

SCENARIOS: Final = ("no_external_works", "pipe_le_20m", "pipe_le_50m", "pipe_le_200m")
STAGE_ORDER: Final[tuple[TaskStage, ...]] = (
    "RECEIVED", "CONTACTED", "SURVEYED", "PLAN_CONFIRMED", "EXTERNAL_WORKS", "CONNECTED", "CLOSED",
)  # fmt: skip
STEP_STAGES: Final = STAGE_ORDER[: STAGE_ORDER.index("CONNECTED")]
LONGEST_DOCUMENTED_PIPE_M: Final = 200.0
DEFAULT_WARNING_FRACTION: Final = 0.8

RuleState = Literal["met", "breached", "open", "warning"]

_PIPE_SCENARIOS: Final = ((20.0, "pipe_le_20m"), (50.0, "pipe_le_50m"))
_EVENT_ID_LENGTH: Final = 32
_ROW_KEYS: Final = frozenset({"id", "region_prefix", "source", "first_contact_hours", "warning_fraction", "scenarios"})
_LIMIT_KEYS: Final = frozenset({"total_days", "step_days", "excluded_stages"})
_PREFIX_MIN: Final = 2
_PREFIX_MAX: Final = 6
_TERMINAL: Final = ("CLOSED", "REJECTED")
_OUTCOMES: Final[tuple[SlaEventKind, ...]] = ("BREACHED", "MET")


def scenario_for(pipe_length_m: float | None) -> str:
    """Return the scenario for an external pipe length.

    ``None`` or 0 means no external works. Beyond 200 m no document sets a longer limit, so the 200 m rule
    still applies (the strictest reading); compare with :data:`LONGEST_DOCUMENTED_PIPE_M` to flag such tasks.

    Raises:
        ValueError: On a negative or non-finite length.
    """
    if pipe_length_m is None or pipe_length_m == 0:
        return "no_external_works"
    if not math.isfinite(pipe_length_m) or pipe_length_m < 0:
        msg = f"pipe_length_m must be a finite length >= 0, got {pipe_length_m!r}"
        raise ValueError(msg)
    return next((name for limit, name in _PIPE_SCENARIOS if pipe_length_m <= limit), "pipe_le_200m")


@dataclass(frozen=True)
class Policy:
    """The limits for one region prefix and scenario; ``None`` means the rule does not apply."""

    policy_id: str
    region_prefix: str
    scenario: str
    source: str
    first_contact_hours: float | None
    total_days: float | None
    step_days: float | None
    warning_fraction: float = DEFAULT_WARNING_FRACTION
    excluded_stages: tuple[TaskStage, ...] = ()


class PolicyNotFoundError(DataError):
    """No policy row covers the task's region for its scenario."""


@dataclass(frozen=True)
class PolicyTable:
    """Policies indexed by (region prefix, scenario); the longest matching prefix wins.

    Raises:
        ValueError: On two policies for the same prefix and scenario.
    """

    policies: tuple[Policy, ...]
    _index: Mapping[tuple[str, str], Policy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], Policy] = {}
        for policy in self.policies:
            key = (policy.region_prefix, policy.scenario)
            if key in index:
                msg = f"{index[key].policy_id!r} and {policy.policy_id!r} both set prefix {key[0]!r} {key[1]}"
                raise ValueError(msg)
            index[key] = policy
        object.__setattr__(self, "_index", index)

    def policy_for(self, region_code: str, scenario: str) -> Policy:
        """Return the policy of the longest prefix of ``region_code`` with a row for ``scenario``.

        Raises:
            ValueError: If ``scenario`` is not one of :data:`SCENARIOS`.
            PolicyNotFoundError: If no row covers the region (not even a ``""`` default).
        """
        if scenario not in SCENARIOS:
            msg = f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}"
            raise ValueError(msg)
        for length in range(len(region_code), -1, -1):
            policy = self._index.get((region_code[:length], scenario))
            if policy is not None:
                return policy
        raise PolicyNotFoundError("region_code", f"no SLA policy covers region {region_code} for {scenario}")


@dataclass(frozen=True)
class RuleClock:
    """One rule of one task: when its clock started, when it stopped (``None``: still running), its limit."""

    rule: str
    started_at: datetime
    ended_at: datetime | None
    limit_hours: float
    excluded: tuple[tuple[datetime, datetime | None], ...] = ()

    def elapsed(self, calendar: WorkingCalendar, horizon: datetime) -> timedelta:
        """Return the counted working time from the start to ``horizon``, excluded stages left out."""
        total = calendar.working_time_between(self.started_at, horizon)
        for start, end in self.excluded:
            stop = horizon if end is None else min(end, horizon)
            total -= calendar.working_time_between(max(start, self.started_at), stop)
        return total

    def instant(self, calendar: WorkingCalendar, hours: float, horizon: datetime) -> datetime:
        """Return when ``hours`` of counted time have elapsed (an excluded stage still open ends at ``horizon``)."""
        cursor, remaining = self.started_at, timedelta(hours=hours)
        for start, end in self.excluded:
            if start > cursor:
                available = calendar.working_time_between(cursor, start)
                if remaining <= available:
                    return calendar.add_working_time(cursor, remaining)
                remaining -= available
            cursor = max(cursor, horizon if end is None else end)
        return calendar.add_working_time(cursor, remaining)


@dataclass(frozen=True)
class Reading:
    """A rule read at ``horizon``: its counted elapsed time, its state, and whether it can still warn."""

    elapsed: timedelta
    horizon: datetime
    state: RuleState
    live: bool


def rule_clocks(entry: TaskLedgerEntry, policy: Policy, calendar: WorkingCalendar) -> list[RuleClock]:
    """Return the clocks the policy sets on the task: first_contact, total, then step:<STAGE> in time order."""
    day = calendar.hours_per_day
    created = entry["created_at"]
    clocks: list[RuleClock] = []
    if policy.first_contact_hours is not None:
        clocks.append(RuleClock("first_contact", created, reached(entry, "CONTACTED"), policy.first_contact_hours))
    if policy.total_days is not None:
        excluded = tuple(
            (span["started_at"], span["ended_at"])
            for span in entry["stages"]
            if span["stage"] in policy.excluded_stages
        )
        clocks.append(RuleClock("total", created, reached(entry, "CONNECTED"), policy.total_days * day, excluded))
    if policy.step_days is not None:
        clocks.extend(
            RuleClock(f"step:{span['stage']}", span["started_at"], span["ended_at"], policy.step_days * day)
            for span in entry["stages"]
            if span["stage"] in STEP_STAGES and span["stage"] not in policy.excluded_stages
        )
    return clocks


def reached(entry: TaskLedgerEntry, stage: TaskStage) -> datetime | None:
    """Return when the task first reached ``stage`` or a later stage of :data:`STAGE_ORDER`, else ``None``.

    A utility that reports SURVEYED without CONTACTED has evidently made contact by then.
    """
    floor = STAGE_ORDER.index(stage)
    starts = [
        span["started_at"]
        for span in entry["stages"]
        if span["stage"] in STAGE_ORDER and STAGE_ORDER.index(span["stage"]) >= floor
    ]
    return min(starts, default=None)


def task_end(entry: TaskLedgerEntry) -> datetime | None:
    """Return when the task was CLOSED or REJECTED, else ``None``."""
    return min((span["started_at"] for span in entry["stages"] if span["stage"] in _TERMINAL), default=None)


def read(
    clock: RuleClock, calendar: WorkingCalendar, now: datetime, *, end: datetime | None, fraction: float
) -> Reading:
    """Read a clock: a stopped one at its stop; a running one at ``now``, or at the task's ``end`` if it ended.

    A running clock of an ended task can still read breached (that happened before the end) but never warns.
    """
    live = clock.ended_at is None and end is None
    if clock.ended_at is not None:
        horizon = clock.ended_at
    else:
        horizon = now if end is None else min(now, end)
    elapsed = clock.elapsed(calendar, horizon)
    if elapsed > timedelta(hours=clock.limit_hours):
        state: RuleState = "breached"
    elif clock.ended_at is not None:
        state = "met"
    elif live and elapsed >= timedelta(hours=clock.limit_hours * fraction):
        state = "warning"
    else:
        state = "open"
    return Reading(elapsed, horizon, state, live)


def event_id(task_id: str, rule: str, kind: SlaEventKind) -> str:
    """Return the deterministic id of an SLA event: the first 32 hex characters of a SHA-256."""
    return hashlib.sha256("\x1f".join((task_id, rule, kind)).encode()).hexdigest()[:_EVENT_ID_LENGTH]


def evaluate(entry: TaskLedgerEntry, policy: Policy, calendar: WorkingCalendar, now: datetime) -> list[SlaEvent]:
    """Return the SLA events now due for the task and not yet in ``entry["emitted"]``, oldest first.

    A rule has one outcome: once its BREACHED (or MET) is emitted the other never is, even if a late,
    out-of-order report changes the picture (the timeline shows the current reading).

    Args:
        entry: The task's ledger entry.
        policy: The policy for its region and scenario.
        calendar: The working calendar.
        now: The clock (aware); wall-clock or event time, the caller decides. It becomes ``emitted_at``.

    Raises:
        ValueError: If ``now`` is naive.
        CalendarError: If a clock runs through a year without a holiday schedule.
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    emitted = set(entry["emitted"])
    end = task_end(entry)
    events: list[SlaEvent] = []
    for clock in rule_clocks(entry, policy, calendar):
        if any(event_id(entry["task_id"], clock.rule, kind) in emitted for kind in _OUTCOMES):
            continue  # settled: nothing more can be due, and no calendar walk is needed
        reading = read(clock, calendar, now, end=end, fraction=policy.warning_fraction)
        kinds = [kind for kind in _due_kinds(reading) if event_id(entry["task_id"], clock.rule, kind) not in emitted]
        if not kinds:
            continue
        due = clock.instant(calendar, clock.limit_hours, reading.horizon)
        provisional = calendar.provisional_between(clock.started_at, max(due, reading.horizon))
        for kind in kinds:
            if kind == "WARNING":
                occurred = clock.instant(calendar, clock.limit_hours * policy.warning_fraction, reading.horizon)
            else:
                occurred = due if kind == "BREACHED" else reading.horizon.astimezone(UTC)
            timing = _Timing(occurred=occurred, due=due, now=now, provisional=provisional)
            events.append(_event(entry, policy, clock, reading, kind=kind, timing=timing))
    return sorted(events, key=lambda event: event["occurred_at"])


def _due_kinds(reading: Reading) -> list[SlaEventKind]:
    if reading.state == "met":
        return ["MET"]
    if reading.state == "warning":
        return ["WARNING"]
    if reading.state == "breached":
        return ["WARNING", "BREACHED"] if reading.live else ["BREACHED"]
    return []


@dataclass(frozen=True)
class _Timing:
    occurred: datetime
    due: datetime
    now: datetime
    provisional: bool


def _event(
    entry: TaskLedgerEntry, policy: Policy, clock: RuleClock, reading: Reading, *, kind: SlaEventKind, timing: _Timing
) -> SlaEvent:
    return {
        "event_id": event_id(entry["task_id"], clock.rule, kind),
        "task_id": entry["task_id"],
        "utility_id": entry["utility_id"],
        "application_id": entry["application_id"],
        "kind": kind,
        "rule": clock.rule,
        "policy_id": policy.policy_id,
        "policy_source": policy.source,
        "region_code": entry["region_code"],
        "scenario": policy.scenario,
        "limit_working_hours": clock.limit_hours,
        "elapsed_working_hours": reading.elapsed.total_seconds() / 3600,
        "started_at": clock.started_at.astimezone(UTC),
        "due_at": timing.due,
        "occurred_at": timing.occurred,
        "emitted_at": timing.now.astimezone(UTC),
        "time_zone": TIME_ZONE,
        "provisional_calendar": timing.provisional,
    }


def load_policies(path: Path) -> PolicyTable:
    """Read and validate an SLA policy YAML file.

    Raises:
        OSError: If the file cannot be read.
        ValueError: If it is not valid YAML or not a valid table; the message names the file and key.
    """
    doc = read_yaml(path)
    return parse_policies(doc, origin=str(path))


def parse_policies(doc: Mapping[str, Any], *, origin: str = "<memory>") -> PolicyTable:
    """Validate a parsed policy document (``warning_fraction``, ``policies``) and build the table.

    Each row names an ``id``, a ``region_prefix`` (``""`` for everywhere), its ``source`` document, an
    optional ``first_contact_hours`` and ``warning_fraction``, and ``scenarios`` mapping each scenario to
    ``{total_days, step_days, excluded_stages}``; it yields one :class:`Policy` per scenario.

    Raises:
        ValueError: Naming ``origin`` and the key, e.g. ``sla-policies.yaml: policies[2].scenarios.pipe_le_9m:
            unknown scenario``.
    """
    try:
        if not isinstance(doc, Mapping):
            _fail("", f"expected a mapping with 'policies', got {type(doc).__name__}")
        _no_unknown_keys("", doc, frozenset({"warning_fraction", "policies"}))
        fraction = _fraction("warning_fraction", doc.get("warning_fraction", DEFAULT_WARNING_FRACTION))
        rows = doc.get("policies")
        if not isinstance(rows, list) or not rows:
            _fail("policies", "must be a non-empty list of policy rows")
        ids = [row.get("id") if isinstance(row, Mapping) else None for row in rows]
        for i, ident in enumerate(ids):
            if ident in ids[:i]:
                _fail(f"policies[{i}].id", f"{ident!r} is already used by policies[{ids.index(ident)}]")
        return PolicyTable(tuple(p for i, row in enumerate(rows) for p in _row(f"policies[{i}]", row, fraction)))
    except ValueError as exc:
        msg = f"{origin}: {exc}"
        raise ValueError(msg) from exc


def _row(path: str, row: object, fraction: float) -> list[Policy]:
    if not isinstance(row, Mapping):
        _fail(path, f"must be a mapping with {sorted(_ROW_KEYS)}, got {type(row).__name__}")
    _no_unknown_keys(path, row, _ROW_KEYS)
    ident = _text(f"{path}.id", row.get("id"))
    prefix = _region_prefix(f"{path}.region_prefix", row.get("region_prefix"))
    source = _text(f"{path}.source", row.get("source"))
    contact = _positive(f"{path}.first_contact_hours", row.get("first_contact_hours"))
    fraction = _fraction(f"{path}.warning_fraction", row.get("warning_fraction", fraction))
    scenarios = row.get("scenarios")
    if not isinstance(scenarios, Mapping) or not scenarios:
        _fail(f"{path}.scenarios", f"must map scenarios ({', '.join(SCENARIOS)}) to their limits")
    base = Policy(ident, prefix, "", source, contact, None, None, fraction)
    return [_scenario(f"{path}.scenarios.{name}", base, name, limits) for name, limits in scenarios.items()]


def _scenario(path: str, base: Policy, scenario: object, limits: object) -> Policy:
    if scenario not in SCENARIOS:
        _fail(path, f"unknown scenario; expected one of {list(SCENARIOS)}")
    if not isinstance(limits, Mapping):
        _fail(path, f"must be a mapping with {sorted(_LIMIT_KEYS)}, got {limits!r}")
    _no_unknown_keys(path, limits, _LIMIT_KEYS)
    total = _positive(f"{path}.total_days", limits.get("total_days"))
    step = _positive(f"{path}.step_days", limits.get("step_days"))
    if base.first_contact_hours is None and total is None and step is None:
        _fail(path, "sets no limit: give total_days, step_days or the row's first_contact_hours")
    excluded = _stages(f"{path}.excluded_stages", limits.get("excluded_stages"))
    return replace(base, scenario=str(scenario), total_days=total, step_days=step, excluded_stages=excluded)


def _no_unknown_keys(path: str, mapping: Mapping[Any, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(str(key) for key in mapping.keys() - allowed)
    if unknown:
        _fail(path, f"unknown keys {unknown}; expected {sorted(allowed)}")


def _text(path: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _region_prefix(path: str, value: object) -> str:
    # An unquoted prefix arrives as an int; no region code starts with 0, so nothing is lost.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if text == "":
        return ""
    if not isinstance(text, str) or not text.isdigit() or not _PREFIX_MIN <= len(text) <= _PREFIX_MAX:
        _fail(path, f"{value!r} is not '' or 2-6 digits")
    if f"{text[:2]}0000" not in PROVINCES or (len(text) > _PREFIX_MIN and not is_known_region(text.ljust(6, "0"))):
        _fail(path, f"{value!r} is not the prefix of a known region")
    return text


def _positive(path: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        _fail(path, f"must be a positive number or null, got {value!r}")
    return float(value)


def _fraction(path: str, value: object) -> float:
    number = _positive(path, value)
    if number is None or number >= 1:
        _fail(path, f"must be a number between 0 and 1 (exclusive), got {value!r}")
    return number


def _stages(path: str, value: object) -> tuple[TaskStage, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _fail(path, f"must be a list of stages from {list(STEP_STAGES)}, got {value!r}")
    stages: list[TaskStage] = []
    for i, item in enumerate(value):
        stage = next((s for s in STEP_STAGES if s == item), None)
        if stage is None:
            _fail(f"{path}[{i}]", f"{item!r} is not one of {list(STEP_STAGES)}")
        stages.append(stage)
    return tuple(stages)


def _fail(path: str, reason: str) -> NoReturn:
    msg = f"{path}: {reason}" if path else reason
    raise ValueError(msg)
