"""Whether a utility's report about a task can be taken: the callbacks' true answer, decided on plain data.

The callbacks stage knows the tasks the sinks delivered from the task-status topic (:mod:`.task_view`); for
each task, a :class:`KnownTask`: its utility, when it was created, and each stage's earliest time. Both the
view and the answer follow the ledger's own rules (:func:`routing.ledger.stage_times_after`), so a report
accepted here is one the ledger applies, and one refused here is one it would have dead-lettered:

* no such task → 404 (the sinks never delivered it, or not yet: see :mod:`.task_view` for the wait);
* the task belongs to another utility → 403;
* the ledger would refuse the report (dated before the task was created, after it was CLOSED or REJECTED,
  CLOSED before CONNECTED, both CLOSED and REJECTED) → 409 with the ledger's reason.

Example:
    >>> known = learn(None, received)           # the sink's RECEIVED, carrying the task
    >>> admit(known, contacted)                 # None: accept
    >>> admit(known, closed_too_early)          # Refusal(409, 'CLOSED at … is before the task was created …', 'stage')
"""

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from routing.errors import DataError
from routing.ledger import stage_times_after
from routing.records import TaskStage, TaskStatus


class KnownTask(NamedTuple):
    """What the callbacks stage knows of a delivered task."""

    utility_id: str
    created_at: datetime
    times: Mapping[TaskStage, datetime]


class Refusal(NamedTuple):
    """A report that cannot be taken: the HTTP status and the reason the utility gets."""

    status: int
    reason: str
    field: str


def learn(known: KnownTask | None, status: TaskStatus) -> KnownTask | None:
    """What is known of the task once ``status``, a record of the task-status topic, is applied.

    The first RECEIVED carrying the task makes it known, as it opens the ledger's entry; a record the ledger
    would refuse changes nothing, as the ledger dead-letters it. Records of a task not known yet are left to
    the ledger, which holds them.
    """
    if known is None:
        task = status["task"]
        if status["stage"] != "RECEIVED" or task is None or status["occurred_at"] < task["created_at"]:
            return None
        return KnownTask(task["utility_id"], task["created_at"], {"RECEIVED": status["occurred_at"]})
    if status["utility_id"] != known.utility_id or _is_cancel(status):
        return known
    try:
        return known._replace(times=stage_times_after(known.created_at, known.times, status))
    except DataError:
        return known


def admit(known: KnownTask | None, status: TaskStatus) -> Refusal | None:
    """None when ``status`` can be accepted for the task ``known``; else why not."""
    task_id = status["task_id"]
    if known is None:
        reason = f"no task {task_id!r} was delivered to a utility; check the id, or retry in a minute"
        return Refusal(404, reason, "task_id")
    if known.utility_id != status["utility_id"]:
        return Refusal(403, f"task {task_id!r} was delivered to another utility; report only on your own", "task_id")
    try:
        stage_times_after(known.created_at, known.times, status)
    except DataError as exc:
        return Refusal(409, exc.reason, exc.field)
    return None


def _is_cancel(status: TaskStatus) -> bool:
    return status["task"] is not None and status["task"]["action"] == "CANCEL"
