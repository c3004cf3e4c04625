import hashlib
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from routing.calendar import SHANGHAI, load_calendar
from routing.records import SlaEvent, StageSpan, TaskLedgerEntry, TaskStage
from routing.sla import SCENARIOS, RuleClock, evaluate, event_id, rule_views, scenario_for
from routing.sla_policy import PolicyBook, Rule, load_policies, parse_policies
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
SEEDS = Path(__file__).parents[2] / "data" / "seeds"
CAL = load_calendar(CONFIG / "calendar.yaml")
TABLE = load_policies(CONFIG / "sla-policies.yaml")
CREATED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday
CONTACT_RULE = "shandong-000-first-contact"


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def entry(
    *stages: tuple[Any, datetime],
    emitted: tuple[str, ...] = (),
    region: str = "371502",
    created: datetime = CREATED,
    filed: datetime | None = None,
    pipe: float | None = None,
    **fields: Any,
) -> TaskLedgerEntry:
    """A connection application filed at ``filed`` (default: ``created``) whose stages start at the given times."""
    spans: list[StageSpan] = []
    for i, (stage, started) in enumerate(stages):
        ended = stages[i + 1][1] if i + 1 < len(stages) else None
        hours = None if ended is None else CAL.working_hours_between(started, ended)
        spans.append({"stage": stage, "started_at": started, "ended_at": ended, "elapsed_working_hours": hours})
    built: TaskLedgerEntry = {
        "task_id": "t" * 32,
        "utility_id": "liaocheng-water",
        "application_id": None,
        "kind": "APPLICATION",
        "service": "WATER",
        "region_code": region,
        "created_at": created,
        "scenario": scenario_for(pipe),
        "pipe_length_m": pipe,
        "stage": stages[-1][0] if stages else None,
        "closed": any(stage in ("CLOSED", "REJECTED") for stage, _ in stages),
        "rejected_reason": None,
        "stages": spans,
        "emitted": list(emitted),
        "updated_at": CREATED,
        "unclocked_reason": None,
        "application_filed_at": created if filed is None else filed,
        "application_kind": "CONNECTION",
        "permit_granted_at": None,
        "cancelled_at": None,
    }
    built.update(fields)  # type: ignore[typeddict-item]
    return built


def summary(events: list[SlaEvent], rule: str | None = None) -> list[tuple[str, str, datetime, float]]:
    """(clock, kind, occurred_at in Shanghai, elapsed hours) of each event, optionally of one clock."""
    return [
        (e["rule"], e["kind"], e["occurred_at"].astimezone(SHANGHAI), round(e["elapsed_working_hours"], 6))
        for e in events
        if rule is None or e["rule"] == rule
    ]


def governing(**task: Any) -> list[str]:
    """The ids of the rules governing a task (defaults: a Yantai water connection application)."""
    query = {"kind": "APPLICATION", "application_kind": "CONNECTION", "service": "WATER", "region_code": "370602"}
    return [g.rule.id for g in TABLE.governing(**{**query, **task})]


# --- seed-based: every rule of the shipped file, one case inside and one outside each limit -------------------

# Per rule: a region it governs (not overridden there) and the service of the case. A new rule without a case
# here fails test_every_rule_has_a_case and every parametrised case of it.
CASES: dict[str, tuple[str, str]] = {
    "shandong-000-first-contact": ("370602", "WATER"),
    "zhengzhou-001-two-steps": ("410102", "GAS"),
    "zhengzhou-001-one-step": ("410102", "HEAT"),
    "liaocheng-002-connection": ("371502", "WATER"),
    "yantai-004-connection": ("370602", "GAS"),
    "yantai-004-heat-steps": ("370602", "HEAT"),
    "shandong-default-connection": ("370102", "WATER"),
    "shandong-default-heat": ("371502", "HEAT"),
}
START = sh(3, 9, 9)  # the rule's start event: Monday 09:00
ARRIVED = START + timedelta(minutes=5)  # the task reached ubridge later: clocks must not start here


def limited_clocks() -> list[tuple[str, str, str]]:
    """(rule id, variant, clock) of every clock with a limit in the shipped file."""
    found = []
    for rule in TABLE.rules:
        for variant in rule.variants:
            if variant.limit is not None:
                found.append((rule.id, variant.name, "first_contact" if rule.stops == "CONTACTED" else "total"))
            found += [(rule.id, variant.name, f"step:{step.name}") for step in variant.steps if step.limit is not None]
    return found


def seed_text(document: str) -> str:
    (path,) = SEEDS.glob(f"{document}_*.txt")
    return re.sub(r"\s+", "", path.read_text(encoding="utf-8"))


def test_every_rule_has_a_case() -> None:
    """Each rule of sla-policies.yaml has a seed-based case below (add one with every new rule)."""
    assert sorted(rule.id for rule in TABLE.rules) == sorted(CASES)


@pytest.mark.parametrize("rule", TABLE.rules, ids=lambda rule: rule.id)
def test_every_rule_quotes_its_seed_verbatim(rule: Rule) -> None:
    """The quoted sentence (parts joined by …) is the seed's own text; a seed rule cites a seed with a limit."""
    text = seed_text(rule.document)
    missing = [part for part in re.sub(r"\s+", "", rule.quote).split("…") if part not in text]
    has_limit = any(v.limit is not None or any(s.limit is not None for s in v.steps) for v in rule.variants)
    assert ([], True) == (missing, has_limit or rule.basis == "default")


def case_entry(rule: Rule, variant_name: str, clock: str, *, inside: bool) -> tuple[TaskLedgerEntry, datetime]:
    """A task under ``rule`` whose ``clock`` stops one minute inside or outside its limit, and its start."""
    region, service = CASES[rule.id]
    variant = next(v for v in rule.variants if v.name == variant_name)
    pipe = None if variant.pipe_up_to_m == 0 else (variant.pipe_up_to_m or (variant.pipe_over_m or 0) + 100)
    base = entry(("RECEIVED", ARRIVED), region=region, created=ARRIVED, filed=START, pipe=pipe, service=service)
    base["kind"] = rule.task_kinds[0]
    base["permit_granted_at"] = START
    (view,) = [v for v in rule_views(base, TABLE, CAL) if v.rule.id == rule.id]
    names = [c.name for c in view.clocks]
    index = names.index(clock)
    steps = [s.stops for s in variant.steps]
    # Earlier steps end at arrival, so the clock under test starts at the rule's start or the previous stop.
    earlier: list[TaskStage] = steps[: index - 1] if clock.startswith("step:") else []
    begin = START if not earlier else ARRIVED
    measured = RuleClock(rule.id, clock, begin, None, view.clocks[index].limit_hours, view.clocks[index].natural)
    limit = measured.limit_hours or 0.0
    stop_at = measured.instant(CAL, limit + (-1 if inside else 1) / 60, begin + timedelta(days=400))
    stop: TaskStage = rule.stops if clock in ("total", "first_contact") else steps[index - 1]
    stages = [("RECEIVED", ARRIVED), *((s, ARRIVED) for s in earlier if s != stop), (stop, stop_at)]
    stages.sort(key=lambda item: item[1])
    built = entry(*stages, region=region, created=ARRIVED, filed=START, pipe=pipe, service=service)
    built["kind"] = rule.task_kinds[0]
    built["permit_granted_at"] = START
    return built, begin


@pytest.mark.parametrize(("rule_id", "variant", "clock"), limited_clocks())
@pytest.mark.parametrize("inside", [True, False], ids=["inside", "outside"])
def test_seed_rule_inside_and_outside_its_limit(rule_id: str, variant: str, clock: str, inside: bool) -> None:
    """One minute inside the quoted limit is MET, one minute past it BREACHED, counted from the rule's start event."""
    rule = next(r for r in TABLE.rules if r.id == rule_id)
    task, begin = case_entry(rule, variant, clock, inside=inside)
    events = [e for e in evaluate(task, TABLE, CAL, sh(6, 1)) if e["rule_id"] == rule_id and e["rule"] == clock]
    assert (["MET"] if inside else ["BREACHED"], [begin.astimezone(UTC)], [rule.starts]) == (
        [e["kind"] for e in events],
        [e["started_at"] for e in events],
        [e["start_event"] for e in events],
    ), rule.quote


def test_a_late_arriving_application_shows_its_contact_breach_at_once() -> None:
    """000 “3小时内与用户取得联系”: filed 11-30 09:00, reaching ubridge 12-04, contact is breached (due 12:00)."""
    filed = datetime(2026, 11, 30, 9, tzinfo=SHANGHAI)
    arrived = datetime(2026, 12, 4, 9, tzinfo=SHANGHAI)
    late = entry(("RECEIVED", arrived), region="370602", created=arrived, filed=filed)
    events = summary(evaluate(late, TABLE, CAL, arrived + timedelta(minutes=1)), "first_contact")
    assert [("first_contact", "BREACHED", datetime(2026, 11, 30, 12, tzinfo=SHANGHAI), 30.016667)] == events[1:]


# --- which tasks each rule governs --------------------------------------------------------------------------


def test_the_contact_rule_and_totals_do_not_govern_pre_intervention_tasks() -> None:
    """A PRE_INTERVENTION task opened at a planning permit is not an application: no rule judges it."""
    assert ([], [], []) == (
        governing(kind="PRE_INTERVENTION", application_kind=None),
        governing(kind="CONSTRUCTION_READY", application_kind=None),
        governing(kind="CONNECT", application_kind=None),
    )


def test_liaocheng_and_yantai_limits_are_for_water_and_gas_not_heat() -> None:
    """002 “通水通气” and 004 “用水用气”: heat gets the labelled defaults, with no connection limit."""
    assert (
        ["shandong-000-first-contact", "yantai-004-heat-steps"],
        ["shandong-000-first-contact", "shandong-default-heat"],
        ["shandong-000-first-contact", "liaocheng-002-connection"],
    ) == (
        governing(service="HEAT"),
        governing(service="HEAT", region_code="371502"),
        governing(service="GAS", region_code="371502"),
    )
    heat = entry(("RECEIVED", CREATED), region="370602", service="HEAT")
    assert ["first_contact"] * 2 == [e["rule"] for e in evaluate(heat, TABLE, CAL, sh(4, 30))]


def test_repairs_and_other_regions_are_not_judged() -> None:
    """报修 is not 报装; Beijing has no rule; a city without its own plan gets the labelled Shandong default."""
    assert ([], [], [CONTACT_RULE, "shandong-default-connection"]) == (
        governing(application_kind="REPAIR"),
        governing(region_code="110101"),
        governing(region_code="370102"),
    )


def test_zhengzhou_approval_system_task_has_one_step_from_the_grant() -> None:
    """001: a project in the approval system has the one step 验收接通, from the completion-acceptance grant."""
    grant = sh(3, 9, 9)
    task = entry(("RECEIVED", sh(3, 10, 9)), region="410102", created=sh(3, 10, 9), kind="CONNECT")
    task["permit_granted_at"] = grant
    (view,) = rule_views(task, TABLE, CAL)
    assert ("zhengzhou-001-one-step", ["total", "step:验收接通"], [grant, grant]) == (
        view.rule.id,
        [c.name for c in view.clocks],
        [c.started_at for c in view.clocks],
    )


def test_a_task_without_the_start_instant_falls_back_to_its_creation_and_says_so() -> None:
    """A task written before it carried the filing time is clocked from its creation, with a note."""
    old = entry(("RECEIVED", CREATED), region="370602", application_filed_at=None)
    notes = {view.note for view in rule_views(old, TABLE, CAL)}
    assert {"the task carries no application_filed instant; clocked from its creation"} == notes


def test_a_pipe_beyond_the_documented_range_is_not_judged_under_liaocheng() -> None:
    """002 stops at 200 m: a 350 m pipe has no variant, so Liaocheng's rule records it without a limit."""
    far = entry(("RECEIVED", CREATED), ("EXTERNAL_WORKS", sh(3, 9, 10)), pipe=350.0)
    view = next(v for v in rule_views(far, TABLE, CAL) if v.rule.id == "liaocheng-002-connection")
    assert (None, ()) == (view.variant, view.clocks)
    assert "350.0 m" in (view.note or "")


# --- units and counting conventions ------------------------------------------------------------------------


def custom(rule: dict[str, Any]) -> PolicyBook:
    """A policy book with one rule, everything else as shipped."""
    base: dict[str, Any] = {
        "id": "custom",
        "basis": "seed",
        "document": "000",
        "quote": "q",
        "regions": ["37"],
        "services": ["WATER"],
        "task_kinds": ["APPLICATION"],
        "starts": "application_filed",
        "stops": "CONTACTED",
        "unit": "working_hours",
        "counting": {"start_day_counts": True, "reading": "r"},
        "variants": [{"name": "all", "limit": 3}],
    }
    doc = TABLE.model_dump(mode="json")
    doc["rules"] = [{**base, **rule}]
    return parse_policies(doc)


def test_natural_hours_count_the_night() -> None:
    """With unit natural_hours a filing at 22:00 is due at 01:00; in working hours at 11:30 the next day."""
    night = entry(("RECEIVED", sh(3, 9, 22)), region="370602", created=sh(3, 9, 22))
    natural = evaluate(night, custom({"unit": "natural_hours"}), CAL, sh(3, 10, 2))
    working = evaluate(night, custom({}), CAL, sh(3, 10, 12))
    assert (sh(3, 10, 1), sh(3, 10, 11, 30)) == (
        natural[-1]["due_at"].astimezone(SHANGHAI),
        working[-1]["due_at"].astimezone(SHANGHAI),
    )


def test_start_day_not_counted_moves_the_due_instant_to_the_next_day() -> None:
    """start_day_counts false (民法典 第二百零一条): 1 working day from Monday 09:00 is due Tuesday 17:30."""
    book = custom({"unit": "working_days", "counting": {"start_day_counts": False, "reading": "r"},
                   "variants": [{"name": "all", "limit": 1}]})  # fmt: skip
    events = evaluate(entry(("RECEIVED", CREATED), region="370602"), book, CAL, sh(3, 11, 9))
    assert [sh(3, 10, 17, 30)] == [e["due_at"].astimezone(SHANGHAI) for e in events if e["kind"] == "BREACHED"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unit": "days"}, "rules[0].unit: Input should be"),
        ({"starts": "filed"}, "rules[0].starts: Input should be"),
        ({"services": ["OIL"]}, "rules[0].services[0]: Value error, unknown service 'OIL'; configured: WATER"),
        ({"regions": ["99"]}, "rules[0]: Value error, regions: '99' is not the 2-6 digit prefix"),
        ({"document": "009"}, "rules[0].document: '009' is not under documents"),
        ({"basis": "default"}, "why: a default rule must say"),
        ({"variants": [{"name": "all", "limit": -1}]}, "rules[0].variants[0].limit: Input should be greater than 0"),
        ({"overrides": ["nobody"]}, "rules[0].overrides: ['nobody'] name no rule"),
        ({"colour": "red"}, "rules[0].colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_rule_files_name_origin_and_key(change: dict[str, Any], message: str) -> None:
    """Every malformed rule is a ValueError naming the file and the key."""
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        custom(change)
    assert str(info.value).startswith("<memory>: ")


def test_load_refuses_invalid_yaml(tmp_path: Path) -> None:
    """A rule file that is not YAML is a ValueError naming the file."""
    path = tmp_path / "sla-policies.yaml"
    path.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_policies(path)


@pytest.mark.parametrize(
    ("length", "scenario"),
    [(None, "no_external_works"), (0.0, "no_external_works"), (20.0, "pipe_le_20m"), (50.0, "pipe_le_50m"),
     (200.0, "pipe_le_200m"), (200.5, "pipe_over_200m")],
)  # fmt: skip
def test_scenario_for_pipe_length(length: float | None, scenario: str) -> None:
    """Pipe lengths map to the documented bands shown on the entry; beyond 200 m is labelled as such."""
    assert scenario == scenario_for(length)


@pytest.mark.parametrize("length", [-1.0, math.nan, math.inf])
def test_scenario_for_refuses_impossible_lengths(length: float) -> None:
    """A negative or non-finite length is a ValueError."""
    with pytest.raises(ValueError, match="pipe_length_m must be a finite length"):
        scenario_for(length)


# --- first_contact: 3 working hours from the filing (000), Liaocheng -------------------------------------------


def test_first_contact_still_inside_warning_threshold_emits_nothing() -> None:
    """Two working hours after creation the 3-hour clock is below 80 %: no event."""
    assert [] == evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, sh(3, 9, 11))


def test_first_contact_warning_at_eighty_percent() -> None:
    """At 11:30 (2.5 h) the clock has passed 2.4 h: WARNING, occurred 11:24, due at 12:00."""
    events = evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, sh(3, 9, 11, 30))
    due = [e["due_at"].astimezone(SHANGHAI) for e in events]
    assert ([("first_contact", "WARNING", sh(3, 9, 11, 24), 2.5)], [sh(3, 9, 12)]) == (summary(events), due)


def test_first_contact_breached_while_open_emits_warning_and_breach() -> None:
    """At 14:00 (3.5 h) with nothing emitted yet: WARNING at 11:24 and BREACHED at the due instant 12:00."""
    events = evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, sh(3, 9, 14))
    expected = [
        ("first_contact", "WARNING", sh(3, 9, 11, 24), 3.5),
        ("first_contact", "BREACHED", sh(3, 9, 12), 3.5),
    ]
    assert expected == summary(events)


def test_first_contact_breach_after_warning_emits_only_the_breach() -> None:
    """With the WARNING already emitted, the breach alone is new."""
    warned = entry(("RECEIVED", CREATED), emitted=(event_id("t" * 32, CONTACT_RULE, "first_contact", "WARNING"),))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 3.5)] == summary(evaluate(warned, TABLE, CAL, sh(3, 9, 14)))


def test_first_contact_met_when_contacted_in_time() -> None:
    """CONTACTED at 11:00 (2 h) meets the rule: MET at 11:00 and no warning."""
    events = evaluate(entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 11))), TABLE, CAL, sh(3, 9, 11, 5))
    assert [("first_contact", "MET", sh(3, 9, 11), 2.0)] == summary(events, "first_contact")


def test_first_contact_closed_late_is_breached_without_warning() -> None:
    """CONTACTED at 15:00 (4.5 h) closed the rule late: BREACHED at 12:00, no WARNING for a closed rule."""
    events = evaluate(entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 15))), TABLE, CAL, sh(3, 9, 15))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 4.5)] == summary(events, "first_contact")


def test_friday_afternoon_task_is_due_monday_morning() -> None:
    """A task created Friday 16:30 is not breached on Monday at 10:00, and breached at 10:31 (due 10:30)."""
    friday = entry(("RECEIVED", sh(3, 6, 16, 30)), created=sh(3, 6, 16, 30))
    early = summary(evaluate(friday, TABLE, CAL, sh(3, 9, 10)))
    late = summary(evaluate(friday, TABLE, CAL, sh(3, 9, 10, 31)), "first_contact")
    assert ([("first_contact", "WARNING", sh(3, 9, 9, 54), 2.5)], sh(3, 9, 10, 30)) == (early, late[-1][2])


def test_later_stage_closes_first_contact() -> None:
    """A SURVEYED report without CONTACTED shows contact was made by then."""
    events = evaluate(entry(("RECEIVED", CREATED), ("SURVEYED", sh(3, 9, 10))), TABLE, CAL, sh(3, 9, 10))
    assert [("first_contact", "MET", sh(3, 9, 10), 1.0)] == summary(events, "first_contact")


def test_outcome_is_never_reversed() -> None:
    """After BREACHED was emitted, a late report that makes the rule look met emits no MET."""
    breached = event_id("t" * 32, CONTACT_RULE, "first_contact", "BREACHED")
    late = entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 10)), emitted=(breached,))
    assert [] == summary(evaluate(late, TABLE, CAL, sh(3, 9, 16)), "first_contact")


def test_emitted_events_are_not_emitted_again() -> None:
    """Evaluating again after the events were recorded returns nothing new."""
    first = evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, sh(3, 9, 14))
    again = entry(("RECEIVED", CREATED), emitted=tuple(e["event_id"] for e in first))
    assert (2, []) == (len(first), evaluate(again, TABLE, CAL, sh(3, 9, 16)))


# --- total: 3 working days (22.5 h) from the filing (002, read as working days) ---------------------------

CONTACTED_EARLY = ("CONTACTED", sh(3, 9, 10))


def test_total_warning_at_eighty_percent() -> None:
    """18 working hours after Monday 09:00 is Wednesday 12:00: WARNING; due Thursday 09:00."""
    events = evaluate(entry(("RECEIVED", CREATED), CONTACTED_EARLY), TABLE, CAL, sh(3, 11, 14))
    total = [e for e in events if e["rule"] == "total"]
    due = [e["due_at"].astimezone(SHANGHAI) for e in total]
    assert ([("total", "WARNING", sh(3, 11, 12), 18.5)], [sh(3, 12, 9)]) == (summary(total), due)


def test_total_breached_while_open() -> None:
    """On Thursday at 10:00 the 22.5 h are exceeded: BREACHED at Thursday 09:00."""
    events = evaluate(entry(("RECEIVED", CREATED), CONTACTED_EARLY), TABLE, CAL, sh(3, 12, 10))
    assert ["WARNING", "BREACHED"] == [kind for _, kind, _, _ in summary(events, "total")]
    assert ("total", "BREACHED", sh(3, 12, 9), 23.5) == summary(events, "total")[1]


def test_total_met_when_connected_in_time() -> None:
    """CONNECTED on Wednesday 10:00 (16 h) meets the 3-day total."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CONNECTED", sh(3, 11, 10)))
    assert [("total", "MET", sh(3, 11, 10), 16.0)] == summary(evaluate(entry(*stages), TABLE, CAL, sh(3, 13)), "total")


def test_total_closed_late_is_breached() -> None:
    """CONNECTED on Friday 09:00 (30 h) closed the total late: BREACHED at Thursday 09:00."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CONNECTED", sh(3, 13, 9)))
    assert [("total", "BREACHED", sh(3, 12, 9), 30.0)] == summary(
        evaluate(entry(*stages), TABLE, CAL, sh(3, 13, 9)), "total"
    )


def test_total_across_national_day_is_not_breached() -> None:
    """A task created 2026-09-30 09:00 is due on the make-up Saturday Oct 10 at 09:00, not during the holiday."""
    created = sh(9, 30, 9)
    task = entry(("RECEIVED", created), ("CONTACTED", sh(9, 30, 10)), created=created)
    quiet = evaluate(task, TABLE, CAL, sh(10, 7, 17))
    late = evaluate(task, TABLE, CAL, sh(10, 10, 10))
    assert ([], sh(10, 10, 9)) == (summary(quiet, "total"), summary(late, "total")[-1][2])


# --- Zhengzhou (001): 受理申请 and 验收接通, 0.5 working day each, 1 day total without external works ---


def test_zhengzhou_steps_and_total() -> None:
    """受理申请 took 3.5 h (MET); 验收接通 open 4 h breaches its 3.75 h; the total at exactly 7.5 h warns."""
    stages = (("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 14)))
    events = evaluate(entry(*stages, region="410102"), TABLE, CAL, sh(3, 10, 9))
    expected = [
        ("step:受理申请", "MET", sh(3, 9, 14), 3.5),
        ("total", "WARNING", sh(3, 9, 16, 30), 7.5),
        ("step:验收接通", "WARNING", sh(3, 9, 17), 4.0),
        ("step:验收接通", "BREACHED", sh(3, 10, 8, 45), 4.0),
    ]
    assert expected == summary(events)


def test_zhengzhou_has_no_first_contact_rule() -> None:
    """Outside Shandong no 3-hour rule applies: no first_contact event however late."""
    events = evaluate(entry(("RECEIVED", CREATED), region="410102"), TABLE, CAL, sh(3, 20))
    assert [] == summary(events, "first_contact")


# --- Yantai (004): with external works, design and construction (EXTERNAL_WORKS) are excluded ----------


def test_yantai_total_is_paused_during_external_works() -> None:
    """Three weeks in EXTERNAL_WORKS after 3.5 counted hours raise no total event."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 9, 14)))
    assert [] == summary(evaluate(entry(*stages, region="370602", pipe=50.0), TABLE, CAL, sh(3, 30)), "total")


def test_yantai_total_met_and_due_shifted_by_excluded_works() -> None:
    """Connected after two weeks of works: MET with 3.5 h counted; due moves to Wednesday 3-25 15:30."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 9, 14)), ("CONNECTED", sh(3, 23, 10)))
    events = [
        e
        for e in evaluate(entry(*stages, region="370602", pipe=50.0), TABLE, CAL, sh(3, 23, 10))
        if e["rule"] == "total"
    ]
    due = [e["due_at"].astimezone(SHANGHAI) for e in events]
    assert ([("total", "MET", sh(3, 23, 10), 3.5)], [sh(3, 25, 15, 30)]) == (summary(events), due)


def test_yantai_total_breached_before_works_started() -> None:
    """Works starting after the limit ran out do not hide the breach: 45 h counted, BREACHED at Thursday 09:00."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 17, 9)))
    events = evaluate(entry(*stages, region="370602", pipe=50.0), TABLE, CAL, sh(3, 30))
    expected = [("total", "WARNING", sh(3, 11, 12), 45.0), ("total", "BREACHED", sh(3, 12, 9), 45.0)]
    assert expected == summary(events, "total")


# --- ended tasks ------------------------------------------------------------------------------------------------


def test_rejected_task_keeps_a_breach_that_already_happened() -> None:
    """Rejected at 15:00 with no contact: the 12:00 breach is emitted, no warning; the total closes REJECTED."""
    stages = (("RECEIVED", CREATED), ("REJECTED", sh(3, 9, 15)))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 4.5), ("total", "REJECTED", sh(3, 9, 15), 4.5)] == summary(
        evaluate(entry(*stages), TABLE, CAL, sh(4, 1))
    )


def test_rejected_task_in_time_closes_every_clock_as_rejected() -> None:
    """Rejected at 11:00 (2 h): each running clock's outcome is REJECTED, at the rejection."""
    stages = (("RECEIVED", CREATED), ("REJECTED", sh(3, 9, 11)))
    assert [("first_contact", "REJECTED", sh(3, 9, 11), 2.0), ("total", "REJECTED", sh(3, 9, 11), 2.0)] == summary(
        evaluate(entry(*stages), TABLE, CAL, sh(4, 1))
    )


def test_cancelled_task_closes_every_clock_as_cancelled() -> None:
    """A CANCEL received by the utility at 10:00 ends the task: CANCELLED outcomes at 10:00."""
    cancelled = entry(("RECEIVED", CREATED), cancelled_at=sh(3, 9, 10), closed=True)
    assert [("first_contact", "CANCELLED", sh(3, 9, 10), 1.0), ("total", "CANCELLED", sh(3, 9, 10), 1.0)] == summary(
        evaluate(cancelled, TABLE, CAL, sh(4, 1))
    )


def test_closed_task_without_connected_report_counts_total_to_closing() -> None:
    """CLOSED counts as the connection it follows: a missing CONNECTED report leaves the total met at CLOSED."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CLOSED", sh(3, 10, 9)))
    assert [("total", "MET", sh(3, 10, 9), 7.5)] == summary(evaluate(entry(*stages), TABLE, CAL, sh(4, 1)), "total")


# --- the events themselves ---------------------------------------------------------------------------------------


def test_event_is_complete_utc_and_encodes_as_avro() -> None:
    """Every SlaEvent key is set, times are UTC, emitted_at is now, and the record round-trips through Avro."""
    now = sh(3, 9, 14)
    event = evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, now)[1]
    parts = ("t" * 32, CONTACT_RULE, "first_contact", "BREACHED")
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    codec = Codec.default()
    assert (set(SlaEvent.__annotations__), digest, now.astimezone(UTC), "Asia/Shanghai") == (
        set(event),
        event["event_id"],
        event["emitted_at"],
        event["time_zone"],
    )
    assert {UTC} == {event[key].tzinfo for key in ("started_at", "due_at", "occurred_at", "emitted_at")}
    assert ("SlaEvent", event) == codec.decode(codec.encode("SlaEvent", event))
    citation = next(g.citation for g in TABLE.governing(kind="APPLICATION", application_kind=None, service="WATER",
                                                       region_code="371502"))  # fmt: skip
    expected = (CONTACT_RULE, CONTACT_RULE, citation, "371502", "all", 3.0, CREATED.astimezone(UTC))
    actual = (
        event["rule_id"],
        event["policy_id"],
        event["policy_source"],
        event["region_code"],
        event["scenario"],
        event["limit_working_hours"],
        event["started_at"],
    )
    assert expected == actual


def test_evaluation_is_deterministic() -> None:
    """The same entry, policy and clock give the same events."""
    task = entry(("RECEIVED", CREATED), CONTACTED_EARLY)
    assert evaluate(task, TABLE, CAL, sh(3, 13)) == evaluate(task, TABLE, CAL, sh(3, 13))


def test_naive_now_is_refused() -> None:
    """A naive clock is a ValueError."""
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        evaluate(entry(("RECEIVED", CREATED)), TABLE, CAL, datetime(2026, 3, 9, 14))  # noqa: DTZ001


def test_custom_warning_fraction_moves_the_warning() -> None:
    """With warning_fraction 0.5 the first-contact warning comes at 1.5 h (10:30)."""
    book = TABLE.model_copy(update={"warning_fraction": 0.5})
    events = evaluate(entry(("RECEIVED", CREATED)), book, CAL, sh(3, 9, 10, 45))
    assert [("first_contact", "WARNING", sh(3, 9, 10, 30), 1.75)] == summary(events)


def test_scenarios_constant_lists_the_bands() -> None:
    """SCENARIOS names the documented bands in increasing order, then beyond them."""
    assert ("no_external_works", "pipe_le_20m", "pipe_le_50m", "pipe_le_200m", "pipe_over_200m") == SCENARIOS
