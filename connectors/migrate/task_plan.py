"""What moving the single task topic of earlier releases onto the per-utility topics copies, as pure functions.

Each sink kept its place in the old topic as its group's committed offset; what lies at or beyond it was not
delivered yet (or delivered and not committed: at-least-once), so each utility's records from there on are
copied, to the same partition number of its own topic (so a project's tasks stay in order and co-partitioned
with the revision topic). Sinks recognise a record read again by the offset of the revision last delivered
(:func:`routing.revisions.already_delivered`); those offsets were the old topic's, so they are translated to
the copy's offsets: the copy of the last record at or below the old offset, or just before the first offset of
the copy when nothing at or below it was copied.

>>> plan_partition([(5, "a"), (6, "b"), (7, "a"), (8, None)], {"a": 6, "b": 6})
PartitionPlan(copies=((6, 'b'), (7, 'a')), delivered=1, unconfigured={}, unreadable=(8,))
>>> translate(7, [(6, 0), (7, 1)], new_start=0), translate(5, [(6, 0)], new_start=0)
(1, -1)
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class PartitionPlan(NamedTuple):
    """One partition of the old topic: the (offset, utility) records to copy, in order, and what is left."""

    copies: tuple[tuple[int, str], ...]
    delivered: int  # records of a configured utility below its sink's committed offset
    unconfigured: dict[str, int]  # utility → records of a utility no sink is configured for (left, counted)
    unreadable: tuple[int, ...]  # offsets of records that are no UtilityTask (the old sinks dead-lettered them)


def start_offset(committed: int | None, beginning: int) -> int:
    """Where a sink's undelivered records start: its committed offset, else the oldest record kept.

    Never committed, or deleted by retention since: its consumer (``auto_offset_reset=earliest``) would start
    at the oldest record.
    """
    return beginning if committed is None else max(committed, beginning)


def plan_partition(records: Iterable[tuple[int, str | None]], starts: Mapping[str, int]) -> PartitionPlan:
    """Split a partition's records (offset, utility id or None when undecodable) by what the migration does.

    ``starts`` holds, for each configured utility, the offset its undelivered records start at.
    """
    copies: list[tuple[int, str]] = []
    delivered = 0
    unconfigured: dict[str, int] = {}
    unreadable: list[int] = []
    for offset, utility in records:
        if utility is None:
            unreadable.append(offset)
        elif utility not in starts:
            unconfigured[utility] = unconfigured.get(utility, 0) + 1
        elif offset < starts[utility]:
            delivered += 1
        else:
            copies.append((offset, utility))
    return PartitionPlan(tuple(copies), delivered, unconfigured, tuple(unreadable))


def translate(offset: int, copied: Sequence[tuple[int, int]], *, new_start: int) -> int:
    """A revision's old-topic offset in the copy's terms.

    Args:
        offset: The old offset the revision was delivered from (-1: none recorded).
        copied: (old offset, new offset) of the utility's records copied from this partition, ascending.
        new_start: The first offset the copy was written at (the new partition's end before the migration).
    """
    if offset < 0:
        return offset
    below = [new for old, new in copied if old <= offset]
    return below[-1] if below else new_start - 1
