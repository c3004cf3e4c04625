"""What the demo should see at the far end, computed from the simulator's ground truth with the pure rules.

The pipeline's I/O (Kafka, HTTP, retries, restarts) is what the demo exercises; applying the same pure
mapping and routing to what the approval system published tells it which tasks must arrive, so it can say
whether every one arrived exactly once.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.gonggai.spgl_source import SpglSource
from routing.aishandong import ApplicationRules, application_tasks, parse_application
from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ItemStatus, ProjectEvent
from routing.service_areas import ServiceAreaTable
from routing.spgl import joined_to_event
from routing.tasks import route_project_event
from routing.triggers import task_kind_for

_GRANTED = 11
_KIND_BY_STAGE = {1: "PRE_INTERVENTION", 2: "PRE_INTERVENTION", 3: "CONSTRUCTION_READY", 4: "CONNECT"}


@dataclass
class Expectation:
    """Tasks each utility must receive, and how many records must be dead-lettered or filtered."""

    tasks: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    event_of_task: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    unserved: int = 0
    filtered: int = 0
    applications: int = 0
    complaint_orders: set[str] = field(default_factory=set)  # 12345 orders a utility serves

    @property
    def total(self) -> int:
        """Unique tasks over all utilities."""
        return sum(len(ids) for ids in self.tasks.values())


def interface_events(
    published: Iterable[Mapping[str, Any]], *, source: str, status_codes: Mapping[int, ItemStatus], now: datetime
) -> Iterator[ProjectEvent | DataError]:
    """What the data-interface path makes of the published events."""
    for raw in published:
        try:
            yield normalise(raw, source=source, ingested_at=now, status_codes=status_codes)
        except DataError as exc:
            yield exc


def exchange_events(
    url: str, *, source: str, status_codes: Mapping[int, ItemStatus], now: datetime
) -> Iterator[ProjectEvent | DataError]:
    """What the query-account path makes of the exchange database: the real reader, then the pure mapping."""
    reader = SpglSource(url, raw_topic="raw", dlq_topic="dlq", name=source)
    cursor: str | None = None
    try:
        while True:
            batch = reader.poll(cursor)
            for record in batch.records:
                if record.topic == "dlq" or record.value is None:
                    yield DataError("", "row never joined")
                    continue
                try:
                    yield joined_to_event(
                        json.loads(record.value), source=source, ingested_at=now, status_codes=status_codes
                    )
                except DataError as exc:
                    yield exc
            if batch.cursor == cursor or (not batch.records and not batch.has_more):
                return
            cursor = batch.cursor
    finally:
        reader.close()


def expected_tasks(
    events: Iterable[ProjectEvent | DataError],
    published: Iterable[Mapping[str, Any]],
    areas: ServiceAreaTable,
    *,
    now: datetime,
) -> Expectation:
    """Route every canonical event as the pipeline would; tie each task to the upstream event that caused it."""
    first_grant = _first_grants(published)
    result = Expectation()
    for event in events:
        if isinstance(event, DataError):
            result.invalid += 1
            continue
        try:
            routed = route_project_event(event, areas, now=now)
        except DataError:
            result.unserved += 1
            continue
        if routed.skipped_reason is not None:
            result.filtered += 1
        kind = task_kind_for(event)
        for task in routed.tasks:
            result.tasks[task["utility_id"]].add(task["task_id"])
            seq = first_grant.get((event["project_code"], kind or ""))
            if seq is not None:
                result.event_of_task.setdefault(task["task_id"], seq)
    return result


def _first_grants(published: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(project code, task kind) → seq of the first published grant that triggers that kind."""
    first: dict[tuple[str, str], int] = {}
    for raw in published:
        kind = _KIND_BY_STAGE.get(raw.get("dybzspjdxh"))  # type: ignore[arg-type]
        if kind is not None and raw.get("blzt") == _GRANTED:
            first.setdefault((str(raw.get("xmdm")), kind), int(raw["seq"]))
    return first


def expected_application_tasks(
    applications: Iterable[Mapping[str, Any]],
    areas: ServiceAreaTable,
    calendar: WorkingCalendar,
    rules: ApplicationRules,
    *,
    now: datetime,
    into: Expectation,
) -> None:
    """Add the tasks of the 爱山东 applications the gateway accepted (ids do not depend on the project lookup)."""
    for raw in applications:
        try:
            application = parse_application(raw, ingested_at=now, vocabulary=rules.vocabulary)
            tasks = application_tasks(
                application, areas, calendar, now=now, project=None, shared_materials=rules.shared_materials
            )
        except DataError:
            into.unserved += 1
            continue
        for task in tasks:
            into.tasks[task["utility_id"]].add(task["task_id"])
        into.applications += 1
