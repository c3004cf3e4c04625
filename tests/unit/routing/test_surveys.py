"""Joint site surveys (issue 18 item 2) on plain data: who is grouped, the slot, rounds, agreement, fallback."""

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from routing.calendar import SHANGHAI, load_calendar
from routing.errors import DataError
from routing.surveys import (
    Group,
    OpenTask,
    RegionSurveys,
    Reply,
    Slot,
    Survey,
    apply_reply,
    joint_groups,
    load_survey_policy,
    proposal_record,
    propose,
    survey_id,
    survey_of,
)
from schemas import Codec

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_survey_policy(ROOT / "deploy" / "config" / "surveys.yaml")
CAL = load_calendar(ROOT / "deploy" / "config" / "calendar.yaml")
SEEDS = ROOT / "tests" / "data" / "seeds"
ZHAOYUAN, ZHIFU = "370685", "370602"
ZY = POLICY.for_region(ZHAOYUAN)
FRIDAY = datetime(2026, 12, 4, 15, tzinfo=SHANGHAI)


def task(n: int, utility: str, project: str | None = "P1", region: str = ZHAOYUAN) -> OpenTask:
    """An open task of ``utility`` for ``project``."""
    return OpenTask(f"t{n}", utility, project, region)


def survey(*utilities: str) -> Survey:
    """Round 1 of a survey of ``utilities`` on project P1 in Zhaoyuan, proposed on Friday afternoon."""
    group = Group("P1", ZHAOYUAN, {u: f"t-{u}" for u in utilities})
    return propose(group, ZY, CAL, now=FRIDAY)


def accept(utility: str) -> Reply:
    """``utility`` accepts the slot on the table."""
    return Reply(utility, "ACCEPT", None, FRIDAY)


def counter(utility: str, start: datetime) -> Reply:
    """``utility`` proposes two hours from ``start``."""
    return Reply(utility, "COUNTER", Slot(start, start + timedelta(hours=2)), FRIDAY)


@pytest.mark.parametrize("region", [POLICY.default, *POLICY.regions], ids=lambda r: ",".join(r.regions) or "default")
def test_every_rule_quotes_its_seed_verbatim(region: RegionSurveys) -> None:
    """The quoted sentence (parts joined by …) is 003's own text."""
    source = region.source
    (path,) = SEEDS.glob("003_*.txt")
    text = re.sub(r"\s+", "", path.read_text(encoding="utf-8"))
    assert [part for part in re.sub(r"\s+", "", source.quote).split("…") if part not in text] == []


def test_off_by_default_and_on_where_a_region_enables_it() -> None:
    """Zhaoyuan (003's city) enables joint surveys; elsewhere they are off."""
    assert (POLICY.default.enabled, ZY.enabled, POLICY.for_region(ZHIFU).enabled) == (False, True, False)


def test_a_project_with_two_utilities_makes_one_group_per_region_that_enables_it() -> None:
    """Two utilities on P1 in Zhaoyuan: a group; one utility, no project code, or a region off: none."""
    tasks = [
        task(1, "zhaoyuan-gas"),
        task(2, "zhaoyuan-water"),
        task(3, "zhaoyuan-gas"),  # a second task of the same utility: its first one speaks for it
        task(4, "zhaoyuan-gas", "P2"),
        task(5, "zhaoyuan-gas", None),
        task(6, "zhaoyuan-water", None),
        task(7, "yantai-gas", "P3", ZHIFU),
        task(8, "yantai-water", "P3", ZHIFU),
    ]
    assert joint_groups(tasks, POLICY) == [Group("P1", ZHAOYUAN, {"zhaoyuan-gas": "t1", "zhaoyuan-water": "t2"})]


def test_the_slot_is_the_policys_hour_after_the_lead_time_in_working_days() -> None:
    """Proposed Friday: one working day of lead time skips the weekend and Monday; Tuesday 09:30-11:30."""
    proposed = survey("zhaoyuan-gas", "zhaoyuan-water")
    tuesday = datetime(2026, 12, 8, 9, 30, tzinfo=SHANGHAI)
    assert (proposed.slot, proposed.round, proposed.state) == (
        Slot(tuesday, tuesday + timedelta(hours=2)),
        1,
        "PROPOSED",
    )
    assert proposed.lead_department == "招远市住房和城乡建设局"


def test_every_utility_accepting_agrees_the_slot() -> None:
    """One acceptance of three leaves it proposed; the third makes it AGREED; a late reply changes nothing."""
    proposed = survey("gas", "heat", "water")
    once = apply_reply(proposed, accept("gas"), ZY)
    assert (once.state, once.accepted) == ("PROPOSED", {"gas"})
    agreed = apply_reply(apply_reply(once, accept("water"), ZY), accept("heat"), ZY)
    assert agreed.state == "AGREED" and agreed.slot == proposed.slot
    assert apply_reply(agreed, counter("gas", FRIDAY + timedelta(days=10)), ZY) == agreed


def test_a_counter_proposal_is_the_next_round_for_all() -> None:
    """A counter puts its slot on the table (its proposer accepting it); earlier acceptances no longer count."""
    proposed = apply_reply(survey("gas", "water"), accept("gas"), ZY)
    wednesday = datetime(2026, 12, 9, 14, tzinfo=SHANGHAI)
    countered = apply_reply(proposed, counter("water", wednesday), ZY)
    assert (countered.round, countered.slot.start, countered.accepted) == (2, wednesday, {"water"})
    assert apply_reply(countered, accept("gas"), ZY).state == "AGREED"


def test_past_the_last_round_the_utilities_visit_separately() -> None:
    """max_rounds (3) counters without agreement: SEPARATE, and nothing changes it after."""
    current = survey("gas", "water")
    for n in range(ZY.max_rounds):
        current = apply_reply(current, counter("gas" if n % 2 else "water", FRIDAY + timedelta(days=5 + n)), ZY)
    assert current.state == "SEPARATE"
    assert apply_reply(current, accept("gas"), ZY).state == "SEPARATE"


@pytest.mark.parametrize(
    ("reply", "field"),
    [
        (accept("stranger"), "utility_id"),
        (Reply("gas", "COUNTER", None, FRIDAY), "slot"),
        (Reply("gas", "COUNTER", Slot(FRIDAY, FRIDAY - timedelta(hours=1)), FRIDAY), "slot"),
    ],
)
def test_a_bad_reply_is_refused_naming_its_field(reply: Reply, field: str) -> None:
    """A reply from outside the survey, or a counter without a sound slot: a DataError on that field."""
    with pytest.raises(DataError) as refused:
        apply_reply(survey("gas", "water"), reply, ZY)
    assert refused.value.field == field


def test_a_survey_of_one_utility_is_refused() -> None:
    """Joint means two utilities or more."""
    with pytest.raises(DataError, match="two utilities or more"):
        propose(Group("P1", ZHAOYUAN, {"gas": "t1"}), ZY, CAL, now=FRIDAY)


@given(st.permutations(["gas", "heat", "power", "water"]))
def test_the_survey_id_does_not_depend_on_who_came_first(order: list[str]) -> None:
    """The same project and tasks give the same id, whatever the order (two processes agree)."""
    tasks = {utility: f"t-{utility}" for utility in order}
    assert survey_id(Group("P1", ZHAOYUAN, tasks)) == survey_id(Group("P1", ZHAOYUAN, dict(sorted(tasks.items()))))
    assert survey_id(Group("P1", ZHAOYUAN, tasks)) != survey_id(Group("P2", ZHAOYUAN, tasks))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["default"].update(regions=["37"]), "default.regions: the default applies wherever"),
        (lambda d: d["regions"].append(dict(d["regions"][0])), "370685 already has a policy"),
        (lambda d: d["regions"][0].update(max_rounds=0), "regions[0].max_rounds"),
        (lambda d: d["regions"][0].update(start="25:00"), "regions[0].start"),
        (lambda d: d["default"].pop("source"), "default.source"),
    ],
)
def test_a_bad_policy_file_names_the_key(tmp_path: Path, change: object, message: str) -> None:
    """Validation at start-up: the message names the file and the bad key."""
    document = yaml.safe_load((ROOT / "deploy" / "config" / "surveys.yaml").read_text(encoding="utf-8"))
    assert callable(change)
    change(document)
    path = tmp_path / "surveys.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_survey_policy(path)


def test_an_answer_to_an_earlier_round_changes_nothing() -> None:
    """Gas accepts round 1 after water's counter opened round 2: round 2's slot is not taken as accepted."""
    countered = apply_reply(survey("water", "gas"), counter("water", FRIDAY + timedelta(days=4)), ZY)
    late = apply_reply(countered, Reply("gas", "ACCEPT", None, FRIDAY, round=1), ZY)
    assert late == countered
    agreed = apply_reply(countered, Reply("gas", "ACCEPT", None, FRIDAY, round=2), ZY)
    assert (agreed.accepted, agreed.state) == ({"water", "gas"}, "AGREED")


def test_a_survey_round_trips_through_its_avro_record() -> None:
    """proposal_record then survey_of gives the survey back, through the codec."""
    held = apply_reply(survey("water", "gas", "heat"), accept("gas"), ZY)
    codec = Codec.default()
    record = codec.decode(codec.encode("SurveyProposal", proposal_record(held, proposed_by=None, at=FRIDAY)))[1]
    assert survey_of(record) == held
