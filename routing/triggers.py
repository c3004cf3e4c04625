"""Which approval facts start a utility task (DESIGN §6).

Only a granted item counts: a stage is passed when one of its items is granted. Stage 1 or 2 (planning
permits) → PRE_INTERVENTION, stage 3 (construction permit) → CONSTRUCTION_READY, stage 4 (completion
acceptance) → CONNECT; stage 5 (并行推进, parallel items) gives utilities nothing new to act on.
"""

from typing import Final, NamedTuple

from routing.records import ProjectEvent, TaskKind

_KIND_BY_STAGE: Final[dict[int, TaskKind]] = {
    1: "PRE_INTERVENTION",
    2: "PRE_INTERVENTION",
    3: "CONSTRUCTION_READY",
    4: "CONNECT",
}
_PARALLEL_STAGE: Final = 5


class Trigger(NamedTuple):
    """The outcome of checking one event: a task kind, or the reason there is none.

    Reasons are short codes drawn from a small fixed set (``not_granted:<STATUS>``, ``stage_without_task:5``,
    ``unknown_stage:<n>``) so callers can log them and count them by label.
    """

    kind: TaskKind | None
    reason: str | None


def trigger_for(event: ProjectEvent) -> Trigger:
    """Decide whether ``event`` triggers a task, and which kind.

    Retractions are judged like the record they withdraw; turning the task into a cancellation is the
    router's job.

    Args:
        event: A canonical project event.

    Returns:
        ``Trigger(kind, None)`` for a trigger, ``Trigger(None, reason)`` otherwise.
    """
    if event["item_status"] != "GRANTED":
        return Trigger(None, f"not_granted:{event['item_status']}")
    stage = event["stage"]
    kind = _KIND_BY_STAGE.get(stage)
    if kind is not None:
        return Trigger(kind, None)
    if stage == _PARALLEL_STAGE:
        return Trigger(None, f"stage_without_task:{stage}")
    return Trigger(None, f"unknown_stage:{stage}")


def task_kind_for(event: ProjectEvent) -> TaskKind | None:
    """Return the task kind ``event`` triggers, or ``None``; see :func:`trigger_for` for the reason."""
    return trigger_for(event).kind
