"""Payment delivery: ``ubridge.payments.v1`` → the account's utility (入账) → its receipt back to 爱山东.

Why a stage of its own rather than a record on the utility's task topic: a payment is no task (no stages, no
SLA clock, no revisions), the utility's billing system is not its works system, and a utility sink stops its
stage rather than skip a task, where a payment that cannot be posted must not hold the others. So each payment
is, in turn:

1. routed to the utility serving its service at its division (:func:`routing.payments.utility_of`, the service
   areas every task uses); a division no utility serves is a ``DataError``;
2. posted to that utility's ``POST /v1/payments`` (its task credentials; the endpoint from ``payments.endpoints``
   or its task endpoint's origin) with ``Idempotency-Key: <payment id>``; the answer must carry ``receipt_no``;
3. receipted back: ``POST`` to 爱山东's acknowledgement URL with ``{"payment_id", "utility_id", "account_no",
   "amount", "period", "receipt_no", "posted_at"}``, the same key.

Each post is retried a bounded number of times (:mod:`connectors.payments.client`); a refusal, or a peer still
down, dead-letters the payment with its reason and the others go on. Payments of one batch are posted
concurrently (``max_in_flight``), so one payment in retries delays its batch's commit, never its neighbours'
posting. Both peers deduplicate on the key: a repeat of the record (at-least-once), a second push of the same
payment, or a replay from the dead-letter topic posts nothing twice. Repeats this process has already seen
through are filtered (``repeated_payment``) without a request; an id seen before for another payment is a
``DataError`` (:func:`routing.payments.check_repeat`).

Example:
    >>> delivery = build_payment_delivery(settings, metrics=metrics, stop=stop, codec=Codec.default())
    >>> outcomes = list(delivery.process(records))  # Delivered, or a DataError for the dead-letter topic
"""

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.errors import StopRequested
from connectors.runtime.interface import Delivered, Outcome, outcome_of
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import PeerPoster
from routing.errors import DataError
from routing.payments import Payment, check_repeat, utility_of, yuan
from routing.service_areas import ServiceAreaTable
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "payments"
ACK_PEER: Final = "aishandong"
_REPEATED = Delivered(filtered_reason="repeated_payment")
_REMEMBERED: Final = 100_000  # payments whose round trip this process remembers, to filter repeats cheaply


@dataclass(frozen=True)
class Target:
    """Where a utility's payments go."""

    url: str
    poster: PeerPoster


def utility_body(payment: Payment, utility_id: str) -> dict[str, Any]:
    """What the utility's billing system receives: the payment, the amount in yuan again, no ingestion data."""
    return {
        "payment_id": payment["payment_id"],
        "utility_id": utility_id,
        "account_no": payment["account_no"],
        "service": payment["service"],
        "amount": yuan(payment["amount_fen"]),
        "amount_fen": payment["amount_fen"],
        "period": payment["period"],
        "channel": payment["channel"],
        "paid_at": payment["paid_at"].isoformat(),
        "payer_name": payment["payer_name"],
        "user_category": payment["user_category"],
    }


def receipt_body(payment: Payment, utility_id: str, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt (入账回执) 爱山东 receives, from the utility's answer.

    Raises:
        DataError: The utility accepted the payment without a receipt number.
    """
    receipt_no = answer.get("receipt_no")
    if not isinstance(receipt_no, str) or not receipt_no:
        raise DataError("receipt_no", f"{utility_id} accepted the payment without a receipt_no")
    posted_at = answer.get("posted_at")
    return {
        "payment_id": payment["payment_id"],
        "utility_id": utility_id,
        "account_no": payment["account_no"],
        "amount": yuan(payment["amount_fen"]),
        "period": payment["period"],
        "receipt_no": receipt_no,
        "posted_at": posted_at if isinstance(posted_at, str) else None,
    }


class PaymentDelivery:
    """Posts each payment at its utility and sends the receipt back; a :class:`Processor`.

    Args:
        input_topic: The payments topic.
        areas: The service-area table.
        targets: Utility id → its payments endpoint and poster.
        acknowledgement_url: 爱山东's receipt endpoint.
        acknowledger: The poster to 爱山东.
        codec: Avro codec.
        metrics: Process metrics.
        max_in_flight: Payments posted at once.
    """

    stage = STAGE

    def __init__(
        self,
        *,
        input_topic: str,
        areas: ServiceAreaTable,
        targets: Mapping[str, Target],
        acknowledgement_url: str,
        acknowledger: PeerPoster,
        codec: Codec,
        metrics: Metrics,
        max_in_flight: int = 8,
    ) -> None:
        self.input_topics = (input_topic,)
        self._areas = areas
        self._targets = targets
        self._ack_url = acknowledgement_url
        self._ack = acknowledger
        self._codec = codec
        self._metrics = metrics
        self._done: OrderedDict[str, Payment] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix=STAGE)

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Post the batch's payments concurrently; outcomes come back in the records' order.

        Raises:
            StopRequested: at the first payment shutdown interrupted; later ones stay uncommitted too.
        """
        futures = [self._pool.submit(self._outcome, record) for record in records]
        for future in futures:
            result = future.result()
            if isinstance(result, StopRequested):
                raise result
            yield result

    def close(self) -> None:
        """Stop the workers and close the HTTP clients."""
        self._pool.shutdown(wait=True)
        for target in self._targets.values():
            target.poster.close()
        self._ack.close()

    def _outcome(self, record: ConsumerRecord) -> Outcome | StopRequested:
        try:
            return outcome_of(self._deliver, record)
        except StopRequested as stop:
            return stop

    def _deliver(self, record: ConsumerRecord) -> Delivered:
        payment = cast(Payment, self._codec.decode_as("Payment", record.value))
        payment_id = payment["payment_id"]
        self._metrics.payments_received.inc()
        with self._lock:
            repeat = check_repeat(self._done.get(payment_id), payment)
        if repeat:
            log.info("payment_repeated", stage=STAGE, payment_id=payment_id)
            return _REPEATED
        utility = utility_of(payment, self._areas)
        target = self._targets.get(utility)
        if target is None:
            raise DataError("", f"utility {utility} serves the account but has no business system configured")
        answer = target.poster.post(target.url, utility_body(payment, utility), key=payment_id)
        receipt = receipt_body(payment, utility, answer)
        # a "duplicate" answer is a payment posted (or receipted) before: counted then, not again
        if answer.get("status") != "duplicate":
            self._metrics.payments_delivered.labels(utility).inc()
            self._metrics.payment_amount_fen.labels(utility).inc(payment["amount_fen"])
        acknowledged = self._ack.post(self._ack_url, receipt, key=payment_id)
        if acknowledged.get("status") != "duplicate":
            self._metrics.payments_acknowledged.labels(utility).inc()
        with self._lock:
            self._done[payment_id] = payment
            if len(self._done) > _REMEMBERED:
                self._done.popitem(last=False)
        log.info(
            "payment_delivered",
            stage=STAGE,
            payment_id=payment_id,
            utility=utility,
            amount_fen=payment["amount_fen"],
            receipt_no=receipt["receipt_no"],
        )
        return Delivered()
