"""The approval-event generator: realism of each event, of each project's story, and determinism."""

import random
import re
from collections import defaultdict
from datetime import datetime, time
from typing import Any

import pytest
from stdnum.cn import uscc

from simulators.approval.generator import (
    BLSJ_FORMAT,
    DEFECTS,
    SERVED_REGIONS,
    SHANGHAI,
    UNSERVED_REGIONS,
    EventGenerator,
    advance_office_time,
    inject_defect,
    org_code_check,
    uscc_check,
)

PROJECT_CODE = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$")
MOBILE = re.compile(r"^1[3-9]\d{9}$")
KNOWN_REGIONS = SERVED_REGIONS.keys() | UNSERVED_REGIONS.keys()
STORY = [(stage, status) for stage in (1, 2, 3, 4) for status in (1, 11)]


def defect_of(event: dict[str, Any]) -> str | None:
    """Name the defect an event carries, judged only from the published contract."""
    found = []
    if not PROJECT_CODE.match(event["xmdm"]):
        found.append("project_code")
    if event["jsddxzqh"] not in KNOWN_REGIONS:
        found.append("region")
    if "xmmc" not in event:
        found.append("missing_name")
    try:
        datetime.strptime(event["blsj"], BLSJ_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        found.append("bad_time")
    if event["dybzspjdxh"] not in (1, 2, 3, 4):
        found.append("bad_stage")
    assert len(found) <= 1, f"event {event['seq']} carries several defects: {found}"
    return found[0] if found else None


def by_project(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group events by project code, keeping feed order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        groups[event["xmdm"]].append(event)
    return groups


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    """A long, clean feed split over several calls."""
    generator = EventGenerator(seed=3)
    return [event for _ in range(4) for event in generator.generate(800)]


def test_same_seed_and_calls_give_identical_events() -> None:
    """Two generators with one seed agree event for event, across successive calls."""
    first, second = EventGenerator(seed=5), EventGenerator(seed=5)
    expected = first.generate(60, invalid_rate=0.1, unserved_rate=0.2) + first.generate(40)
    actual = second.generate(60, invalid_rate=0.1, unserved_rate=0.2) + second.generate(40)
    assert expected == actual


def test_other_seed_gives_other_events() -> None:
    """A different seed tells a different story."""
    assert EventGenerator(seed=5).generate(30) != EventGenerator(seed=6).generate(30)


def test_seq_is_strictly_increasing_across_calls(events: list[dict[str, Any]]) -> None:
    """Seq starts at 1 and grows by one, also across generate calls."""
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))


def test_blsj_increases_within_office_hours(events: list[dict[str, Any]]) -> None:
    """Handling times never go back and fall on weekdays between 09:00 and 17:30, from 2026-11-02."""
    times = [datetime.strptime(event["blsj"], BLSJ_FORMAT).replace(tzinfo=SHANGHAI) for event in events]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert times[0] >= datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
    assert all(moment.weekday() < 5 and time(9) <= moment.time() <= time(17, 30) for moment in times)


def test_project_codes_match_the_national_format(events: list[dict[str, Any]]) -> None:
    """Project codes match the pattern, carry a 2024-2026 year and the site's region."""
    for event in events:
        assert PROJECT_CODE.match(event["xmdm"])
        year, region = event["xmdm"].split("-")[:2]
        assert 2024 <= int(year) <= 2026
        assert region == event["jsddxzqh"]


def test_clean_feed_stays_in_served_regions(events: list[dict[str, Any]]) -> None:
    """Without unserved_rate every site lies in a served Shandong region, named in its address."""
    for event in events:
        city, district = SERVED_REGIONS[event["jsddxzqh"]]
        assert event["jsdd"].startswith(f"山东省{city}{district}")


def test_builder_codes_are_valid_uscc(events: list[dict[str, Any]]) -> None:
    """Every builder's 统一社会信用代码 passes python-stdnum and is registered in the site's region."""
    for code in {(event["jsdwdm"], event["jsddxzqh"]) for event in events}:
        assert uscc.validate(code[0]) == code[0]
        assert code[0][2:8] == code[1]
        assert org_code_check(code[0][8:16]) == code[0][16]


@pytest.mark.parametrize(
    ("body", "check"),
    [("60003734", "1"), ("18724467", "X"), ("00000000", "0")],
    ids=["digit", "ten", "eleven"],
)
def test_org_code_check_follows_gb_11714(body: str, check: str) -> None:
    """The organisation-code check maps 10 to X and 11 to 0."""
    assert org_code_check(body) == check


def test_uscc_check_matches_a_published_code() -> None:
    """The check character of a published code is reproduced."""
    assert uscc_check("91110000600037341") == "L"


def test_contacts_have_names_and_mobiles(events: list[dict[str, Any]]) -> None:
    """Contacts are two- or three-character names with valid mainland mobile numbers."""
    for event in events:
        assert MOBILE.match(event["lxrsjh"])
        assert 2 <= len(event["lxr"]) <= 3


def test_each_project_walks_the_stages_in_order(events: list[dict[str, Any]]) -> None:
    """A project's steps are a prefix of receive/grant per stage, or end at a refusal."""
    for steps in by_project(events).values():
        story = [(event["dybzspjdxh"], event["blzt"]) for event in steps]
        if story[-1][1] == 13:  # a refusal takes the place of the grant and ends the story
            story[-1] = (story[-1][0], 11)
        assert story == STORY[: len(story)]


def test_about_three_percent_of_items_are_refused(events: list[dict[str, Any]]) -> None:
    """Refusals happen, and at a low rate per decided item."""
    decisions = [event["blzt"] for event in events if event["blzt"] in (11, 13)]
    refused = decisions.count(13) / len(decisions)
    assert 0.01 <= refused <= 0.06


def test_projects_interleave(events: list[dict[str, Any]]) -> None:
    """Several projects are in flight at once, so one project's steps are split by others'."""
    interleaved = 0
    for steps in by_project(events).values():
        if steps[-1]["seq"] - steps[0]["seq"] + 1 > len(steps):
            interleaved += 1
    assert interleaved > len(by_project(events)) / 2


def test_item_instances_pair_receive_and_decision(events: list[dict[str, Any]]) -> None:
    """Each item instance code belongs to one project and stage: its receipt then its decision."""
    instances: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for event in events:
        instances[event["spsxslbm"]].append((event["xmdm"], event["dybzspjdxh"], event["blzt"]))
    for steps in instances.values():
        assert len({(project, stage) for project, stage, _ in steps}) == 1
        assert [status for _, _, status in steps][:1] == [1]
        assert len(steps) <= 2


def test_item_names_follow_the_stage(events: list[dict[str, Any]]) -> None:
    """Stages carry their real item names."""
    names = {(event["dybzspjdxh"], event["spsxmc"]) for event in events}
    assert names == {
        (1, "建设项目用地预审与选址意见书核发"),
        (1, "建设用地规划许可证核发"),
        (2, "建设工程规划许可证核发"),
        (3, "建筑工程施工许可证核发"),
        (4, "竣工联合验收"),
    }


def test_about_seventy_percent_of_projects_state_demand(events: list[dict[str, Any]]) -> None:
    """Demand is known for roughly 70% of projects and the same on all of a project's events."""
    projects = by_project(events)
    demands = [steps[0].get("xqxx") for steps in projects.values()]
    assert 0.6 <= sum(demand is not None for demand in demands) / len(demands) <= 0.8
    for steps in projects.values():
        assert len({repr(event.get("xqxx")) for event in steps}) == 1


def test_demand_entries_are_realistic(events: list[dict[str, Any]]) -> None:
    """Demand is a non-empty set of distinct services with sizes in plausible ranges."""
    for event in events:
        demand = event.get("xqxx")
        if demand is None:
            continue
        services = [entry["fwlx"] for entry in demand]
        assert services and len(set(services)) == len(services) <= 3
        for entry in demand:
            if entry["fwlx"] == "供水":
                assert entry["gj_mm"] in (50, 80, 100, 150, 200) and entry["yldw"] == "m3/d" and entry["yl"] > 0
            elif entry["fwlx"] == "供气":
                assert entry["yldw"] == "m3/h" and entry["yl"] > 0
            else:
                assert entry["fwlx"] == "供热" and 0 < entry["grmj"] <= event["jzmj"]


def test_documents_grow_with_grants(events: list[dict[str, Any]]) -> None:
    """Receipts add no document; each grant adds its permit, and stage 2 adds the drawings."""
    for steps in by_project(events).values():
        previous: list[dict[str, str]] = []
        for event in steps:
            documents = event["fjxx"]
            assert documents[: len(previous)] == previous
            added = [document["wjlx"] for document in documents[len(previous) :]]
            if event["blzt"] != 11:
                assert added == []
            else:
                assert added == (["PERMIT", "DRAWING", "DRAWING"] if event["dybzspjdxh"] == 2 else ["PERMIT"])
            previous = documents


def test_document_digests_are_deterministic_hex(events: list[dict[str, Any]]) -> None:
    """Each document has a 64-hex sha256 unique to it and a download address."""
    documents = {document["wjbh"]: document for event in events for document in event["fjxx"]}
    assert all(re.fullmatch(r"[0-9a-f]{64}", document["sha256"]) for document in documents.values())
    assert len({document["sha256"] for document in documents.values()}) == len(documents)
    assert all(document["xzdz"].startswith("https://") for document in documents.values())


def test_clean_feed_has_no_defect(events: list[dict[str, Any]]) -> None:
    """Without invalid_rate every event is valid and marked valid."""
    assert [event["seq"] for event in events if defect_of(event)] == []
    assert {event["sjyxbs"] for event in events} == {1}


def test_invalid_rate_makes_that_share_defective() -> None:
    """invalid_rate turns exactly that share of the new events into events with one defect each."""
    events = EventGenerator(seed=9).generate(400, invalid_rate=0.1)
    defects = [defect_of(event) for event in events]
    assert sum(defect is not None for defect in defects) == 40
    assert {defect for defect in defects if defect} == set(DEFECTS)


@pytest.mark.parametrize("defect", DEFECTS)
def test_inject_defect_leaves_the_original_intact(defect: str) -> None:
    """A defect is applied to a copy and is exactly the one asked for."""
    event = EventGenerator(seed=1).generate(1)[0]
    original = dict(event)
    broken = inject_defect(event, defect, random.Random(0))
    assert event == original
    assert defect_of(broken) == defect


def test_unserved_rate_sites_that_share_in_qingdao() -> None:
    """unserved_rate moves roughly that share of new projects to Qingdao; zero and one are exact."""

    def qingdao_share(rate: float) -> float:
        projects = by_project(EventGenerator(seed=4).generate(1500, unserved_rate=rate))
        return sum(steps[0]["jsddxzqh"] in UNSERVED_REGIONS for steps in projects.values()) / len(projects)

    assert qingdao_share(0.0) == 0.0
    assert qingdao_share(1.0) == 1.0
    assert 0.2 <= qingdao_share(0.3) <= 0.4


@pytest.mark.parametrize(
    "kwargs", [{"n_events": -1}, {"n_events": 1, "invalid_rate": 1.5}, {"n_events": 1, "unserved_rate": -0.1}]
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    """Negative counts and rates outside [0, 1] are refused."""
    with pytest.raises(ValueError, match="rates must lie"):
        EventGenerator().generate(**kwargs)


def test_office_time_skips_evenings_and_weekends() -> None:
    """Friday 17:00 plus one office hour is Monday 09:30."""
    friday = datetime(2026, 11, 6, 17, 0, tzinfo=SHANGHAI)
    assert advance_office_time(friday, 60) == datetime(2026, 11, 9, 9, 30, tzinfo=SHANGHAI)
