"""Router stage for 爱山东 applications: ``ConnectionApplication`` → one APPLICATION ``UtilityTask`` per service.

Tasks go to ``ubridge.tasks.v1`` keyed by application id (the rules: :func:`routing.aishandong.application_tasks`).
An application that cites a project code is enriched with that project's latest event (its documents, builder,
demands and figures), looked up through a :class:`ProjectLookup`:

* :class:`KafkaProjectTable` keeps the latest ``ProjectEvent`` per project code from the compacted project
  table ``ubridge.projects.v1`` (written by the ``project-table`` stage). A background thread owns a
  consumer *without a group* that is assigned every partition and reads from the beginning, so every router
  process holds the whole table (one event per project) and no offsets are committed. The table is kept
  on local disk (:class:`~connectors.aishandong.project_store.ProjectStore`), so memory does not grow with
  the number of projects. Until it has caught up with the end offsets it had at start,
  :meth:`~KafkaProjectTable.wait_ready` blocks (the wiring calls it before the stage starts).
* :class:`HttpProjectLookup` asks the approval system (``GET {base}/api/v1/projects/{code}``, bearer token,
  the answer one event in the default data-interface format) for a project the table does not know yet.
* :class:`ChainedLookup` tries them in order.

A lookup never blocks an application (容缺受理): a project that cannot be found, or a lookup that fails, yields
tasks flagged ``project_not_found`` and the failure is logged. Neither does the working calendar: a filing
time it cannot clock yields tasks with ``contact_due`` null, flagged ``contact_due_unclocked`` with the reason
(log ``contact_due_unclocked``, metric ``ubridge_tasks_unclocked_total``). An application no utility can take
is a ``DataError`` and is dead-lettered by the runtime.

Shared documents that arrive later: an application whose tasks still wait for the approval system's permits
or drawings is kept (:mod:`connectors.aishandong.awaiting`) and routed again, on the stage's tick, once the
project table holds a newer event of its project; the utility receives the documents as a new revision.
"""

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import quote

import httpx
import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import SecretStr

from connectors.aishandong.awaiting import AwaitingApplications
from connectors.aishandong.project_store import ProjectStore
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from connectors.runtime.metrics import Metrics
from routing.aishandong import CONTACT_DUE_UNCLOCKED_FLAG, MaterialSource, application_tasks
from routing.calendar import WorkingCalendar
from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ConnectionApplication, ProjectEvent, UtilityTask
from routing.service_areas import ServiceAreaTable
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE = "router-aishandong"
_POLL_MS = 200
_HTTP_NOT_FOUND = 404
_HTTP_OK = 200


class ProjectLookup(Protocol):
    """Finds the latest event of a project."""

    def get(self, project_code: str) -> ProjectEvent | None:
        """The project's latest event, or None when unknown (or the lookup failed: never raises)."""
        ...

    def close(self) -> None:
        """Release threads and connections."""
        ...


class NoProjects:
    """A lookup that knows no project (deployments without the approval-system feed)."""

    def get(self, project_code: str) -> ProjectEvent | None:
        """Always None."""
        return None

    def close(self) -> None:
        """Nothing to release."""


class ChainedLookup:
    """Asks each lookup in turn; the first that knows the project wins."""

    def __init__(self, *lookups: ProjectLookup) -> None:
        self._lookups = lookups

    def get(self, project_code: str) -> ProjectEvent | None:
        """The first answer that is not None."""
        for lookup in self._lookups:
            event = lookup.get(project_code)
            if event is not None:
                return event
        return None

    def close(self) -> None:
        """Close every lookup."""
        for lookup in self._lookups:
            lookup.close()


class KafkaProjectTable:
    """The latest ``ProjectEvent`` per project code, read from the project table by a background thread.

    Args:
        consumer: A consumer with ``group_id=None`` (it is assigned partitions, never subscribed).
        topic: The compacted project-table topic (with the prefix).
        codec: Avro codec.
        store_dir: Where the table's local file goes (None: the system's temporary directory).
    """

    def __init__(
        self, consumer: KafkaConsumer, *, topic: str, codec: Codec | None = None, store_dir: Path | None = None
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._codec = codec or Codec.default()
        self._store = ProjectStore(store_dir)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"project-table-{topic}", daemon=True)

    def start(self) -> "KafkaProjectTable":
        """Start reading; returns self."""
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the table has read up to the end offsets it saw at start; False on timeout."""
        return self._ready.wait(timeout_s)

    def __len__(self) -> int:
        return len(self._store)

    def get(self, project_code: str) -> ProjectEvent | None:
        """The latest event read for ``project_code``."""
        value = self._store.get(project_code)
        return None if value is None else cast(ProjectEvent, self._codec.decode_as("ProjectEvent", value))

    def close(self) -> None:
        """Stop the thread (it closes the consumer) and delete the local copy."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._store.close()

    def _run(self) -> None:
        try:
            partitions = self._assign()
            if partitions is None:
                return
            end = self._consumer.end_offsets(partitions)
            while not self._stop.is_set():
                for batch in self._consumer.poll(timeout_ms=_POLL_MS).values():
                    self._store.put_many(item for item in map(self._checked, batch) if item is not None)
                if not self._ready.is_set() and all(self._consumer.position(tp) >= end[tp] for tp in partitions):
                    self._ready.set()
                    log.info("project_table_ready", topic=self._topic, projects=len(self))
        except Exception:
            log.exception("project_table_failed", topic=self._topic)
        finally:
            self._consumer.close()

    def _assign(self) -> list[TopicPartition] | None:
        while not self._stop.is_set():
            known = self._consumer.partitions_for_topic(self._topic)
            if known:
                partitions = [TopicPartition(self._topic, p) for p in sorted(known)]
                self._consumer.assign(partitions)
                self._consumer.seek_to_beginning(*partitions)
                return partitions
            self._stop.wait(0.5)
        return None

    def _checked(self, record: ConsumerRecord) -> tuple[str, bytes] | None:
        """The record's project code and bytes, if it is a ProjectEvent; else it is logged and skipped."""
        try:
            event = cast(ProjectEvent, self._codec.decode_as("ProjectEvent", record.value))
        except DataError as exc:
            log.warning("project_table_skipped", topic=self._topic, offset=record.offset, reason=exc.reason)
            return None
        return event["project_code"], record.value


class HttpProjectLookup:
    """Asks the approval system for one project: ``GET {base_url}/api/v1/projects/{code}`` with a bearer token.

    A 200 answer is one event in the default data-interface format (validated with
    :func:`routing.gonggai.normalise`); 404 means unknown. Any other answer, a transport error or an invalid
    event is logged and yields None: enrichment must never hold an application up.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: SecretStr,
        timeout_s: float = 5.0,
        source: str = "gonggai-lookup",
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._source = source
        self._clock = clock

    def get(self, project_code: str) -> ProjectEvent | None:
        """The approval system's view of the project, or None."""
        try:
            return self._fetch(project_code)
        except _LookupFailed as exc:
            log.warning("project_lookup_failed", project_code=project_code, error=str(exc))
            return None

    def _fetch(self, project_code: str) -> ProjectEvent | None:
        try:
            response = self._client.get(f"/api/v1/projects/{quote(project_code, safe='')}")
        except httpx.HTTPError as exc:
            raise _LookupFailed(str(exc)) from exc
        if response.status_code == _HTTP_NOT_FOUND:
            return None
        if response.status_code != _HTTP_OK:
            msg = f"HTTP {response.status_code}"
            raise _LookupFailed(msg)
        try:
            raw = response.json()
            if not isinstance(raw, Mapping):
                raise _LookupFailed("answer is not a JSON object")
            event = normalise(raw, source=self._source, ingested_at=self._clock())
        except (ValueError, DataError) as exc:
            raise _LookupFailed(str(exc)) from exc
        if event["project_code"] != project_code:
            raise _LookupFailed("answer is about another project")
        return event

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


class ApplicationRouter:
    """Routes 爱山东 applications to the utilities that serve their site; a :class:`Processor`.

    Args:
        input_topic: The applications topic.
        output_topic: The tasks topic.
        areas: The service-area table.
        calendar: The working calendar (contact within 3 working hours).
        shared_materials: Application kind → material kind → where data sharing gets it (aishandong.yaml).
        projects: Where cited projects are looked up; closed with the stage.
        awaiting: Applications waiting for shared documents (:mod:`connectors.aishandong.awaiting`); None
            routes each application once.
        codec: Avro codec.
        metrics: Where unclocked tasks are counted (none in unit tests).
        clock: The current time (tests fix it).
    """

    stage = STAGE

    def __init__(
        self,
        *,
        input_topic: str,
        output_topic: str,
        areas: ServiceAreaTable,
        calendar: WorkingCalendar,
        shared_materials: Mapping[str, Mapping[str, MaterialSource]],
        projects: ProjectLookup,
        awaiting: AwaitingApplications | None = None,
        codec: Codec | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.input_topics = (input_topic,)
        self._awaiting = awaiting
        self._metrics = metrics
        self._output_topic = output_topic
        self._areas = areas
        self._calendar = calendar
        self._shared = shared_materials
        self._projects = projects
        self._codec = codec or Codec.default()
        self._clock = clock

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per application."""
        return each_record(records, self._route)

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Read back the awaiting applications of newly owned partitions."""
        if self._awaiting is not None:
            self._awaiting.restore(partitions)

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop the awaiting applications of partitions given up."""
        if self._awaiting is not None:
            self._awaiting.forget(partitions)

    def tick(self, now: datetime) -> Sequence[Output]:
        """Release the awaiting applications past their retention; route again those whose project is better known."""
        if self._awaiting is None:
            return ()
        outputs = self._awaiting.tidy(now)
        for due in list(self._awaiting.due()):
            app = due.application
            try:
                tasks = self._tasks(app, due.project)
            except DataError as exc:  # it routed before, so only a changed service-area table gets here
                log.warning("application_update_failed", application_id=app["application_id"], reason=exc.reason)
                continue
            key = app["application_id"].encode()
            outputs += [Output(self._output_topic, key, self._codec.encode("UtilityTask", task)) for task in tasks]
            outputs += self._awaiting.routed(due.partition, app, due.project, tasks)
            log.info("application_updated", stage=self.stage, application_id=app["application_id"], tasks=len(tasks))
        return outputs

    def _tasks(self, app: ConnectionApplication, project: ProjectEvent | None) -> list[UtilityTask]:
        return application_tasks(
            app, self._areas, self._calendar, now=self._clock(), project=project, shared_materials=self._shared
        )

    def _route(self, record: ConsumerRecord) -> Delivered:
        app = cast(ConnectionApplication, self._codec.decode_as("ConnectionApplication", record.value))
        code = app["project_code"]
        project = None if code is None else self._projects.get(code)
        tasks = self._tasks(app, project)
        unclocked = [task for task in tasks if CONTACT_DUE_UNCLOCKED_FLAG in task["flags"]]
        if unclocked:
            log.warning(
                "contact_due_unclocked",
                stage=self.stage,
                application_id=app["application_id"],
                reason=unclocked[0]["contact_due_note"],
            )
            if self._metrics is not None:
                self._metrics.tasks_unclocked.labels(self.stage).inc(len(unclocked))
        key = app["application_id"].encode()
        outputs = [Output(self._output_topic, key, self._codec.encode("UtilityTask", task)) for task in tasks]
        if self._awaiting is not None:
            outputs += self._awaiting.routed(record.partition, app, project, tasks)
        log.info(
            "application_routed",
            stage=self.stage,
            application_id=app["application_id"],
            tasks=len(tasks),
            project_found=project is not None,
        )
        return Delivered(outputs=tuple(outputs))

    def close(self) -> None:
        """Close the project lookup."""
        self._projects.close()


class _LookupFailed(Exception):
    """The approval system could not answer usefully."""
