"""The monthly dispatch report's content (每月调度办理进展, issue 16 item 5): which tasks, read when.

A month runs from its first day 00:00 to the next month's first day 00:00 in Asia/Shanghai. The report reads
the ledger as it stood at the month's end (or now, for the month still running), so a report made later says
the same of the month:

* **figures** and the **breached list**: the connection tasks filed in the month (created within it);
* the **overdue list**: every connection task created by then, whatever its month, still open at the month's
  end with a rule's clock running past its due instant (the backlog the department chases).

Example:
    >>> report = monthly(entries, book, calendar, month="2026-11", now=datetime.now(UTC))
    >>> report.figures.by_utility, report.breached, report.overdue
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from routing.calendar import SHANGHAI, WorkingCalendar
from routing.ledger import timeline
from routing.records import TaskLedgerEntry
from routing.sla_policy import PolicyBook
from routing.supervision import Figures, TaskFacts, as_of, figures_of, is_connection, task_facts

_MONTH: Final = re.compile(r"(\d{4})-(\d{2})")
_LAST_INSTANT: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    """One month's figures, its breached tasks and the overdue backlog at its end."""

    month: str
    start: datetime
    end: datetime
    read_at: datetime
    figures: Figures
    breached: tuple[TaskFacts, ...]
    overdue: tuple[TaskFacts, ...]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in Asia/Shanghai.

    Raises:
        ValueError: ``month`` is not ``YYYY-MM`` with a month 01-12.
    """
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match.group(2)) <= 12:  # noqa: PLR2004 - months of the year
        msg = f"month {month!r} is not YYYY-MM (e.g. 2026-11)"
        raise ValueError(msg)
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=SHANGHAI)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def facts_at(
    entries: Iterable[TaskLedgerEntry], book: PolicyBook, calendar: WorkingCalendar, at: datetime
) -> list[TaskFacts]:
    """The connection tasks as they stood at ``at``, each read then (tasks created later are left out)."""
    facts = []
    for entry in entries:
        if not is_connection(entry):
            continue
        past = as_of(entry, at)
        if past is not None:
            facts.append(task_facts(past, timeline(past, book, calendar, at)))
    return facts


def monthly(
    entries: Iterable[TaskLedgerEntry], book: PolicyBook, calendar: WorkingCalendar, *, month: str, now: datetime
) -> MonthlyReport:
    """The month's report (see the module docstring), read at its end or at ``now`` if earlier.

    Raises:
        ValueError: A bad ``month``, or one that has not begun at ``now``.
    """
    start, end = month_bounds(month)
    if now < start:
        msg = f"month {month} has not begun"
        raise ValueError(msg)
    read_at = min(end - _LAST_INSTANT, now).astimezone(UTC)
    everything = facts_at(entries, book, calendar, read_at)
    filed = [task for task in everything if start <= task.created_at < end]
    by_id = sorted(filed, key=lambda task: task.task_id)
    return MonthlyReport(
        month=month,
        start=start,
        end=end,
        read_at=read_at,
        figures=figures_of(filed, now=read_at),
        breached=tuple(task for task in by_id if task.breached),
        overdue=tuple(sorted((t for t in everything if t.overdue), key=lambda task: task.task_id)),
    )
