"""Satisfaction figures from the hotline's return visits (issue 16 item 3): 002's 99.5% target, 003's weighted score."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing.satisfaction import (
    RESULTS,
    SatisfactionPolicy,
    Visit,
    VisitResult,
    load_satisfaction_policy,
    month_of,
    monthly_figures,
    satisfaction,
)

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "config" / "satisfaction.yaml"


@pytest.fixture(scope="module")
def policy() -> SatisfactionPolicy:
    return load_satisfaction_policy(SHIPPED)


def _visit(result: VisitResult, *, utility: str = "yantai-water", region: str = "370602", day: int = 10) -> Visit:
    return Visit(utility, region, datetime(2026, 11, day, 2, tzinfo=UTC), result)


def test_the_shipped_policy_carries_002s_target_and_its_sentence(policy: SatisfactionPolicy) -> None:
    """The target is 99.5% and cites Liaocheng's sentence; the score cites Zhaoyuan's weighting."""
    assert (policy.target.rate, "99.5%" in policy.target.source.quote, "权重" in policy.score_source.quote) == (
        0.995,
        True,
        True,
    )


def test_satisfied_and_basically_satisfied_count_unreachable_does_not(policy: SatisfactionPolicy) -> None:
    """Two satisfied, one basically, one unsatisfied, one unreachable: 3 of 4 counted answers, score 70."""
    figures = satisfaction(["SATISFIED", "SATISFIED", "BASICALLY_SATISFIED", "UNSATISFIED", "UNREACHABLE"], policy)
    assert (figures.counted, figures.rate, figures.score, figures.meets_target) == (4, 0.75, 70.0, False)
    assert dict(figures.counts) == {
        "SATISFIED": 2,
        "BASICALLY_SATISFIED": 1,
        "UNSATISFIED": 1,
        "UNREACHABLE": 1,
    }


def test_one_unsatisfied_in_two_hundred_meets_the_target_two_do_not(policy: SatisfactionPolicy) -> None:
    """199/200 is exactly 99.5% and meets it; 198/200 is 99% and misses it."""
    one = satisfaction(["SATISFIED"] * 199 + ["UNSATISFIED"], policy)
    two = satisfaction(["SATISFIED"] * 198 + ["UNSATISFIED"] * 2, policy)
    assert ((one.rate, one.meets_target), (two.rate, two.meets_target)) == ((0.995, True), (0.99, False))


def test_a_month_without_a_reachable_user_has_no_rate_rather_than_zero(policy: SatisfactionPolicy) -> None:
    """Only unreachable users: nothing counted, so no rate, no score, no verdict."""
    figures = satisfaction(["UNREACHABLE", "UNREACHABLE"], policy)
    assert (figures.counted, figures.rate, figures.score, figures.meets_target) == (0, None, None, None)


def test_visits_are_grouped_by_month_in_shanghai_time(policy: SatisfactionPolicy) -> None:
    """A visit at 2026-11-30 17:00 UTC is on 1 December in Shanghai and counts for December."""
    late = Visit("yantai-water", "370602", datetime(2026, 11, 30, 17, tzinfo=UTC), "UNSATISFIED")
    table = monthly_figures([_visit("SATISFIED"), late], policy, by="utility")
    assert {key: f.rate for key, f in table.items()} == {
        ("2026-11", "yantai-water"): 1.0,
        ("2026-12", "yantai-water"): 0.0,
    }
    assert month_of(late.visited_at) == "2026-12"


def test_figures_are_cut_by_utility_district_or_city(policy: SatisfactionPolicy) -> None:
    """The same visits give one row per utility, per district code, or per city code."""
    visits = [
        _visit("SATISFIED", utility="yantai-water", region="370602"),
        _visit("UNSATISFIED", utility="yantai-gas", region="370602"),
        _visit("SATISFIED", utility="yantai-gas", region="370613"),
    ]
    keys = {by: sorted(k for _, k in monthly_figures(visits, policy, by=by)) for by in ("utility", "district", "city")}
    assert keys == {
        "utility": ["yantai-gas", "yantai-water"],
        "district": ["370602", "370613"],
        "city": ["370600"],
    }


def test_a_policy_counting_an_answer_without_a_weight_is_refused() -> None:
    """Every counted answer needs a weight: the error names the key and the answer."""
    with pytest.raises(ValueError, match=r"weights: no weight for counted result \['UNSATISFIED'\]"):
        SatisfactionPolicy.model_validate(
            {
                "target": {"rate": 0.995, "source": {"document": "002", "quote": "不低于 99.5%"}},
                "satisfied": ["SATISFIED"],
                "counted": ["SATISFIED", "UNSATISFIED"],
                "weights": {"SATISFIED": 100},
                "score_source": {"document": "003", "quote": "权重"},
                "reading": "test",
            }
        )


def test_a_satisfied_answer_that_is_not_counted_is_refused() -> None:
    """Counting an answer as satisfied but leaving it out of the denominator would push the rate over 100%."""
    with pytest.raises(ValueError, match="must also be counted"):
        SatisfactionPolicy.model_validate(
            {
                "target": {"rate": 0.995, "source": {"document": "002", "quote": "q"}},
                "satisfied": ["SATISFIED", "UNREACHABLE"],
                "counted": ["SATISFIED"],
                "weights": {"SATISFIED": 100},
                "score_source": {"document": "003", "quote": "q"},
                "reading": "test",
            }
        )


def test_a_broken_policy_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    """A rate over 1 in the file is refused with the file's path and ``target.rate``."""
    bad = tmp_path / "satisfaction.yaml"
    bad.write_text(SHIPPED.read_text(encoding="utf-8").replace("rate: 0.995", "rate: 99.5"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"satisfaction.yaml: target.rate"):
        load_satisfaction_policy(bad)


def test_every_answer_has_a_count_even_when_zero(policy: SatisfactionPolicy) -> None:
    """The counts always list the four answers, so a table of them has no holes."""
    assert tuple(satisfaction(["SATISFIED"], policy).counts) == RESULTS
