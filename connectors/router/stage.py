"""Router stage: canonical ``ProjectEvent`` → zero or more ``UtilityTask`` records, keyed by project.

The rules are pure (:func:`routing.tasks.route_project_event`: triggers of DESIGN §6 and the service-area
table); a record that triggers nothing is filtered with its reason (the loop counts and logs it), one that
triggers but reaches no utility is a ``DataError`` and is dead-lettered.

Withdrawals retract exactly (:mod:`routing.withdrawals`): the stage keeps, per task, the grants standing
behind it, on the compacted grants topic (key task id, JSON), written to the partition number of the project
event that changed it, as the ledger keeps its changelog; the input is keyed by project code, so a task's
events and its entry meet in one partition and one owner. On assignment the entries of the owned partitions
are rebuilt from that topic. A withdrawal that leaves a grant standing re-sends the task as ``UPDATE``; the
last one sends ``CANCEL`` and tombstones the entry; one of a grant that does not stand sends nothing (filtered
``withdrawal_of_no_standing_grant``). Each task record goes out before the entry that records it, in one
batch whose offsets are committed only after both are acknowledged. Keeping state, the stage runs in its loop
(no worker processes).

Example:
    >>> router = ProjectRouter(input_topic=..., task_topic=settings.task_topic, grants_topic=..., areas=areas,
    ...                        codec=Codec.default(), reader=KafkaChangelogReader(kafka, grants_topic))
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import cast

import structlog
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.ledger.changelog import ChangelogReader
from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.records import ProjectEvent, UtilityTask
from routing.service_areas import ServiceAreaTable
from routing.tasks import route_project_event
from routing.withdrawals import (
    NO_STANDING_GRANT,
    Grant,
    apply_event,
    as_update,
    decode_standing,
    encode_standing,
    grant_of,
)
from schemas import Codec

log = structlog.get_logger(__name__)


class ProjectRouter:
    """Routes project events to the utilities that serve their site, withdrawals exactly.

    Args:
        input_topic: The canonical project-event topic (key project code).
        task_topic: The task topic of a utility (each task goes to its utility's own).
        grants_topic: Compacted, with as many partitions as ``input_topic``.
        areas: The service-area table.
        codec: Avro codec.
        reader: Reads grants-topic partitions on assignment.
    """

    stage = "router"

    def __init__(
        self,
        *,
        input_topic: str,
        task_topic: Callable[[str], str],
        grants_topic: str,
        areas: ServiceAreaTable,
        codec: Codec,
        reader: ChangelogReader,
    ) -> None:
        self.input_topics = (input_topic,)
        self._task_topic = task_topic
        self._grants_topic = grants_topic
        self._areas = areas
        self._codec = codec
        self._reader = reader
        self.standing: dict[int, dict[str, dict[str, Grant]]] = {}  # partition → task id → identity → grant

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per project event: its tasks and the grants entries they changed."""
        return each_record(records, self._route)

    def close(self) -> None:
        """Nothing to release (the reader opens a consumer per read)."""

    def on_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebuild the standing grants of ``partitions`` from the grants topic."""
        numbers = sorted({tp.partition for tp in partitions if tp.partition not in self.standing})
        if not numbers:
            return
        restored = self._reader.read(numbers)
        for partition in numbers:
            entries: dict[str, dict[str, Grant]] = {}
            for key, record in restored.get(partition, {}).items():
                try:
                    entries[key.decode()] = decode_standing(record.value)
                except (ValueError, UnicodeDecodeError) as exc:
                    # Only this stage writes the topic; an unreadable entry is left out and reported, and the
                    # task's next grant writes a good one.
                    log.error("router_grants_unreadable", stage=self.stage, partition=partition, error=str(exc))
            self.standing[partition] = entries
            log.info("router_grants_restored", stage=self.stage, partition=partition, tasks=len(entries))

    def on_revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Forget the standing grants of ``partitions``; their next owner rebuilds them."""
        for tp in partitions:
            self.standing.pop(tp.partition, None)

    def _route(self, record: ConsumerRecord) -> Delivered:
        event = cast(ProjectEvent, self._codec.decode_as("ProjectEvent", record.value))
        routed = route_project_event(event, self._areas, now=datetime.now(UTC))
        if routed.skipped_reason is not None:
            return Delivered(filtered_reason=routed.skipped_reason)
        entries = self.standing.setdefault(record.partition, {})
        grant = grant_of(event)
        key = event["project_code"].encode()
        tasks: list[Output] = []
        changes: list[Output] = []
        for task in routed.tasks:
            task_id = task["task_id"]
            before = entries.get(task_id, {})
            change = apply_event(before, grant, withdrawn=event["retraction"])
            if change.action is None:
                log.info(NO_STANDING_GRANT, stage=self.stage, task_id=task_id, grant=grant.identity)
                continue
            sent: UtilityTask = {**task, "action": change.action}
            if change.basis is not None and change.action == "UPDATE":
                sent = as_update(task, change.basis, grant)
            if event["retraction"]:
                log.info(
                    "grant_withdrawn", stage=self.stage, task_id=task_id, grant=grant.identity, action=change.action
                )
            topic = self._task_topic(sent["utility_id"])
            tasks.append(Output(topic, key, self._codec.encode("UtilityTask", dict(sent))))
            if change.standing != before:
                changes.append(self._store(record.partition, task_id, change.standing))
        if not tasks:
            return Delivered(filtered_reason=NO_STANDING_GRANT)
        return Delivered(outputs=(*tasks, *changes))

    def _store(self, partition: int, task_id: str, standing: dict[str, Grant]) -> Output:
        """Keep a task's standing grants and write them (a tombstone when none is left) to the grants topic."""
        entries = self.standing[partition]
        if standing:
            entries[task_id] = standing
            value: bytes | None = encode_standing(standing)
        else:
            entries.pop(task_id, None)
            value = None
        return Output(self._grants_topic, task_id.encode(), value, partition=partition)
