import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from connectors.admin.audit import audit_value
from connectors.admin.control import (
    ControlState,
    control_value,
    fold,
    new_nonce,
    pause_key,
    restart_key,
    restarts_due,
)

AT = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
STAGES = st.sampled_from(["sink-yantai-water", "router", "normaliser-gonggai"])


def folded(*records: tuple[bytes | None, bytes | None]) -> ControlState:
    state = ControlState()
    for key, value in records:
        state = fold(state, key, value)
    return state


def test_a_pause_record_pauses_and_its_tombstone_resumes() -> None:
    """pause/<stage> with a value pauses the stage; a null or empty value resumes it."""
    value = control_value("ops", "maintenance", AT)
    assert folded((pause_key("router"), value)).paused == {"router"}
    assert folded((pause_key("router"), value), (pause_key("router"), None)).paused == frozenset()
    assert folded((pause_key("router"), value), (pause_key("router"), b"")).paused == frozenset()


def test_a_reason_is_kept_masked() -> None:
    """A phone number typed into a pause reason is masked: the control topic keeps it as long as it stands."""
    assert json.loads(control_value("ops", "回访 13912345678", AT))["reason"] == "回访 139****5678"
    assert json.loads(audit_value("pause", by="ops", reason="13912345678", at=AT, what={}))["reason"] == "139****5678"


def test_other_keys_and_unreadable_restarts_change_nothing() -> None:
    """Keys of another kind, null keys and restart values without a nonce leave the state as it was."""
    state = folded(
        (b"other/router", b"{}"),
        (None, b"{}"),
        (restart_key("router"), b"not json"),
        (restart_key("router"), b'{"nonce": 7}'),
        (restart_key("router"), None),
    )
    assert state == ControlState()


def test_a_new_nonce_is_a_restart_due_and_the_same_one_is_not() -> None:
    """Only a changed nonce makes a restart due, so history read at start restarts nothing twice."""
    nonce = new_nonce()
    before = folded((restart_key("router"), control_value("ops", None, AT, nonce=nonce)))
    same = fold(before, restart_key("router"), control_value("ops", "again", AT, nonce=nonce))
    fresh = fold(before, restart_key("router"), control_value("ops", None, AT, nonce=new_nonce()))
    other = fold(before, restart_key("sink-yantai-water"), control_value("ops", None, AT, nonce=nonce))
    assert (restarts_due(before, same), restarts_due(before, fresh), restarts_due(before, other)) == (
        set(),
        {"router"},
        {"sink-yantai-water"},
    )


def test_the_control_value_says_who_why_and_when() -> None:
    """A control value is JSON with who, why, when in UTC, and the nonce of a restart."""
    value = control_value("alice (ops)", "维护", AT, nonce="n1")
    assert value.decode() == '{"by": "alice (ops)", "reason": "维护", "at": "2026-11-25T02:00:00+00:00", "nonce": "n1"}'


@given(st.lists(st.tuples(STAGES, st.booleans()), max_size=30))
def test_the_last_pause_record_of_each_stage_wins(events: list[tuple[str, bool]]) -> None:
    """Whatever the order, a stage is paused exactly when its last pause record is not a tombstone."""
    value = control_value("ops", None, AT)
    state = folded(*((pause_key(stage), value if pause else None) for stage, pause in events))
    last = dict(events)
    assert state.paused == {stage for stage, pause in last.items() if pause}
