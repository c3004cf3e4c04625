"""Hotline router: ``HotlineWorkOrder`` → one COMPLAINT ``UtilityTask`` for the utility serving the order's place.

The rule is pure (:func:`routing.hotline.complaint_task`, the service-area table of the other routers); the task
goes to its utility's own task topic, keyed by order id. Its id depends only on the order and the utility, and its
content only on what the platform said, so an order read twice (pushed and pulled, re-sent) is a repeat the sink
filters, never a second task. An order whose region and service no utility serves raises ``DataError`` and is
dead-lettered with its reason. Stateless: it may run in worker processes.
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, Output, each_record
from routing.hotline import HotlineWorkOrder, complaint_task
from routing.service_areas import ServiceAreaTable
from schemas import Codec

log = structlog.get_logger(__name__)


class HotlineRouter:
    """Routes work orders to COMPLAINT tasks.

    Args:
        input_topic: The work-order topic (key order id).
        task_topic: The task topic of a utility.
        areas: The service-area table.
        codec: Avro codec.
        clock: The current time (tests fix it).
    """

    stage = "hotline-router"

    def __init__(
        self,
        *,
        input_topic: str,
        task_topic: Callable[[str], str],
        areas: ServiceAreaTable,
        codec: Codec,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.input_topics = (input_topic,)
        self._task_topic = task_topic
        self._areas = areas
        self._codec = codec
        self._clock = clock

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """One outcome per work order."""
        return each_record(records, self._route)

    def close(self) -> None:
        """Nothing to release."""

    def _route(self, record: ConsumerRecord) -> Delivered:
        order = cast(HotlineWorkOrder, self._codec.decode_as("HotlineWorkOrder", record.value))
        task = complaint_task(order, self._areas, now=self._clock())
        value = self._codec.encode("UtilityTask", dict(task))
        output = Output(self._task_topic(task["utility_id"]), order["order_id"].encode(), value)
        # the caller's name and number stay out of the log; the order id and the deadline are what an operator needs
        log.info(
            "work_order_routed",
            stage=self.stage,
            order_id=order["order_id"],
            utility=task["utility_id"],
            service=task["service"],
            answer_due=task["answer_due"].isoformat() if task["answer_due"] else None,
        )
        return Delivered(outputs=(output,))
