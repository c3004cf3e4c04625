"""What ubridge's compacted tables keep of personal data: only what their readers need (README "Personal data at rest").

A compacted topic keeps its latest record per key until the key is tombstoned, so whatever a table record
carries stays as long as the key lives: years, for a project. Each table's writer therefore stores the
record as stripped here, and the stream topics (time-limited by ``kafka.retention``) carry the rest.

* The project table (read by the 爱山东 router for permits, drawings, demand, builder and figures) keeps no
  contact: the router takes an application's contact from the application itself.
* An awaiting application (re-routed when the project table learns more) keeps its applicant's name and
  mobile, which its updated tasks carry to the utility, but not the ID number, the free-text note, nor an ID
  number written as a material's number; it is released after ``privacy.contact_retention_days``.
* A ledger's held status keeps no contact of the task it may carry, and its free text is masked.

>>> strip_project_event(event)["contact_mobile"] is None
True
"""

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Final

from routing.errors import DataError
from routing.identifiers import validate_id_number
from routing.privacy import mask_text
from routing.records import ConnectionApplication, Document, ProjectEvent, TaskStatus, UtilityTask

CONTACT_FIELDS: Final = frozenset({"contact_name", "contact_mobile"})
# 17 digits and a check character standing on their own (not inside a longer code such as a USCC or a hash)
_ID_CANDIDATE: Final = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def strip_project_event(event: ProjectEvent) -> ProjectEvent:
    """The project-table copy of an event: no contact, nor a repair note about one."""
    repairs = [item.copy() for item in event["repairs"] if item["field"] not in CONTACT_FIELDS]
    return {**event, "contact_name": None, "contact_mobile": None, "repairs": repairs}


def strip_awaiting_application(app: ConnectionApplication) -> ConnectionApplication:
    """The awaiting-table copy of an application: what routing it again needs, without ID numbers or the note."""
    materials = [_without_id_number(document) for document in app["materials"]]
    return {**app, "applicant_id_number": None, "note": None, "materials": materials}


def contact_expired(filed_at: datetime, now: datetime, retention: timedelta) -> bool:
    """Whether a record filed at ``filed_at`` has kept its contact for ``retention`` by ``now``."""
    return now - filed_at >= retention


def strip_task(task: UtilityTask) -> UtilityTask:
    """A task without its contact (the ledger clocks tasks; it never calls anybody)."""
    return {**task, "contact_name": None, "contact_mobile": None}


def strip_held_status(status: TaskStatus) -> TaskStatus:
    """A status as the ledger holds it on its changelog: its task's contact dropped, its free text masked."""
    task = status["task"]
    return {
        **status,
        "reason": None if status["reason"] is None else mask_text(status["reason"]),
        "detail": None if status["detail"] is None else mask_text(status["detail"]),
        "task": None if task is None else strip_task(task),
    }


def id_numbers_in(value: object) -> list[str]:
    """Every valid ID number (GB 11643, residence permits included) found in a decoded record, at any depth."""
    return [found for text in _strings(value) for found in _ID_CANDIDATE.findall(text) if _is_id_number(found)]


def _without_id_number(document: Document) -> Document:
    number = document["number"]
    if number is not None and id_numbers_in(number):
        return {**document, "number": None}
    return document.copy()


def _is_id_number(text: str) -> bool:
    try:
        validate_id_number(text)
    except DataError:
        return False
    return True


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
