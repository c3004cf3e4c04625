from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.ledger import timeline
from routing.monthly import facts_at, month_bounds, monthly
from routing.supervision import (
    ComplaintFigures,
    RuleCount,
    StageTime,
    TaskFacts,
    as_of,
    figures_of,
    quantile,
    task_facts,
    with_complaints,
)
from tests.supervision_data import BOOK, CALENDAR, FIRST_CONTACT, LIAOCHENG, YANTAI, entry, november, sh

NOV_20 = sh(11, 20, 12)


def by_key(groups: tuple, key: str):  # type: ignore[no-untyped-def,type-arg]
    return next(group for group in groups if group.key == key)


def test_quantile_interpolates_between_the_closest_ranks() -> None:
    """Median and p90 follow numpy's default (linear) method; one value is its own quantile."""
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert quantile([float(v) for v in range(1, 11)], 0.9) == pytest.approx(9.1)
    assert quantile([7.5], 0.9) == 7.5
    assert quantile([1.0, 5.0], 0.0) == 1.0
    assert quantile([1.0, 5.0], 1.0) == 5.0


def test_quantile_refuses_no_values_and_a_fraction_outside_0_1() -> None:
    """An empty list or q outside [0, 1] is an error, not a made-up figure."""
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match="outside"):
        quantile([1.0], 1.5)


@given(st.lists(st.floats(0, 1e4), min_size=1), st.floats(0, 1))
def test_quantile_lies_between_the_smallest_and_largest_value(values: list[float], q: float) -> None:
    """Any quantile of any values lies within their range."""
    assert min(values) <= quantile(values, q) <= max(values)


def test_task_facts_read_each_rules_own_clock_met_breached_open_ended() -> None:
    """Per rule the outcome of its own clock: met in time, breached late or still running past due, ended."""
    facts = {f.task_id: f for f in facts_at(november(), BOOK, CALENDAR, NOV_20)}
    outcomes = {task: {r.rule_id: r.outcome for r in f.rules} for task, f in facts.items()}
    assert outcomes["yantai-water-00001"] == {FIRST_CONTACT: "met", YANTAI: "met"}
    assert outcomes["yantai-water-00002"] == {FIRST_CONTACT: "breached", YANTAI: "met"}
    assert outcomes["yantai-water-00003"] == {FIRST_CONTACT: "breached", YANTAI: "breached"}
    assert outcomes["liaocheng-water-00005"] == {FIRST_CONTACT: "met", LIAOCHENG: "ended"}
    assert outcomes["yantai-water-00006"] == {}


def test_a_clock_running_within_its_limit_is_open() -> None:
    """At 10:30 on the filing day, an uncontacted task's 3-hour first-contact clock is still open."""
    facts = {f.task_id: f for f in facts_at(november(), BOOK, CALENDAR, sh(11, 2, 10, 30))}
    assert facts["yantai-water-00003"].rules[0].outcome == "open"
    assert not facts["yantai-water-00003"].overdue


def test_overdue_means_still_open_with_a_clock_running_past_due() -> None:
    """A late but stopped clock is breached, not overdue; an open task whose clock still runs past due is both."""
    facts = {f.task_id: f for f in facts_at(november(), BOOK, CALENDAR, NOV_20)}
    assert facts["yantai-water-00002"].breached and not facts["yantai-water-00002"].overdue
    assert facts["yantai-water-00003"].breached and facts["yantai-water-00003"].overdue
    assert not facts["yantai-water-00001"].overdue


def test_stage_hours_count_only_completed_stages_in_working_hours() -> None:
    """A stage's working hours are known once the next stage began; the running stage and CLOSED are left out."""
    task = entry("yantai-water", 1, sh(11, 2, 9), [("CONTACTED", sh(11, 2, 10)), ("SURVEYED", sh(11, 3, 10))])
    facts = task_facts(task, timeline(task, BOOK, CALENDAR, NOV_20))
    # CONTACTED 10:00 Monday → 10:00 Tuesday: 2 + 4 (Monday) + 1.5 (Tuesday) working hours
    assert facts.stage_hours == (("RECEIVED", 1.0), ("CONTACTED", 7.5))


def test_figures_count_tasks_per_rule_for_all_cities_districts_and_utilities() -> None:
    """Every group counts its tasks per rule outcome, its closed tasks and its tasks with a breach."""
    figures = figures_of(facts_at(november()[:6], BOOK, CALENDAR, NOV_20), now=NOV_20)
    assert (figures.total.tasks, figures.total.closed, figures.total.open, figures.total.breached) == (6, 3, 3, 3)
    assert figures.total.rules == (
        RuleCount(LIAOCHENG, ended=1),
        RuleCount(FIRST_CONTACT, met=3, breached=2),
        RuleCount(YANTAI, met=2, breached=2),
    )
    assert [(g.key, g.label, g.tasks) for g in figures.by_city] == [("370600", "烟台市", 5), ("371500", "聊城市", 1)]
    assert [(g.key, g.label) for g in figures.by_district] == [
        ("370602", "烟台市 芝罘区"),
        ("370613", "烟台市 莱山区"),
        ("371502", "聊城市 东昌府区"),
    ]
    water = by_key(figures.by_utility, "yantai-water")
    assert (water.label, water.tasks, water.closed, water.breached) == ("yantai-water（供水）", 4, 2, 2)
    assert water.rules == (RuleCount(FIRST_CONTACT, met=1, breached=2), RuleCount(YANTAI, met=2, breached=1))
    assert by_key(figures.by_district, "370613").rules == (
        RuleCount(FIRST_CONTACT, breached=1),
        RuleCount(YANTAI, breached=1),
    )


def test_figures_give_median_and_p90_of_each_stage_per_group() -> None:
    """Stage times per group: count, median and p90 of the completed spans, in stage order."""
    figures = figures_of(facts_at(november()[:6], BOOK, CALENDAR, NOV_20), now=NOV_20)
    water = by_key(figures.by_utility, "yantai-water")
    assert [s.stage for s in water.stages] == ["RECEIVED", "CONTACTED", "SURVEYED", "CONNECTED"]
    # task 1 contacted after 1 h, task 2 after 3.5 h, task 6 (no rule) after 15 h: all count for the stage
    assert water.stages[0] == StageTime("RECEIVED", 3, 3.5, pytest.approx(12.7))
    assert water.stages[2] == StageTime("SURVEYED", 2, 5.75, pytest.approx(7.15))


def test_a_rule_no_variant_judges_is_not_counted() -> None:
    """Liaocheng sets no limit beyond 200 m of pipe: such a task is not counted under that rule."""
    far = entry("liaocheng-water", 9, sh(11, 2, 9), [("EXTERNAL_WORKS", sh(11, 2, 10))], region="371502", pipe_m=300)
    facts = task_facts(far, timeline(far, BOOK, CALENDAR, NOV_20))
    assert {r.rule_id: r.outcome for r in facts.rules}[LIAOCHENG] == "unjudged"
    assert LIAOCHENG not in {rule.rule_id for rule in figures_of([facts], now=NOV_20).total.rules}


def test_complaint_tasks_are_not_counted_as_connection_tasks() -> None:
    """A task of another kind (the complaint loop's) is left to the complaint figures."""
    complaint = entry("yantai-water", 8, sh(11, 2, 9), [])
    complaint["kind"] = "COMPLAINT"  # type: ignore[typeddict-item]
    assert facts_at([complaint], BOOK, CALENDAR, NOV_20) == []


def test_as_of_drops_what_happened_later() -> None:
    """The entry as it stood: later stages gone, the last kept stage running again, a later cancellation undone."""
    task = november()[0]
    before = as_of(task, sh(11, 2, 12))
    assert before is not None
    assert [s["stage"] for s in before["stages"]] == ["RECEIVED", "CONTACTED"]
    assert before["stages"][-1]["ended_at"] is None
    assert (before["stage"], before["closed"]) == ("CONTACTED", False)
    assert as_of(task, sh(11, 1)) is None
    cancelled = {**task, "cancelled_at": sh(11, 5), "closed": True}
    assert as_of(cancelled, sh(11, 2, 12))["cancelled_at"] is None  # type: ignore[index,arg-type]


def test_month_bounds_are_shanghai_midnights_and_december_ends_in_january() -> None:
    """A month runs from its first 00:00 to the next month's first 00:00, Asia/Shanghai."""
    assert month_bounds("2026-11") == (sh(11, 1), sh(12, 1))
    assert month_bounds("2026-12") == (sh(12, 1), sh(1, 1, year=2027))
    assert month_bounds("2026-11")[0].astimezone(UTC).hour == 16  # 31 October 16:00 UTC


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-1", "11-2026", ""])
def test_month_bounds_refuse_what_is_not_a_month(bad: str) -> None:
    """Anything but YYYY-MM with a real month is refused, naming the form."""
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds(bad)


def test_monthly_counts_the_months_filings_and_lists_breached_and_overdue() -> None:
    """November's figures count November's filings; the overdue list also has October's open task."""
    report = monthly(november(), BOOK, CALENDAR, month="2026-11", now=sh(12, 10))
    assert report.read_at == sh(12, 1) - timedelta(microseconds=1)
    assert report.figures.total.tasks == 6
    assert [t.task_id for t in report.breached] == ["yantai-gas-00004", "yantai-water-00002", "yantai-water-00003"]
    assert [t.task_id for t in report.overdue] == ["yantai-gas-00004", "yantai-gas-00007", "yantai-water-00003"]
    october = monthly(november(), BOOK, CALENDAR, month="2026-10", now=sh(12, 10))
    assert october.figures.total.tasks == 1
    assert [t.task_id for t in october.overdue] == ["yantai-gas-00007"]


def test_monthly_ignores_what_was_reported_after_the_month() -> None:
    """A task contacted in December is still uncontacted in November's report."""
    late = entry("yantai-water", 1, sh(11, 30, 9), [("CONTACTED", sh(12, 1, 9))])
    report = monthly([late], BOOK, CALENDAR, month="2026-11", now=sh(12, 10))
    assert [t.task_id for t in report.overdue] == ["yantai-water-00001"]
    assert report.figures.total.rules[0] == RuleCount(FIRST_CONTACT, breached=1)


def test_monthly_refuses_a_month_not_begun() -> None:
    """December's report cannot be made in November."""
    with pytest.raises(ValueError, match="not begun"):
        monthly(november(), BOOK, CALENDAR, month="2026-12", now=NOV_20)


def test_complaint_figures_attach_to_their_groups() -> None:
    """The complaint loop's figures, keyed by level and group, attach to those groups only."""
    figures = figures_of(facts_at(november(), BOOK, CALENDAR, NOV_20), now=NOV_20)
    assert not figures.has_complaints
    complaints = ComplaintFigures(open=2, overdue=1, cleared=5, satisfaction=0.996, target=0.995)
    attached = with_complaints(figures, {("utility", "yantai-gas"): complaints})
    assert attached.has_complaints
    assert by_key(attached.by_utility, "yantai-gas").complaints == complaints
    assert by_key(attached.by_utility, "yantai-water").complaints is None
    assert replace(attached, by_utility=figures.by_utility) == figures


def test_a_group_with_complaints_only_is_shown_with_zero_tasks() -> None:
    """A utility and a district only the hotline brought work appear in their lists, sorted, with no tasks."""
    figures = figures_of(facts_at(november(), BOOK, CALENDAR, NOV_20), now=NOV_20)
    complaints = ComplaintFigures(open=1, overdue=0, cleared=0)
    attached = with_complaints(figures, {("utility", "zz-power"): complaints, ("district", "371502"): complaints})
    added = by_key(attached.by_utility, "zz-power")
    assert (added.tasks, added.closed, added.breached, added.complaints) == (0, 0, 0, complaints)
    assert [g.key for g in attached.by_utility] == sorted(g.key for g in attached.by_utility)
    assert by_key(attached.by_district, "371502").label.endswith("东昌府区")
    assert len(attached.by_utility) == len(figures.by_utility) + 1


def test_figures_are_cut_by_user_category_with_unknown_kept_apart() -> None:
    """002's ledger by category: tasks count under their category; entries from before the field under 未登记类别."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    base = TaskFacts("t", "yantai-water", "WATER", "APPLICATION", "370602", now, None, False, (), ())
    facts = [
        replace(base, task_id="a", user_category="RESIDENT"),
        replace(base, task_id="b", user_category="RESIDENT"),
        replace(base, task_id="c", user_category="ENTERPRISE"),
        replace(base, task_id="d"),
    ]
    figures = figures_of(facts, now=now)
    assert [(g.key, g.label, g.tasks) for g in figures.by_category] == [
        ("ENTERPRISE", "企业用户", 1),
        ("RESIDENT", "居民用户", 2),
        ("UNKNOWN", "未登记类别", 1),
    ]
