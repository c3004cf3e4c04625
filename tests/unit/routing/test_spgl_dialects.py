"""The GCDM dialect, the dialect file, held-row ages and the joiner's bounded state (issues 13 and 11)."""

from pathlib import Path
from typing import Any

import pytest

from routing.spgl import (
    APPROVALS,
    ATTACHMENTS,
    DETAILS,
    ITEMS,
    NEVER_ARRIVED,
    PROCESS_ITEMS,
    PROCESS_STAGES,
    PROJECTS,
    JoinedRecord,
    JoinFailure,
    JoinOutcome,
    MemoryStore,
    SpglJoiner,
)
from routing.spgl_dialects import load_dialects
from tests.unit.routing.test_spgl import APPROVAL, CODE, COMMON, DETAIL, DRAWING, INSTANCE, ITEM, PROJECT, to_event

GCDM = f"{CODE}-001"
GCDM_ITEM = {k: v for k, v in ITEM.items() if k not in ("xmdm", "dybzspjdxh")} | {
    "gcdm": GCDM,
    "splcbm": "SPLC370600-01",
    "splcbbh": "1.0",
}
STAGE_ROW = {**COMMON, "lsh": 90, "dfsjzj": "jd-20", "splcbm": "SPLC370600-01", "splcbbh": "1.0", "spjdxh": 20}
STAGE_ROW |= {"dybzspjdxh": 2}
STAGE_ITEM_ROW = {**COMMON, "lsh": 91, "dfsjzj": "jdsx-1", "splcbm": "SPLC370600-01", "splcbbh": "1.0"}
STAGE_ITEM_ROW |= {"spjdxh": 20, "spsxbm": "000117004"}


def no_xmdm(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "xmdm"} | {"gcdm": GCDM}


def gcdm_joiner(*, process_tables: bool = True) -> SpglJoiner:
    store = MemoryStore()
    if process_tables:
        store.put(PROCESS_STAGES, dict(STAGE_ROW))
        store.put(PROCESS_ITEMS, dict(STAGE_ITEM_ROW))
    joiner = SpglJoiner(store=store)
    for table, row in ((PROJECTS, PROJECT), (ITEMS, GCDM_ITEM), (APPROVALS, no_xmdm(APPROVAL))):
        assert joiner.add(table, dict(row)) == []
    assert joiner.add(ATTACHMENTS, no_xmdm(DRAWING)) == []
    return joiner


def only_record(outcomes: list[JoinOutcome]) -> JoinedRecord:
    [record] = outcomes
    assert isinstance(record, JoinedRecord)
    return record


def test_gcdm_item_joins_with_its_stage_from_the_process_tables() -> None:
    """An item keyed by gcdm, without xmdm or stage, joins; the stage comes from SPGL_DFXMSPLC* (local 20 → 2)."""
    record = only_record(gcdm_joiner().add(DETAILS, dict(DETAIL)))
    assert (record.instance["xmdm"], record.instance["dybzspjdxh"]) == (CODE, 2)
    assert [d["pfwh"] for d in record.approvals] == [APPROVAL["pfwh"]] and len(record.attachments) == 1
    event = to_event(record)
    assert (event["project_code"], event["stage"], event["item_status"]) == (CODE, 2, "GRANTED")


def test_both_dialects_yield_the_same_event() -> None:
    """The same grant written in the XMDM and the GCDM dialect maps to one and the same event."""
    xmdm = SpglJoiner()
    for table, row in ((PROJECTS, PROJECT), (ITEMS, ITEM), (APPROVALS, APPROVAL), (ATTACHMENTS, DRAWING)):
        xmdm.add(table, dict(row))
    first = to_event(only_record(xmdm.add(DETAILS, dict(DETAIL))))
    second = to_event(only_record(gcdm_joiner().add(DETAILS, dict(DETAIL))))
    assert first == second


def test_gcdm_item_without_its_process_stage_is_a_failure_naming_the_table() -> None:
    """A GCDM item whose process item is not in the process tables is dead-lettered, not held forever."""
    [failure] = gcdm_joiner(process_tables=False).add(DETAILS, dict(DETAIL))
    assert isinstance(failure, JoinFailure)
    assert failure.error.field == f"{PROCESS_ITEMS}.spjdxh" and "SPLC370600-01" in failure.error.reason


def test_gcdm_detail_waits_for_a_project_found_by_gcdm() -> None:
    """A GCDM detail whose project is missing is held on the engineering code and released by the project."""
    store = MemoryStore()
    store.put(PROCESS_STAGES, dict(STAGE_ROW))
    store.put(PROCESS_ITEMS, dict(STAGE_ITEM_ROW))
    joiner = SpglJoiner(store=store)
    joiner.add(ITEMS, dict(GCDM_ITEM))
    assert (joiner.add(DETAILS, dict(DETAIL)), joiner.held_count) == ([], 1)
    record = only_record(joiner.add(PROJECTS, dict(PROJECT)))
    assert record.project["gcdm"] == GCDM and joiner.held_count == 0


def test_a_detail_held_past_its_age_is_failed_naming_the_missing_parent() -> None:
    """expire() fails details older than max_held_age_s, with the parent that never arrived."""
    now = [1000.0]
    joiner = SpglJoiner(max_held_age_s=60, clock=lambda: now[0])
    joiner.add(DETAILS, dict(DETAIL))
    now[0] += 30
    assert (joiner.expire(), joiner.oldest_held_age_s) == ([], 30)
    now[0] += 31
    [failure] = joiner.expire()
    assert isinstance(failure, JoinFailure) and failure.error.field == f"{DETAILS}.spsxslbm"
    assert failure.error.reason.startswith(NEVER_ARRIVED) and INSTANCE in failure.error.reason
    assert "held 61 s" in failure.error.reason and joiner.held_count == 0


def test_held_age_survives_the_cursor() -> None:
    """A restored joiner keeps when each row started waiting, so a restart does not reset the limit."""
    now = [1000.0]
    first = SpglJoiner(max_held_age_s=60, clock=lambda: now[0])
    first.add(DETAILS, dict(DETAIL))
    now[0] += 61
    second = SpglJoiner.from_state(first.to_state(), max_held_age_s=60, clock=lambda: now[0])
    assert len(second.expire()) == 1


def test_version_one_state_is_still_read() -> None:
    """A cursor written before held rows carried their age restores its rows, waiting from now."""
    joiner = SpglJoiner.from_state({"version": 1, "held": [dict(DETAIL)]}, clock=lambda: 5.0)
    assert (joiner.held_count, joiner.oldest_held_age_s) == (1, 0.0)


class CountingStore(MemoryStore):
    """A store that counts lookups: the joiner asks it instead of remembering rows itself."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def latest(self, table: str, where: Any) -> Any:
        self.lookups += 1
        return super().latest(table, where)


def test_the_joiner_keeps_only_bounded_state_and_asks_the_store_for_parents() -> None:
    """After 5,000 projects the joiner holds no row and no structure past its bound; parents come from the store."""
    store = CountingStore()
    joiner = SpglJoiner(store=store)
    for n in range(5000):
        code = f"{CODE[:-6]}{n:06d}"
        joiner.add(PROJECTS, PROJECT | {"lsh": 10 + 4 * n, "dfsjzj": f"p-{n}", "xmdm": code})
        item = ITEM | {"lsh": 11 + 4 * n, "dfsjzj": f"i-{n}", "spsxslbm": f"{INSTANCE}-{n}", "xmdm": code}
        joiner.add(ITEMS, item)
        detail = DETAIL | {"lsh": 12 + 4 * n, "dfsjzj": f"d-{n}", "spsxslbm": item["spsxslbm"]}
        assert only_record(joiner.add(DETAILS, detail)).project_code == code
    assert store.lookups >= 10000
    assert joiner.to_state() == {"version": 2, "held": []}
    sizes = {name: len(value) for name, value in vars(joiner).items() if isinstance(value, dict)}
    assert max(sizes.values()) <= 4096, sizes


def test_a_withdrawn_project_retracts_the_last_detail_of_each_of_its_items() -> None:
    """Withdrawing a project finds its items and their last details in the store and retracts each."""
    joiner = SpglJoiner()
    joiner.add(PROJECTS, dict(PROJECT))
    joiner.add(ITEMS, dict(ITEM))
    joiner.add(DETAILS, dict(DETAIL))
    retraction = only_record(joiner.add(PROJECTS, PROJECT | {"lsh": 50, "sjyxbs": 0, "sjwxyy": "项目撤销"}))
    assert (retraction.withdrawn_by, retraction.detail["dfsjzj"]) == (PROJECTS, DETAIL["dfsjzj"])


def test_the_shipped_dialect_file_is_valid_and_names_both_dialects() -> None:
    """deploy/config/spgl-dialects.yaml loads and lists the XMDM and GCDM dialects in that order."""
    assert [d.name for d in load_dialects().dialects] == ["xmdm", "gcdm"]


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ("dialects: []", "dialects"),
        (
            "dialects: [{name: x, when_present: [xmdm], item_project_column: xmdm, project_column: xmdm}]",
            "dialects.0.document_column",
        ),
        (
            "dialects: [{name: x, when_present: [XMDM], item_project_column: xmdm, project_column: xmdm,"
            " document_column: xmdm, stage: {}}]",
            "dialects.0.when_present.0",
        ),
    ],
)
def test_a_bad_dialect_file_names_the_key(tmp_path: Path, document: str, key: str) -> None:
    """A dialect file that fails validation is refused at start-up with the file and the bad key."""
    path = tmp_path / "dialects.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ValueError, match=f"dialects.yaml: {key}:"):
        load_dialects(path)
