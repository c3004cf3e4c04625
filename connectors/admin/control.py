"""The control topic: pauses and restart requests that every process of an installation follows.

Keys are ``pause/<stage>`` (a JSON value while the stage is paused, a tombstone once resumed) and
``restart/<stage>`` (a JSON value with a fresh nonce per request). Each process reads the compacted topic from
the beginning without a group and folds it with :func:`fold`; a pause therefore survives restarts and applies
to every process, and a restart is acted on only when its nonce changes after the process caught up
(:func:`restarts_due`), so an old request is never replayed at start.

Example:
    >>> state = fold(ControlState(), pause_key("sink-yantai-water"), control_value("ops", "maintenance", now))
    >>> state.paused
    frozenset({'sink-yantai-water'})
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from routing.privacy import mask_text

_PAUSE = "pause/"
_RESTART = "restart/"


@dataclass(frozen=True)
class ControlState:
    """What the control topic says now: the paused stages and the latest restart nonce of each stage."""

    paused: frozenset[str] = frozenset()
    restarts: dict[str, str] = field(default_factory=dict)


def pause_key(stage: str) -> bytes:
    """The control key that pauses ``stage`` while it has a value."""
    return (_PAUSE + stage).encode()


def restart_key(stage: str) -> bytes:
    """The control key whose every new nonce restarts ``stage``."""
    return (_RESTART + stage).encode()


def control_value(by: str, reason: str | None, at: datetime, *, nonce: str | None = None) -> bytes:
    """The JSON value of a control record: who asked, why, when (and a restart's nonce)."""
    masked = None if reason is None else mask_text(reason)  # kept on a compacted topic for as long as it stands
    value: dict[str, str | None] = {"by": by, "reason": masked, "at": at.astimezone(UTC).isoformat()}
    if nonce is not None:
        value["nonce"] = nonce
    return json.dumps(value, ensure_ascii=False).encode()


def new_nonce() -> str:
    """A nonce no earlier restart request has used."""
    return uuid.uuid4().hex


def fold(state: ControlState, key: bytes | None, value: bytes | None) -> ControlState:
    """``state`` after one control record; keys of another kind and unreadable values change nothing.

    A null or empty value is a tombstone: it resumes a paused stage (a restart tombstone is ignored).
    """
    text = (key or b"").decode("utf-8", "replace")
    if text.startswith(_PAUSE):
        stage = text.removeprefix(_PAUSE)
        paused = state.paused | {stage} if value else state.paused - {stage}
        return ControlState(paused, state.restarts)
    nonce = _nonce(value) if text.startswith(_RESTART) else None
    if nonce is None:
        return state
    return ControlState(state.paused, {**state.restarts, text.removeprefix(_RESTART): nonce})


def restarts_due(before: ControlState, after: ControlState) -> set[str]:
    """The stages whose restart nonce changed between two states."""
    return {stage for stage, nonce in after.restarts.items() if before.restarts.get(stage) != nonce}


def _nonce(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        nonce = json.loads(value).get("nonce")
    except (ValueError, AttributeError):
        return None
    return nonce if isinstance(nonce, str) and nonce else None
