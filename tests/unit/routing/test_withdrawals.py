import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.gonggai import normalise
from routing.records import Document, ProjectEvent, UtilityTask
from routing.withdrawals import (
    NO_STANDING_GRANT,
    WITHDRAWN_FLAG,
    Grant,
    Standing,
    apply_event,
    as_update,
    decode_standing,
    encode_standing,
    grant_identity,
    grant_of,
    latest,
)
from tests.support import make_task

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
PERMIT: Document = {"kind": "PERMIT", "number": "建字第1号", "title": "建设工程规划许可证", "url": None, "digest": None}
DRAWING: Document = {"kind": "DRAWING", "number": None, "title": "总平面图", "url": "https://x/a", "digest": "sha256:0"}
G1 = Grant("instance:SL-1", 1, "e1", T0, (PERMIT,))
G2 = Grant("instance:SL-2", 2, "e2", T0 + timedelta(days=3), (DRAWING,))


def standing(*grants: Grant) -> dict[str, Grant]:
    """The standing map of ``grants``."""
    return {grant.identity: grant for grant in grants}


def event(**raw: Any) -> ProjectEvent:
    """A granted stage-1 approval-system event with ``raw`` fields changed."""
    record = {
        "seq": 1,
        "xmdm": "2026-370602-47-01-000123",
        "xmmc": "幸福里三期",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": 1,
        "blzt": 11,
        "blsj": "2026-11-24 10:00:00",
        **raw,
    }
    return normalise(record, source="gonggai-interface", ingested_at=T0)


def test_the_first_grant_creates_the_task() -> None:
    """A grant behind a task with nothing standing creates it and stands."""
    assert apply_event({}, G1, withdrawn=False) == (standing(G1), "CREATE", G1, None)


def test_a_second_grant_stands_beside_the_first() -> None:
    """The stage-2 grant joins the stage-1 grant; the task is re-sent as before (CREATE, same id)."""
    change = apply_event(standing(G1), G2, withdrawn=False)
    assert (change.standing, change.action) == (standing(G1, G2), "CREATE")


def test_withdrawing_stage_1_while_stage_2_stands_updates_as_stage_2() -> None:
    """The reported case: the stage-1 grant withdrawn, the stage-2 grant standing: UPDATE, not CANCEL."""
    assert apply_event(standing(G1, G2), G1, withdrawn=True) == (standing(G2), "UPDATE", G2, None)


def test_withdrawing_stage_2_while_stage_1_stands_updates_as_stage_1() -> None:
    """Either order: whichever grant is left is what the task now reflects."""
    assert apply_event(standing(G1, G2), G2, withdrawn=True) == (standing(G1), "UPDATE", G1, None)


def test_withdrawing_the_last_standing_grant_cancels() -> None:
    """No grant left behind the task: CANCEL, and nothing stands (the entry is dropped)."""
    assert apply_event(standing(G2), G2, withdrawn=True) == ({}, "CANCEL", None, None)


def test_both_withdrawn_in_turn_update_then_cancel() -> None:
    """Stage 1 then stage 2 withdrawn: one UPDATE, then one CANCEL."""
    first = apply_event(standing(G1, G2), G1, withdrawn=True)
    second = apply_event(first.standing, G2, withdrawn=True)
    assert (first.action, second.action, second.standing) == ("UPDATE", "CANCEL", {})


def test_a_withdrawal_of_a_grant_never_seen_sends_nothing() -> None:
    """A withdrawal with no standing grant behind the task is filtered with its reason, never a CANCEL."""
    assert apply_event({}, G1, withdrawn=True) == ({}, None, None, NO_STANDING_GRANT)


def test_a_withdrawal_of_another_grant_leaves_the_task_alone() -> None:
    """Withdrawing a grant that is not behind this task changes neither the task nor what stands."""
    assert apply_event(standing(G2), G1, withdrawn=True) == (standing(G2), None, None, NO_STANDING_GRANT)


def test_a_duplicate_withdrawal_sends_nothing_more() -> None:
    """The same withdrawal again (a replay) finds its grant gone: nothing, no second UPDATE or CANCEL."""
    once = apply_event(standing(G1, G2), G1, withdrawn=True)
    assert apply_event(once.standing, G1, withdrawn=True) == (standing(G2), None, None, NO_STANDING_GRANT)


def test_a_duplicate_grant_is_idempotent() -> None:
    """The same grant again leaves the same grants standing and re-sends the same CREATE."""
    once = apply_event(standing(G1), G2, withdrawn=False)
    assert apply_event(once.standing, G2, withdrawn=False) == once


def test_a_re_grant_after_the_cancel_creates_again() -> None:
    """After the last withdrawal cancelled the task, granting again creates it again."""
    cancelled = apply_event(standing(G1), G1, withdrawn=True)
    assert apply_event(cancelled.standing, G1, withdrawn=False) == (standing(G1), "CREATE", G1, None)


def test_a_changed_record_of_a_standing_grant_replaces_it() -> None:
    """A later record of the same grant (an upsert) replaces the earlier one; it still counts once."""
    newer = Grant(G1.identity, 1, "e1b", T0 + timedelta(hours=1))
    assert apply_event(standing(G1), newer, withdrawn=False).standing == standing(newer)


def test_the_input_is_not_changed() -> None:
    """The standing map given is left as it was (the caller compares before and after)."""
    before = standing(G1, G2)
    apply_event(before, G1, withdrawn=True)
    apply_event(before, Grant("instance:SL-3", 3, "e3", T0), withdrawn=False)
    assert before == standing(G1, G2)


def test_latest_is_the_most_recent_then_the_later_stage() -> None:
    """The task reflects the newest grant; on a tie of times, the later stage."""
    tie = Grant("item:2:X", 2, "e3", T0)
    assert (latest(standing(G1, G2)), latest(standing(G1, tie))) == (G2, tie)


def test_latest_of_nothing_is_an_error() -> None:
    """There is no grant to reflect when none stands."""
    with pytest.raises(ValueError, match="no grant stands"):
        latest({})


def test_an_update_reflects_the_grant_left_standing() -> None:
    """UPDATE carries the standing grant's stage, event, time and documents, and names the withdrawn grant."""
    task: UtilityTask = {**make_task("yantai-water", 1), "trigger_stage": 1, "documents": [PERMIT], "flags": ["soft"]}
    updated = as_update(task, G2, G1)
    assert (
        updated["action"],
        updated["trigger_stage"],
        updated["source_event_id"],
        updated["occurred_at"],
        updated["documents"],
        updated["flags"],
        updated["task_id"],
    ) == ("UPDATE", 2, "e2", G2.occurred_at, [DRAWING], ["soft", WITHDRAWN_FLAG + "instance:SL-1"], task["task_id"])


def test_an_instance_code_names_the_grant_and_its_withdrawal_alike() -> None:
    """The withdrawal is a new record with its own serial; the item instance code pairs it with its grant."""
    granted = event(spsxslbm="SL-1", spsxbm="JSGCGHXK")
    withdrawn = event(seq=99, spsxslbm="SL-1", spsxbm="JSGCGHXK", sjyxbs=0)
    assert grant_identity(granted) == grant_identity(withdrawn) == "instance:SL-1"
    assert grant_of(withdrawn).event_id != grant_of(granted).event_id


def test_without_an_instance_code_stage_and_item_name_the_grant() -> None:
    """Without an instance code, the stage and the item code name it; another stage is another grant."""
    assert grant_identity(event(spsxbm="JSGCGHXK")) == "item:1:JSGCGHXK"
    assert grant_identity(event(dybzspjdxh=2, spsxbm="JSGCGHXK")) == "item:2:JSGCGHXK"
    assert grant_identity(event()) == "item:1:"


def test_grant_of_keeps_what_an_update_needs() -> None:
    """The grant records the event's stage, id, time and documents."""
    ev = event(spsxslbm="SL-1", fjxx=[{"wjlx": "PERMIT", "wjbh": "建字第1号", "wjmc": "建设工程规划许可证"}])
    g = grant_of(ev)
    assert (g.stage, g.event_id, g.occurred_at, list(g.documents)) == (
        1,
        ev["event_id"],
        ev["occurred_at"],
        ev["documents"],
    )


def test_standing_grants_round_trip_through_their_stored_form() -> None:
    """What is written to the grants topic reads back equal, documents and time zone included."""
    assert decode_standing(encode_standing(standing(G1, G2))) == standing(G1, G2)


def test_stored_form_is_the_compact_json_it_always_was() -> None:
    """The grants topic's bytes are unchanged: compact JSON, Chinese and control characters as before."""
    odd = Grant("instance:供水-1\t\n\x01\u2028/", 3, "e3", T0, ({**PERMIT, "title": '许可证"x"\\'},))
    grants = standing(G1, G2, odd)
    as_before = [
        {
            "identity": g.identity,
            "stage": g.stage,
            "event_id": g.event_id,
            "occurred_at": g.occurred_at.isoformat(),
            "documents": [dict(d) for d in g.documents],
        }
        for g in sorted(grants.values(), key=lambda g: g.identity)
    ]
    expected = json.dumps({"grants": as_before}, ensure_ascii=False, separators=(",", ":")).encode()
    assert encode_standing(grants) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"grants": [{"identity": "x"}]}',
        b'{"grants": [{"identity": "x", "stage": 1, "event_id": "e", "occurred_at": "2026-11-24T02:00:00", '
        b'"documents": []}]}',
        b'{"grants": [{"identity": "x", "stage": "1", "event_id": "e", "occurred_at": "2026-11-24T02:00:00+00:00", '
        b'"documents": []}]}',
        b'{"grants": [{"identity": "x", "stage": 1, "event_id": "e", "occurred_at": "2026-11-24T02:00:00+00:00", '
        b'"documents": [{"kind": 1}]}]}',
    ],
)
def test_an_unreadable_stored_entry_is_a_value_error(value: bytes) -> None:
    """A stored entry that is not a set of grants (bad JSON, missing field, naive time, bad type) is refused."""
    with pytest.raises(ValueError, match="not a stored set of grants"):
        decode_standing(value)


GRANTS = st.sampled_from([G1, G2, Grant("item:3:X", 3, "e3", T0 + timedelta(days=9))])


@given(st.lists(st.tuples(GRANTS, st.booleans()), max_size=12))
def test_a_task_is_cancelled_exactly_when_its_last_standing_grant_is_withdrawn(steps: list[tuple[Grant, bool]]) -> None:
    """Any sequence of grants and withdrawals: CANCEL iff the last standing one goes, UPDATE iff others stay."""
    state: Standing = {}
    for g, withdrawn in steps:
        change = apply_event(state, g, withdrawn=withdrawn)
        expected = {k: v for k, v in state.items() if k != g.identity} if withdrawn else {**state, g.identity: g}
        assert change.standing == expected
        if not withdrawn:
            assert change.action == "CREATE"
        elif g.identity not in state:
            assert (change.action, change.reason) == (None, NO_STANDING_GRANT)
        else:
            assert change.action == ("UPDATE" if expected else "CANCEL")
            assert change.basis == (latest(expected) if expected else None)
        state = change.standing
