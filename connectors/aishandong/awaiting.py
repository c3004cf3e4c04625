"""Applications whose tasks still wait for documents the approval system shares (seed 000 "项目图纸由住建…共享").

An application that cites a project code, routed while the project table lacked the project or its permits
and drawings, is *awaiting*: its Avro bytes are kept on the compacted ``ubridge.applications.awaiting.v1``,
keyed by application id in the partition of its input record (the topic follows the applications topic
partition for partition). When the project table later holds a newer event of that project, the router's tick
routes the application again with it: the tasks carry the shared documents, and each utility's sink delivers
them as a new revision of the same task (an unchanged task is a repeat the sink does not send). Once nothing
is left to fetch from the approval system, the application is released (a tombstone).

The topic keeps only what routing again needs (:func:`routing.personal_data.strip_awaiting_application`: no
ID number, no note), and an application filed longer than ``contact_retention`` ago (with its applicant's
name and mobile) is released at the next tick whatever it still awaits (log ``awaiting_application_expired``):
its tasks reached the utilities long ago, and the data-exchange documents still missing are fetched by the
utility itself. A record written before the topic was stripped is rewritten stripped when it is read back.

State follows the router's input partitions: read back on assignment, dropped on revocation.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple, Protocol, cast

import structlog
from kafka import TopicPartition

from connectors.runtime.interface import Output
from routing.aishandong import awaits_approval_system
from routing.errors import DataError
from routing.personal_data import contact_expired, strip_awaiting_application
from routing.records import ConnectionApplication, ProjectEvent, UtilityTask
from schemas import Codec

log = structlog.get_logger(__name__)

RELEASED = b""
DEFAULT_CONTACT_RETENTION: Final = timedelta(days=30)


class PartitionReader(Protocol):
    """Reads the latest value per key of some partitions of a compacted topic."""

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
        """Key → value per partition."""
        ...


class ProjectTable(Protocol):
    """The latest event of each project, held locally."""

    def get(self, project_code: str) -> ProjectEvent | None:
        """The project's latest event, or None."""
        ...


class _Waiting(NamedTuple):
    application: ConnectionApplication  # as the topic keeps it (stripped)
    event_id: str | None  # the project event the tasks were last built from


class Due(NamedTuple):
    """An awaiting application whose project has a newer event."""

    partition: int
    application: ConnectionApplication
    project: ProjectEvent


class AwaitingApplications:
    """The awaiting applications of the owned partitions.

    Args:
        topic: The compacted awaiting topic.
        reader: Reads it back on assignment.
        table: The project table (never a remote lookup: it is asked about every awaiting application each tick).
        codec: Avro codec.
        contact_retention: How long after its filing an application may wait (``privacy.contact_retention_days``).
    """

    def __init__(
        self,
        *,
        topic: str,
        reader: PartitionReader,
        table: ProjectTable,
        codec: Codec,
        contact_retention: timedelta = DEFAULT_CONTACT_RETENTION,
    ) -> None:
        self._topic = topic
        self._reader = reader
        self._table = table
        self._codec = codec
        self._retention = contact_retention
        self._waiting: dict[int, dict[str, _Waiting]] = {}
        self._unstripped: set[tuple[int, str]] = set()  # read back as written before the topic was stripped

    def restore(self, partitions: Sequence[TopicPartition]) -> None:
        """Read back the awaiting applications of newly owned partitions."""
        numbers = sorted({tp.partition for tp in partitions if tp.partition not in self._waiting})
        if not numbers:
            return
        for partition, values in self._reader.read(numbers).items():
            waiting: dict[str, _Waiting] = {}
            for key, value in values.items():
                try:
                    app = cast(ConnectionApplication, self._codec.decode_as("ConnectionApplication", value))
                except DataError as exc:
                    log.warning("awaiting_application_unreadable", topic=self._topic, reason=exc.reason)
                    continue
                kept = strip_awaiting_application(app)
                waiting[key.decode()] = _Waiting(kept, None)
                if kept != app:
                    self._unstripped.add((partition, key.decode()))
            self._waiting[partition] = waiting
            log.info("awaiting_applications_restored", partition=partition, applications=len(waiting))

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the applications of partitions given up."""
        for tp in partitions:
            self._waiting.pop(tp.partition, None)
        self._unstripped = {(p, app_id) for p, app_id in self._unstripped if p in self._waiting}

    def routed(
        self,
        partition: int,
        app: ConnectionApplication,
        project: ProjectEvent | None,
        tasks: Sequence[UtilityTask],
    ) -> list[Output]:
        """Keep or release an application just routed; the record that says so on the awaiting topic."""
        waiting = self._waiting.setdefault(partition, {})
        app_id = app["application_id"]
        if app["project_code"] is not None and awaits_approval_system(tasks):
            stored = app_id in waiting  # already on the topic: the same bytes need not be written again
            kept = strip_awaiting_application(app)
            waiting[app_id] = _Waiting(kept, None if project is None else project["event_id"])
            if stored:
                return []
            value = self._codec.encode("ConnectionApplication", kept)
            return [Output(self._topic, app_id.encode(), value, partition=partition)]
        self._unstripped.discard((partition, app_id))
        if waiting.pop(app_id, None) is not None:
            return [Output(self._topic, app_id.encode(), RELEASED, partition=partition)]
        return []

    def tidy(self, now: datetime) -> list[Output]:
        """Release the applications past their contact retention; rewrite stripped those read back unstripped."""
        outputs: list[Output] = []
        for partition, waiting in self._waiting.items():
            for app_id, item in list(waiting.items()):
                if contact_expired(item.application["filed_at"], now, self._retention):
                    del waiting[app_id]
                    self._unstripped.discard((partition, app_id))
                    outputs.append(Output(self._topic, app_id.encode(), RELEASED, partition=partition))
                    log.info("awaiting_application_expired", application_id=app_id, partition=partition)
        for partition, app_id in sorted(self._unstripped):
            kept = strip_awaiting_application(self._waiting[partition][app_id].application)
            value = self._codec.encode("ConnectionApplication", kept)
            outputs.append(Output(self._topic, app_id.encode(), value, partition=partition))
            log.info("awaiting_application_stripped", application_id=app_id, partition=partition)
        self._unstripped.clear()
        return outputs

    def due(self) -> Iterator[Due]:
        """The awaiting applications whose project the table now knows better than when they were routed."""
        for partition, waiting in self._waiting.items():
            for item in list(waiting.values()):
                code = item.application["project_code"]
                project = None if code is None else self._table.get(code)
                if project is not None and project["event_id"] != item.event_id:
                    yield Due(partition, item.application, project)

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())
