import hashlib
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from routing.calendar import SHANGHAI, load_calendar
from routing.errors import DataError
from routing.records import SlaEvent, StageSpan, TaskLedgerEntry
from routing.sla import (
    SCENARIOS,
    Policy,
    PolicyNotFoundError,
    PolicyTable,
    evaluate,
    event_id,
    load_policies,
    parse_policies,
    scenario_for,
)
from schemas import Codec

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
CAL = load_calendar(CONFIG / "calendar.yaml")
TABLE = load_policies(CONFIG / "sla-policies.yaml")
LIAOCHENG = TABLE.policy_for("371502", "no_external_works")
ZHENGZHOU = TABLE.policy_for("410102", "no_external_works")
YANTAI_EXTERNAL = TABLE.policy_for("370602", "pipe_le_50m")
CREATED = datetime(2026, 3, 9, 9, tzinfo=SHANGHAI)  # a Monday


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def entry(
    *stages: tuple[Any, datetime],
    emitted: tuple[str, ...] = (),
    region: str = "371502",
    created: datetime = CREATED,
) -> TaskLedgerEntry:
    """A ledger entry created at ``created`` whose stages start at the given times (in time order)."""
    spans: list[StageSpan] = []
    for i, (stage, started) in enumerate(stages):
        ended = stages[i + 1][1] if i + 1 < len(stages) else None
        hours = None if ended is None else CAL.working_hours_between(started, ended)
        spans.append({"stage": stage, "started_at": started, "ended_at": ended, "elapsed_working_hours": hours})
    return {
        "task_id": "t" * 32,
        "utility_id": "liaocheng-water",
        "application_id": None,
        "kind": "APPLICATION",
        "service": "WATER",
        "region_code": region,
        "created_at": created,
        "scenario": "no_external_works",
        "pipe_length_m": None,
        "stage": stages[-1][0] if stages else None,
        "closed": any(stage in ("CLOSED", "REJECTED") for stage, _ in stages),
        "rejected_reason": None,
        "stages": spans,
        "emitted": list(emitted),
        "updated_at": CREATED,
    }


def summary(events: list[SlaEvent], rule: str | None = None) -> list[tuple[str, str, datetime, float]]:
    """(rule, kind, occurred_at in Shanghai, elapsed hours) of each event, optionally of one rule."""
    return [
        (e["rule"], e["kind"], e["occurred_at"].astimezone(SHANGHAI), round(e["elapsed_working_hours"], 6))
        for e in events
        if rule is None or e["rule"] == rule
    ]


# --- scenarios and the policy table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "scenario"),
    [
        (None, "no_external_works"),
        (0, "no_external_works"),
        (0.5, "pipe_le_20m"),
        (20, "pipe_le_20m"),
        (20.01, "pipe_le_50m"),
        (50, "pipe_le_50m"),
        (50.5, "pipe_le_200m"),
        (200, "pipe_le_200m"),
        (350, "pipe_le_200m"),
    ],
)
def test_scenario_for_pipe_length(length: float | None, scenario: str) -> None:
    """Pipe lengths map to the documented bands; beyond 200 m the 200 m rule still applies."""
    assert scenario == scenario_for(length)


@pytest.mark.parametrize("length", [-1.0, math.nan, math.inf])
def test_scenario_for_refuses_impossible_lengths(length: float) -> None:
    """A negative or non-finite length is a ValueError."""
    with pytest.raises(ValueError, match="pipe_length_m must be a finite length"):
        scenario_for(length)


@pytest.mark.parametrize(
    ("region", "scenario", "expected"),
    [
        ("371502", "no_external_works", ("liaocheng", 3.0, 3.0, None, ())),
        ("371502", "pipe_le_20m", ("liaocheng", 3.0, 5.0, None, ())),
        ("371526", "pipe_le_50m", ("liaocheng", 3.0, 5.0, None, ())),
        ("371502", "pipe_le_200m", ("liaocheng", 3.0, 10.0, None, ())),
        ("370602", "no_external_works", ("yantai", 3.0, 2.0, None, ())),
        ("370685", "pipe_le_20m", ("yantai", 3.0, 2.0, None, ())),
        ("370602", "pipe_le_50m", ("yantai", 3.0, 3.0, None, ("EXTERNAL_WORKS",))),
        ("370602", "pipe_le_200m", ("yantai", 3.0, 3.0, None, ("EXTERNAL_WORKS",))),
        ("370102", "no_external_works", ("shandong-default", 3.0, 3.0, None, ())),
        ("370202", "pipe_le_200m", ("shandong-default", 3.0, 10.0, None, ())),
        ("410102", "no_external_works", ("zhengzhou", None, 1.0, 0.5, ())),
        ("410102", "pipe_le_50m", ("zhengzhou", None, 2.0, 1.0, ())),
    ],
)
def test_shipped_policies_follow_design_section_7(region: str, scenario: str, expected: tuple[Any, ...]) -> None:
    """The shipped table gives DESIGN §7's limits, the most specific prefix winning."""
    policy = TABLE.policy_for(region, scenario)
    actual = (policy.policy_id, policy.first_contact_hours, policy.total_days, policy.step_days, policy.excluded_stages)
    assert (expected, scenario, 0.8) == (actual, policy.scenario, policy.warning_fraction)


def test_every_shipped_policy_names_its_seed_document() -> None:
    """Each shipped row cites the seed document its numbers come from."""
    assert [] == [p.policy_id for p in TABLE.policies if not re.search(r"seed 00[0-4]", p.source)]


def test_unknown_scenario_is_a_value_error() -> None:
    """A scenario outside SCENARIOS is a ValueError listing the valid ones."""
    with pytest.raises(ValueError, match="unknown scenario 'pipe_le_9m'"):
        TABLE.policy_for("371502", "pipe_le_9m")


def test_uncovered_region_is_a_data_error() -> None:
    """A region no row covers raises PolicyNotFoundError, a DataError on region_code."""
    with pytest.raises(PolicyNotFoundError) as info:
        TABLE.policy_for("110101", "no_external_works")
    assert ("region_code", True) == (info.value.field, isinstance(info.value, DataError))


def row(ident: str, prefix: str | int, **scenarios: Any) -> dict[str, Any]:
    return {"id": ident, "region_prefix": prefix, "source": f"doc {ident}", "scenarios": scenarios}


def test_empty_prefix_is_the_default_and_fallback_is_per_scenario() -> None:
    """A "" row covers every region; a city row without a scenario falls back to a shorter prefix."""
    table = parse_policies(
        {
            "policies": [
                row("everywhere", "", no_external_works={"total_days": 4}, pipe_le_20m={"total_days": 6}),
                row("yantai", "3706", no_external_works={"total_days": 2}),
            ]
        }
    )
    picks = [
        table.policy_for("110101", "no_external_works").policy_id,
        table.policy_for("370602", "no_external_works").policy_id,
        table.policy_for("370602", "pipe_le_20m").policy_id,
    ]
    assert ["everywhere", "yantai", "everywhere"] == picks


def test_warning_fraction_defaults_and_overrides() -> None:
    """The document's warning_fraction applies to every row unless a row sets its own."""
    rows = [row("a", "3706", no_external_works={"total_days": 2})]
    rows.append({**row("b", "3715", no_external_works={"total_days": 2}), "warning_fraction": 0.9})
    doc = {"warning_fraction": 0.5, "policies": rows}
    table = parse_policies(doc)
    assert (0.5, 0.9) == tuple(table.policy_for(r, "no_external_works").warning_fraction for r in ("370602", "371502"))


def test_table_refuses_two_policies_for_one_prefix_and_scenario() -> None:
    """Two policies for the same prefix and scenario are a ValueError naming both."""
    policy = Policy("a", "37", "no_external_works", "doc", 3.0, None, None)
    with pytest.raises(ValueError, match="'a' and 'b' both set prefix '37' no_external_works"):
        PolicyTable((policy, Policy("b", "37", "no_external_works", "doc", 3.0, None, None)))


GOOD = {"no_external_works": {"total_days": 3}}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a mapping with 'policies'"),
        ({"policies": [], "version": 1}, "unknown keys ['version']"),
        ({"policies": []}, "policies: must be a non-empty list"),
        ({"policies": ["x"]}, "policies[0]: must be a mapping"),
        ({"policies": [row("a", "37", **GOOD), row("a", "3706", **GOOD)]}, "policies[1].id: 'a' is already used"),
        ({"policies": [{**row("a", "37", **GOOD), "limit": 1}]}, "policies[0]: unknown keys ['limit']"),
        ({"policies": [{**row("a", "37", **GOOD), "source": " "}]}, "policies[0].source: must be a non-empty string"),
        ({"policies": [row("a", "37A6", **GOOD)]}, "policies[0].region_prefix: '37A6' is not '' or 2-6 digits"),
        ({"policies": [row("a", "3799", **GOOD)]}, "policies[0].region_prefix: '3799' is not the prefix of a known"),
        ({"policies": [row("a", "99", **GOOD)]}, "policies[0].region_prefix: '99' is not the prefix of a known"),
        ({"policies": [row("a", "37")]}, "policies[0].scenarios: must map scenarios"),
        ({"policies": [row("a", "37", pipe_le_9m={"total_days": 1})]}, "scenarios.pipe_le_9m: unknown scenario"),
        ({"policies": [row("a", "37", no_external_works=3)]}, "scenarios.no_external_works: must be a mapping"),
        ({"policies": [row("a", "37", no_external_works={"days": 3})]}, "no_external_works: unknown keys ['days']"),
        ({"policies": [row("a", "37", no_external_works={"total_days": 0})]}, "total_days: must be a positive number"),
        ({"policies": [row("a", "37", no_external_works={"step_days": True})]}, "step_days: must be a positive"),
        ({"policies": [row("a", "37", no_external_works={})]}, "no_external_works: sets no limit"),
        (
            {"policies": [row("a", "37", no_external_works={"total_days": 3, "excluded_stages": ["CLOSED"]})]},
            "excluded_stages[0]: 'CLOSED' is not one of",
        ),
        (
            {"policies": [row("a", "37", no_external_works={"total_days": 3, "excluded_stages": "EXTERNAL_WORKS"})]},
            "excluded_stages: must be a list of stages",
        ),
        ({"warning_fraction": 1, "policies": [row("a", "37", **GOOD)]}, "warning_fraction: must be a number between"),
        (
            {"policies": [{**row("a", "37", **GOOD), "warning_fraction": 0}]},
            "policies[0].warning_fraction: must be a positive",
        ),
        (
            {"policies": [{**row("a", "37", **GOOD), "first_contact_hours": "3h"}]},
            "policies[0].first_contact_hours: must be a positive number or null, got '3h'",
        ),
        ({"policies": [row("a", "37", **GOOD), row("b", "37", **GOOD)]}, "'a' and 'b' both set prefix '37'"),
    ],
)
def test_invalid_policy_documents_name_origin_and_key(doc: Any, message: str) -> None:
    """Every malformed policy document is a ValueError naming the file and the key."""
    with pytest.raises(ValueError, match=r"^sla-policies\.yaml: (.*)?" + re.escape(message)):
        parse_policies(doc, origin="sla-policies.yaml")


def test_unquoted_prefix_is_read_as_digits() -> None:
    """A prefix written without quotes (an int in YAML) is accepted as its digits."""
    table = parse_policies({"policies": [row("a", 3706, **GOOD)]})
    assert "3706" == table.policies[0].region_prefix


def test_load_refuses_invalid_yaml(tmp_path: Path) -> None:
    """A policy file that is not YAML is a ValueError naming the file."""
    path = tmp_path / "sla-policies.yaml"
    path.write_text("policies: [", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}: not valid YAML")):
        load_policies(path)


# --- first_contact: 3 working hours from creation (Liaocheng row) -------------------------------------------


def test_first_contact_still_inside_warning_threshold_emits_nothing() -> None:
    """Two working hours after creation the 3-hour clock is below 80 %: no event."""
    assert [] == evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, sh(3, 9, 11))


def test_first_contact_warning_at_eighty_percent() -> None:
    """At 11:30 (2.5 h) the clock has passed 2.4 h: WARNING, occurred 11:24, due at 12:00."""
    events = evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, sh(3, 9, 11, 30))
    due = [e["due_at"].astimezone(SHANGHAI) for e in events]
    assert ([("first_contact", "WARNING", sh(3, 9, 11, 24), 2.5)], [sh(3, 9, 12)]) == (summary(events), due)


def test_first_contact_breached_while_open_emits_warning_and_breach() -> None:
    """At 14:00 (3.5 h) with nothing emitted yet: WARNING at 11:24 and BREACHED at the due instant 12:00."""
    events = evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, sh(3, 9, 14))
    expected = [
        ("first_contact", "WARNING", sh(3, 9, 11, 24), 3.5),
        ("first_contact", "BREACHED", sh(3, 9, 12), 3.5),
    ]
    assert expected == summary(events)


def test_first_contact_breach_after_warning_emits_only_the_breach() -> None:
    """With the WARNING already emitted, the breach alone is new."""
    warned = entry(("RECEIVED", CREATED), emitted=(event_id("t" * 32, "first_contact", "WARNING"),))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 3.5)] == summary(evaluate(warned, LIAOCHENG, CAL, sh(3, 9, 14)))


def test_first_contact_met_when_contacted_in_time() -> None:
    """CONTACTED at 11:00 (2 h) meets the rule: MET at 11:00 and no warning."""
    events = evaluate(entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 11))), LIAOCHENG, CAL, sh(3, 9, 11, 5))
    assert [("first_contact", "MET", sh(3, 9, 11), 2.0)] == summary(events, "first_contact")


def test_first_contact_closed_late_is_breached_without_warning() -> None:
    """CONTACTED at 15:00 (4.5 h) closed the rule late: BREACHED at 12:00, no WARNING for a closed rule."""
    events = evaluate(entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 15))), LIAOCHENG, CAL, sh(3, 9, 15))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 4.5)] == summary(events, "first_contact")


def test_friday_afternoon_task_is_due_monday_morning() -> None:
    """A task created Friday 16:30 is not breached on Monday at 10:00, and breached at 10:31 (due 10:30)."""
    friday = entry(("RECEIVED", sh(3, 6, 16, 30)), created=sh(3, 6, 16, 30))
    early = summary(evaluate(friday, LIAOCHENG, CAL, sh(3, 9, 10)))
    late = summary(evaluate(friday, LIAOCHENG, CAL, sh(3, 9, 10, 31)), "first_contact")
    assert ([("first_contact", "WARNING", sh(3, 9, 9, 54), 2.5)], sh(3, 9, 10, 30)) == (early, late[-1][2])


def test_later_stage_closes_first_contact() -> None:
    """A SURVEYED report without CONTACTED shows contact was made by then."""
    events = evaluate(entry(("RECEIVED", CREATED), ("SURVEYED", sh(3, 9, 10))), LIAOCHENG, CAL, sh(3, 9, 10))
    assert [("first_contact", "MET", sh(3, 9, 10), 1.0)] == summary(events, "first_contact")


def test_outcome_is_never_reversed() -> None:
    """After BREACHED was emitted, a late report that makes the rule look met emits no MET."""
    breached = event_id("t" * 32, "first_contact", "BREACHED")
    late = entry(("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 10)), emitted=(breached,))
    assert [] == summary(evaluate(late, LIAOCHENG, CAL, sh(3, 9, 16)), "first_contact")


def test_emitted_events_are_not_emitted_again() -> None:
    """Evaluating again after the events were recorded returns nothing new."""
    first = evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, sh(3, 9, 14))
    again = entry(("RECEIVED", CREATED), emitted=tuple(e["event_id"] for e in first))
    assert (2, []) == (len(first), evaluate(again, LIAOCHENG, CAL, sh(3, 9, 16)))


# --- total: 3 working days (22.5 h) from creation (Liaocheng row) --------------------------------------------

CONTACTED_EARLY = ("CONTACTED", sh(3, 9, 10))


def test_total_warning_at_eighty_percent() -> None:
    """18 working hours after Monday 09:00 is Wednesday 12:00: WARNING; due Thursday 09:00."""
    events = evaluate(entry(("RECEIVED", CREATED), CONTACTED_EARLY), LIAOCHENG, CAL, sh(3, 11, 14))
    total = [e for e in events if e["rule"] == "total"]
    due = [e["due_at"].astimezone(SHANGHAI) for e in total]
    assert ([("total", "WARNING", sh(3, 11, 12), 18.5)], [sh(3, 12, 9)]) == (summary(total), due)


def test_total_breached_while_open() -> None:
    """On Thursday at 10:00 the 22.5 h are exceeded: BREACHED at Thursday 09:00."""
    events = evaluate(entry(("RECEIVED", CREATED), CONTACTED_EARLY), LIAOCHENG, CAL, sh(3, 12, 10))
    assert ["WARNING", "BREACHED"] == [kind for _, kind, _, _ in summary(events, "total")]
    assert ("total", "BREACHED", sh(3, 12, 9), 23.5) == summary(events, "total")[1]


def test_total_met_when_connected_in_time() -> None:
    """CONNECTED on Wednesday 10:00 (16 h) meets the 3-day total."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CONNECTED", sh(3, 11, 10)))
    assert [("total", "MET", sh(3, 11, 10), 16.0)] == summary(
        evaluate(entry(*stages), LIAOCHENG, CAL, sh(3, 13)), "total"
    )


def test_total_closed_late_is_breached() -> None:
    """CONNECTED on Friday 09:00 (30 h) closed the total late: BREACHED at Thursday 09:00."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CONNECTED", sh(3, 13, 9)))
    assert [("total", "BREACHED", sh(3, 12, 9), 30.0)] == summary(
        evaluate(entry(*stages), LIAOCHENG, CAL, sh(3, 13, 9)), "total"
    )


def test_total_across_national_day_is_not_breached() -> None:
    """A task created 2026-09-30 09:00 is due on the make-up Saturday Oct 10 at 09:00, not during the holiday."""
    created = sh(9, 30, 9)
    task = entry(("RECEIVED", created), ("CONTACTED", sh(9, 30, 10)), created=created)
    quiet = evaluate(task, LIAOCHENG, CAL, sh(10, 7, 17))
    late = evaluate(task, LIAOCHENG, CAL, sh(10, 10, 10))
    assert ([], sh(10, 10, 9)) == (summary(quiet, "total"), summary(late, "total")[-1][2])


# --- step rules: Zhengzhou, 0.5 working day per step, 1 day total without external works ---------------------


def test_zhengzhou_steps_and_total() -> None:
    """RECEIVED took 3.5 h (MET); CONTACTED open 4 h breaches its 3.75 h step; the total at exactly 7.5 h warns."""
    stages = (("RECEIVED", CREATED), ("CONTACTED", sh(3, 9, 14)))
    events = evaluate(entry(*stages, region="410102"), ZHENGZHOU, CAL, sh(3, 10, 9))
    expected = [
        ("step:RECEIVED", "MET", sh(3, 9, 14), 3.5),
        ("total", "WARNING", sh(3, 9, 16, 30), 7.5),
        ("step:CONTACTED", "WARNING", sh(3, 9, 17), 4.0),
        ("step:CONTACTED", "BREACHED", sh(3, 10, 8, 45), 4.0),
    ]
    assert expected == summary(events)


def test_zhengzhou_has_no_first_contact_rule() -> None:
    """Outside Shandong no 3-hour rule applies: no first_contact event however late."""
    events = evaluate(entry(("RECEIVED", CREATED), region="410102"), ZHENGZHOU, CAL, sh(3, 20))
    assert [] == summary(events, "first_contact")


# --- Yantai: with external works, design and construction time is excluded from the total ------------------


def test_yantai_total_is_paused_during_external_works() -> None:
    """Three weeks in EXTERNAL_WORKS after 3.5 counted hours raise no total event."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 9, 14)))
    assert [] == summary(evaluate(entry(*stages, region="370602"), YANTAI_EXTERNAL, CAL, sh(3, 30)), "total")


def test_yantai_total_met_and_due_shifted_by_excluded_works() -> None:
    """Connected after two weeks of works: MET with 3.5 h counted; due moves to Wednesday 3-25 15:30."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 9, 14)), ("CONNECTED", sh(3, 23, 10)))
    events = [e for e in evaluate(entry(*stages), YANTAI_EXTERNAL, CAL, sh(3, 23, 10)) if e["rule"] == "total"]
    due = [e["due_at"].astimezone(SHANGHAI) for e in events]
    assert ([("total", "MET", sh(3, 23, 10), 3.5)], [sh(3, 25, 15, 30)]) == (summary(events), due)


def test_yantai_total_breached_before_works_started() -> None:
    """Works starting after the limit ran out do not hide the breach: 45 h counted, BREACHED at Thursday 09:00."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("EXTERNAL_WORKS", sh(3, 17, 9)))
    events = evaluate(entry(*stages), YANTAI_EXTERNAL, CAL, sh(3, 30))
    expected = [("total", "WARNING", sh(3, 11, 12), 45.0), ("total", "BREACHED", sh(3, 12, 9), 45.0)]
    assert expected == summary(events, "total")


# --- ended tasks ------------------------------------------------------------------------------------------------


def test_rejected_task_keeps_a_breach_that_already_happened() -> None:
    """Rejected at 15:00 with no contact: the 12:00 breach is emitted, no warning, and the total stays silent."""
    stages = (("RECEIVED", CREATED), ("REJECTED", sh(3, 9, 15)))
    assert [("first_contact", "BREACHED", sh(3, 9, 12), 4.5)] == summary(
        evaluate(entry(*stages), LIAOCHENG, CAL, sh(4, 1))
    )


def test_rejected_task_in_time_emits_nothing_later() -> None:
    """Rejected at 11:00 (2 h): nothing is due for open rules, however late the evaluation."""
    stages = (("RECEIVED", CREATED), ("REJECTED", sh(3, 9, 11)))
    assert [] == evaluate(entry(*stages), LIAOCHENG, CAL, sh(4, 1))


def test_closed_task_without_connected_report_counts_total_to_closing() -> None:
    """A CLOSED task whose CONNECTED report is missing has its total measured to CLOSED."""
    stages = (("RECEIVED", CREATED), CONTACTED_EARLY, ("CLOSED", sh(3, 10, 9)))
    assert [("total", "MET", sh(3, 10, 9), 7.5)] == summary(evaluate(entry(*stages), LIAOCHENG, CAL, sh(4, 1)), "total")


# --- the events themselves ---------------------------------------------------------------------------------------


def test_event_is_complete_utc_and_encodes_as_avro() -> None:
    """Every SlaEvent key is set, times are UTC, emitted_at is now, and the record round-trips through Avro."""
    now = sh(3, 9, 14)
    event = evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, now)[1]
    digest = hashlib.sha256("\x1f".join(("t" * 32, "first_contact", "BREACHED")).encode()).hexdigest()[:32]
    codec = Codec.default()
    assert (set(SlaEvent.__annotations__), digest, now.astimezone(UTC), "Asia/Shanghai") == (
        set(event),
        event["event_id"],
        event["emitted_at"],
        event["time_zone"],
    )
    assert {UTC} == {event[key].tzinfo for key in ("started_at", "due_at", "occurred_at", "emitted_at")}
    assert ("SlaEvent", event) == codec.decode(codec.encode("SlaEvent", event))
    expected = ("liaocheng", LIAOCHENG.source, "371502", "no_external_works", 3.0, CREATED.astimezone(UTC))
    actual = (
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
    assert evaluate(task, LIAOCHENG, CAL, sh(3, 13)) == evaluate(task, LIAOCHENG, CAL, sh(3, 13))


def test_naive_now_is_refused() -> None:
    """A naive clock is a ValueError."""
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        evaluate(entry(("RECEIVED", CREATED)), LIAOCHENG, CAL, datetime(2026, 3, 9, 14))  # noqa: DTZ001


def test_custom_warning_fraction_moves_the_warning() -> None:
    """With warning_fraction 0.5 the first-contact warning comes at 1.5 h (10:30)."""
    policy = Policy("p", "37", "no_external_works", "doc", 3.0, None, None, warning_fraction=0.5)
    events = evaluate(entry(("RECEIVED", CREATED)), policy, CAL, sh(3, 9, 10, 45))
    assert [("first_contact", "WARNING", sh(3, 9, 10, 30), 1.75)] == summary(events)


def test_scenarios_constant_lists_the_four_bands() -> None:
    """SCENARIOS names the four documented bands in increasing order."""
    assert ("no_external_works", "pipe_le_20m", "pipe_le_50m", "pipe_le_200m") == SCENARIOS
