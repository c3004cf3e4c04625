"""Router stage: canonical ``ProjectEvent`` → zero or more ``UtilityTask`` records, keyed by project.

The rules are pure (:func:`routing.tasks.route_project_event`: triggers of DESIGN §6 and the service-area
table); a record that triggers nothing is filtered with its reason (the loop counts and logs it), one that
triggers but reaches no utility is a ``DataError`` and is dead-lettered. Being pure, the stage can run in
worker processes (``stages.router.workers``).
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import cast

from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.records import ProjectEvent
from routing.service_areas import ServiceAreaTable
from routing.tasks import route_project_event
from schemas import Codec


class ProjectRouter:
    """Routes project events to the utilities that serve their site."""

    stage = "router"

    def __init__(self, *, input_topic: str, output_topic: str, areas: ServiceAreaTable, codec: Codec) -> None:
        self.input_topics = (input_topic,)
        self._output_topic = output_topic
        self._areas = areas
        self._codec = codec

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per project event."""
        return each_record(records, self._route)

    def _route(self, record: ConsumerRecord) -> Delivered:
        event = cast(ProjectEvent, self._codec.decode_as("ProjectEvent", record.value))
        routed = route_project_event(event, self._areas, now=datetime.now(UTC))
        if routed.skipped_reason is not None:
            return Delivered(filtered_reason=routed.skipped_reason)
        key = event["project_code"].encode()
        outputs = tuple(
            Output(self._output_topic, key, self._codec.encode("UtilityTask", task)) for task in routed.tasks
        )
        return Delivered(outputs=outputs)

    def close(self) -> None:
        """Nothing to release."""
