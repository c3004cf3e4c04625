"""What the demo should see at the far end, computed from the simulator's ground truth with the pure rules.

The pipeline's I/O (Kafka, HTTP, retries, restarts) is what the demo exercises; applying the same pure
mapping and routing to the raw events tells it which tasks must arrive, so it can say whether every one
arrived exactly once.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ItemStatus
from routing.service_areas import ServiceAreaTable
from routing.tasks import route_project_event


@dataclass
class Expectation:
    """Tasks each utility must receive, and how many events must be dead-lettered or filtered."""

    tasks: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    event_of_task: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    unserved: int = 0
    filtered: int = 0

    @property
    def total(self) -> int:
        """Unique tasks over all utilities."""
        return sum(len(ids) for ids in self.tasks.values())


def expected_tasks(
    events: Iterable[Mapping[str, Any]],
    areas: ServiceAreaTable,
    *,
    source: str,
    status_codes: Mapping[int, ItemStatus],
    now: datetime,
) -> Expectation:
    """Route every raw event as the pipeline would; remember the first event that caused each task."""
    result = Expectation()
    for raw in events:
        try:
            event = normalise(raw, source=source, ingested_at=now, status_codes=status_codes)
        except DataError:
            result.invalid += 1
            continue
        try:
            routed = route_project_event(event, areas, now=now)
        except DataError:
            result.unserved += 1
            continue
        if routed.skipped_reason is not None:
            result.filtered += 1
        for task in routed.tasks:
            result.tasks[task["utility_id"]].add(task["task_id"])
            result.event_of_task.setdefault(task["task_id"], int(raw["seq"]))
    return result
