"""Exact withdrawals: which grants stand behind a task, and what a grant or its withdrawal makes of the task.

One task can be triggered by several grants (the stage-1 and the stage-2 planning grants of a project are one
pre-intervention task, :mod:`routing.tasks`). Withdrawing one of them (``SJYXBS=0``) must not cancel the task
while another stands: the task is re-sent as ``UPDATE``, carrying the stage, event and documents of the
latest grant still standing. Only the withdrawal of the last standing grant cancels it.

A grant is named by what pairs it with its withdrawal, which is a new record with its own serial: the item
instance code, or without one the stage and item code (:func:`grant_of`).

    ========================================  ==========================  ===============================
    standing before                           event                       action, standing after
    ========================================  ==========================  ===============================
    {}                                        grant g1                    CREATE, {g1}
    {g1}                                      grant g2 (or g1 again)      CREATE, {g1, g2} (or {g1})
    {g1, g2}                                  withdraw g1                 UPDATE (as g2), {g2}
    {g2}                                      withdraw g2                 CANCEL, {} (entry tombstoned)
    {} or {g2}                                withdraw g1 (never seen,    nothing, unchanged (filtered
                                              or withdrawn already)       ``withdrawal_of_no_standing_grant``)
    ========================================  ==========================  ===============================

Example:
    >>> change = apply_event({}, grant_of(stage1_event), withdrawn=False)
    >>> change.action, sorted(change.standing)
    ('CREATE', ['instance:SL-1'])
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson

from routing.records import Document, ProjectEvent, TaskAction, UtilityTask

NO_STANDING_GRANT: Final = "withdrawal_of_no_standing_grant"
WITHDRAWN_FLAG: Final = "grant_withdrawn:"
_DOCUMENT_FIELDS: Final = ("kind", "number", "title", "url", "digest")


@dataclass(frozen=True)
class Grant:
    """One valid grant behind a task: what names it, and what a task reflecting it carries."""

    identity: str
    stage: int
    event_id: str
    occurred_at: datetime
    documents: tuple[Document, ...] = field(default=())


Standing = Mapping[str, Grant]  # identity → grant


class Change(NamedTuple):
    """What one event does to one task: the grants standing afterwards and the action to send (None: none)."""

    standing: dict[str, Grant]
    action: TaskAction | None
    basis: Grant | None  # the grant the task now reflects (UPDATE)
    reason: str | None  # why nothing is sent


def grant_identity(event: ProjectEvent) -> str:
    """Name the grant an event grants or withdraws, the same for both."""
    instance = event["item_instance_code"]
    if instance:
        return f"instance:{instance}"
    return f"item:{event['stage']}:{event['item_code'] or ''}"


def grant_of(event: ProjectEvent) -> Grant:
    """The grant a (triggering) project event grants or withdraws."""
    return Grant(
        identity=grant_identity(event),
        stage=event["stage"],
        event_id=event["event_id"],
        occurred_at=event["occurred_at"],
        documents=tuple(document.copy() for document in event["documents"]),
    )


def apply_event(standing: Standing, grant: Grant, *, withdrawn: bool) -> Change:
    """Apply a grant, or its withdrawal, to the grants standing behind one task.

    Args:
        standing: The grants standing so far (empty for a task not created, or cancelled).
        grant: The grant the event carries (:func:`grant_of`).
        withdrawn: Whether the event withdraws ``grant`` rather than granting it.

    Returns:
        ``CREATE`` for a grant (a repeat included: the same task id and content); for a withdrawal,
        ``UPDATE`` as the latest grant left standing, ``CANCEL`` when none is left, or nothing with
        :data:`NO_STANDING_GRANT` when ``grant`` does not stand (never seen, or withdrawn already).
    """
    if not withdrawn:
        return Change({**standing, grant.identity: grant}, "CREATE", grant, None)
    if grant.identity not in standing:
        return Change(dict(standing), None, None, NO_STANDING_GRANT)
    after = {identity: kept for identity, kept in standing.items() if identity != grant.identity}
    if not after:
        return Change(after, "CANCEL", None, None)
    return Change(after, "UPDATE", latest(after), None)


def latest(standing: Standing) -> Grant:
    """The grant a task reflects: the most recent, the later stage on a tie, then by identity (deterministic).

    Raises:
        ValueError: ``standing`` is empty.
    """
    if not standing:
        msg = "no grant stands"
        raise ValueError(msg)
    return max(standing.values(), key=lambda g: (g.occurred_at, g.stage, g.identity))


def as_update(task: UtilityTask, basis: Grant, withdrawn: Grant) -> UtilityTask:
    """The task re-sent after ``withdrawn`` was withdrawn: as ``basis`` (still standing) makes it, flagged."""
    return {
        **task,
        "action": "UPDATE",
        "trigger_stage": basis.stage,
        "source_event_id": basis.event_id,
        "occurred_at": basis.occurred_at,
        "documents": [document.copy() for document in basis.documents],
        "flags": [*task["flags"], WITHDRAWN_FLAG + withdrawn.identity],
    }


def encode_standing(standing: Standing) -> bytes:
    """The grants standing behind a task, as stored on the router's compacted grants topic (JSON)."""
    grants = [
        {
            "identity": grant.identity,
            "stage": grant.stage,
            "event_id": grant.event_id,
            "occurred_at": grant.occurred_at.isoformat(),
            "documents": [dict(document) for document in grant.documents],
        }
        for grant in sorted(standing.values(), key=lambda g: g.identity)
    ]
    # orjson writes the bytes json.dumps(ensure_ascii=False, separators=(",", ":")) wrote, in a fifth of the time
    return orjson.dumps({"grants": grants})


def decode_standing(value: bytes) -> dict[str, Grant]:
    """Read what :func:`encode_standing` wrote.

    Raises:
        ValueError: not a stored set of grants.
    """
    try:
        stored = json.loads(value)
        grants = [_grant(item) for item in stored["grants"]]
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        msg = f"not a stored set of grants: {value[:80]!r}"
        raise ValueError(msg) from exc
    return {grant.identity: grant for grant in grants}


def _grant(item: Mapping[str, Any]) -> Grant:
    occurred_at = datetime.fromisoformat(item["occurred_at"])
    if occurred_at.tzinfo is None or not isinstance(item["stage"], int):
        raise TypeError
    documents = tuple(_document(document) for document in item["documents"])
    return Grant(str(item["identity"]), item["stage"], str(item["event_id"]), occurred_at, documents)


def _document(item: Mapping[str, Any]) -> Document:
    kind, number, title, url, digest = (item[name] for name in _DOCUMENT_FIELDS)
    if not isinstance(kind, str) or not isinstance(title, str):
        raise TypeError
    return {"kind": kind, "number": number, "title": title, "url": url, "digest": digest}
