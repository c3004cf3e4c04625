"""Turning a triggering project event into one task per (utility, service) (DESIGN §6).

Task ids are deterministic, so a replayed or duplicated event maps onto the task it already created: each
utility's sink sees the same content again and sends nothing, while a change (the stage-2 drawings, a
retraction) goes out as the next revision of that task (:mod:`routing.revisions`). For approval-system
events the identity is the project, not the event: the stage-1 and stage-2 grants of one project are one
pre-intervention task.

A granted stage-2 event for a site in 芝罘区 (370602) demanding water and gas yields two tasks,
``yantai-water``/WATER and ``yantai-gas``/GAS, both PRE_INTERVENTION; the same event with ``retraction``
set yields the same two task ids with ``action="CANCEL"``.
"""

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Final, NamedTuple

from routing.errors import DataError
from routing.records import Demand, ProjectEvent, Service, TaskKind, UtilityTask
from routing.service_areas import ServiceAreaTable
from routing.services import shipped_services
from routing.triggers import trigger_for
from routing.user_category import shipped_categories, user_category

_TASK_ID_LENGTH: Final = 32
_GONGGAI_IDENTITY_PREFIX: Final = "gonggai:"
_REGION_FIELD: Final = "region_code"
_DEMANDS_FIELD: Final = "demands"

# (utility, service, demand or None when unknown)
_Target = tuple[str, Service, Demand | None]


class Routed(NamedTuple):
    """The tasks an event produced, or why it produced none."""

    tasks: list[UtilityTask]
    skipped_reason: str | None


def task_id(source_identity: str, utility_id: str, service: Service, kind: TaskKind) -> str:
    """Return the deterministic id of a task: the first 32 hex characters of a SHA-256.

    Args:
        source_identity: What the task is about at the source, e.g. ``"gonggai:" + project_code``.
        utility_id: The utility the task is for.
        service: The service.
        kind: The task kind.

    Returns:
        32 lowercase hex characters.
    """
    # The unit separator cannot occur in any of the parts, so distinct tuples never hash the same text.
    text = "\x1f".join((source_identity, utility_id, service, kind))
    return hashlib.sha256(text.encode()).hexdigest()[:_TASK_ID_LENGTH]


def project_identity(project_code: str) -> str:
    """Return the source identity of every approval-system task about one project."""
    return _GONGGAI_IDENTITY_PREFIX + project_code


def route_project_event(event: ProjectEvent, areas: ServiceAreaTable, *, now: datetime) -> Routed:
    """Build the tasks a project event triggers.

    With known demands, each demanded service goes to the utility serving the site; services nobody serves
    are flagged ``unserved_service:<SERVICE>`` on the tasks that are built. With unknown demand, every
    utility covering the site gets a task with ``demand=None``. A retraction yields the same task ids with
    ``action="CANCEL"``.

    Args:
        event: A canonical project event.
        areas: The service-area table.
        now: The current time (timezone-aware), recorded as ``created_at``.

    Returns:
        The tasks, or no tasks and the reason the event triggers nothing.

    Raises:
        DataError: If the event triggers a task but no utility serves any wanted service at the site, or if
            a service is demanded twice.
        ValueError: If ``now`` is naive.
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    kind, reason = trigger_for(event)
    if kind is None:
        return Routed([], reason)
    targets, routing_flags = _targets(event, areas)
    identity = project_identity(event["project_code"])
    flags = [*event["flags"], *routing_flags]
    tasks = [_task(event, target, kind=kind, identity=identity, flags=flags, now=now) for target in targets]
    return Routed(tasks, None)


def _targets(event: ProjectEvent, areas: ServiceAreaTable) -> tuple[list[_Target], list[str]]:
    region = event["region_code"]
    if not event["demands"]:
        covered = areas.coverage(region)
        if not covered:
            raise DataError(_REGION_FIELD, _unserved(region, shipped_services().codes))
        return [(utility, service, None) for utility, service in covered], []
    served: list[_Target] = []
    unserved: list[Service] = []
    seen: set[Service] = set()
    for demand in event["demands"]:
        service = demand["service"]
        if service in seen:
            raise DataError(_DEMANDS_FIELD, f"{service} is demanded twice; one demand per service expected")
        seen.add(service)
        utility = areas.utility_for(region, service)
        if utility is None:
            unserved.append(service)
        else:
            served.append((utility, service, demand))
    if not served:
        raise DataError(_REGION_FIELD, _unserved(region, unserved))
    return served, [f"unserved_service:{service}" for service in unserved]


def _unserved(region: str, services: Iterable[Service]) -> str:
    return f"no utility serves region {region} for {', '.join(services)}"


def _task(
    event: ProjectEvent, target: _Target, *, kind: TaskKind, identity: str, flags: list[str], now: datetime
) -> UtilityTask:
    utility, service, demand = target
    return {
        "task_id": task_id(identity, utility, service, kind),
        "kind": kind,
        "action": "CANCEL" if event["retraction"] else "CREATE",
        "utility_id": utility,
        "service": service,
        "demand": None if demand is None else demand.copy(),
        "project_code": event["project_code"],
        "project_name": event["project_name"],
        "region_code": event["region_code"],
        "site_address": event["site_address"],
        "builder_name": event["builder_name"],
        "builder_uscc": event["builder_uscc"],
        "contact_name": event["contact_name"],
        "contact_mobile": event["contact_mobile"],
        "project_nature": event["project_nature"],
        "floor_area_m2": event["floor_area_m2"],
        "land_area_m2": event["land_area_m2"],
        "trigger_stage": event["stage"],
        "documents": [document.copy() for document in event["documents"]],
        "missing_materials": [],
        "application_id": None,
        "source": event["source"],
        "source_event_id": event["event_id"],
        "occurred_at": event["occurred_at"],
        "ingested_at": event["ingested_at"],
        "created_at": now,
        "contact_due": None,
        "contact_due_note": None,
        "flags": list(flags),
        "application_filed_at": None,
        "application_kind": None,
        "permit_granted_at": event["occurred_at"] if event["item_status"] == "GRANTED" else None,
        "revision": 0,
        "materials_to_fetch": [],
        "dropped_materials": [],
        "user_category": user_category(shipped_categories(), stated=None, uscc=event["builder_uscc"], is_person=False),
        "work_order_id": None,
        "answer_due": None,
        "complaint": None,
    }
