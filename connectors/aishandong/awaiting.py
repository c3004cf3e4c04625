"""Applications whose tasks still wait for documents the approval system shares (seed 000 "项目图纸由住建…共享").

An application that cites a project code, routed while the project table lacked the project or its permits
and drawings, is *awaiting*: its Avro bytes are kept on the compacted ``ubridge.applications.awaiting.v1``,
keyed by application id in the partition of its input record (the topic follows the applications topic
partition for partition). When the project table later holds a newer event of that project, the router's tick
routes the application again with it: the tasks carry the shared documents, and each utility's sink delivers
them as a new revision of the same task (an unchanged task is a repeat the sink does not send). Once nothing
is left to fetch from the approval system, the application is released (a tombstone).

State follows the router's input partitions: read back on assignment, dropped on revocation.
"""

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol, cast

import structlog
from kafka import TopicPartition

from connectors.runtime.interface import Output
from routing.aishandong import awaits_approval_system
from routing.errors import DataError
from routing.records import ConnectionApplication, ProjectEvent, UtilityTask
from schemas import Codec

log = structlog.get_logger(__name__)

RELEASED = b""


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
    application: ConnectionApplication
    value: bytes
    event_id: str | None  # the project event the tasks were last built from


class Due(NamedTuple):
    """An awaiting application whose project has a newer event."""

    partition: int
    application: ConnectionApplication
    value: bytes
    project: ProjectEvent


class AwaitingApplications:
    """The awaiting applications of the owned partitions.

    Args:
        topic: The compacted awaiting topic.
        reader: Reads it back on assignment.
        table: The project table (never a remote lookup: it is asked about every awaiting application each tick).
        codec: Avro codec.
    """

    def __init__(self, *, topic: str, reader: PartitionReader, table: ProjectTable, codec: Codec) -> None:
        self._topic = topic
        self._reader = reader
        self._table = table
        self._codec = codec
        self._waiting: dict[int, dict[str, _Waiting]] = {}

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
                waiting[key.decode()] = _Waiting(app, value, None)
            self._waiting[partition] = waiting
            log.info("awaiting_applications_restored", partition=partition, applications=len(waiting))

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the applications of partitions given up."""
        for tp in partitions:
            self._waiting.pop(tp.partition, None)

    def routed(
        self,
        partition: int,
        value: bytes,
        app: ConnectionApplication,
        project: ProjectEvent | None,
        tasks: Sequence[UtilityTask],
    ) -> list[Output]:
        """Keep or release an application just routed; the record that says so on the awaiting topic."""
        waiting = self._waiting.setdefault(partition, {})
        app_id = app["application_id"]
        if app["project_code"] is not None and awaits_approval_system(tasks):
            stored = app_id in waiting  # already on the topic: the same bytes need not be written again
            waiting[app_id] = _Waiting(app, value, None if project is None else project["event_id"])
            return [] if stored else [Output(self._topic, app_id.encode(), value, partition=partition)]
        if waiting.pop(app_id, None) is not None:
            return [Output(self._topic, app_id.encode(), RELEASED, partition=partition)]
        return []

    def due(self) -> Iterator[Due]:
        """The awaiting applications whose project the table now knows better than when they were routed."""
        for partition, waiting in self._waiting.items():
            for item in list(waiting.values()):
                code = item.application["project_code"]
                project = None if code is None else self._table.get(code)
                if project is not None and project["event_id"] != item.event_id:
                    yield Due(partition, item.application, item.value, project)

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())
