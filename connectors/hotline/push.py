"""12345 hotline, pushed: the platform POSTs signed work orders and return visits to ubridge.

``POST /v1/hotline/work-orders`` takes one work order, ``POST /v1/hotline/return-visits`` one return visit (JSON
objects in the platform's format: :mod:`routing.hotline`). Signing, replay refusal, charsets (UTF-8, GBK,
GB18030) and the answers are the 爱山东 gateway's (:mod:`connectors.aishandong.gateway`,
:mod:`connectors.runtime.signed_push`): 202 only once the record is durable in Kafka; 401 a bad or replayed
signature; 415/400 a body in another type or charset, or not JSON; 422 a record that fails validation, with the
platform's ``field``; 429/503 with ``Retry-After``.

A work order becomes an Avro ``HotlineWorkOrder`` on ``ubridge.hotline.work-orders.v1``, a visit a
``ReturnVisit`` on ``ubridge.hotline.return-visits.v1``, both keyed by order id (so an order's visits follow its
order in one partition), with headers ``ubridge.source`` and ``ubridge.ingested_at``. Reasons never quote a
mobile number in clear.
"""

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from kafka import KafkaProducer
from pydantic import BaseModel, Field, RootModel, SecretStr
from typing_extensions import Unpack

from connectors.hotline.settings import HotlinePushSettings
from connectors.runtime.http_intake import HttpIntake, IntakeRoute
from connectors.runtime.metrics import Metrics
from connectors.runtime.signed_records import PushOptions, RecordPath, SignedRecordPush, serve_signed, signed_refusals
from connectors.settings import KafkaSettings
from routing.hotline import PUSH_SOURCE, parse_return_visit, parse_work_order

WORK_ORDERS_PATH: Final = "/v1/hotline/work-orders"
RETURN_VISITS_PATH: Final = "/v1/hotline/return-visits"
STAGE: Final = "hotline-push"


class HotlineBody(RootModel[dict[str, Any]]):
    """One work order or return visit in the platform's format (see ``routing.hotline``)."""


class HotlineAccepted(BaseModel):
    """The record is on its topic."""

    accepted: int = Field(description="Always 1.")
    order_id: str = Field(description="The work order's number (gdbh).")


_REFUSALS: Final = signed_refusals("The record fails validation (field: the platform's field).")
ROUTES: Final = (
    IntakeRoute(
        path=WORK_ORDERS_PATH,
        summary="Push a signed 12345 work order",
        body=HotlineBody,
        accepted=HotlineAccepted,
        refusals=_REFUSALS,
    ),
    IntakeRoute(
        path=RETURN_VISITS_PATH,
        summary="Push a signed 12345 return visit",
        body=HotlineBody,
        accepted=HotlineAccepted,
        refusals=_REFUSALS,
    ),
)


class HotlinePush(SignedRecordPush):
    """Answers the two push paths: verifies, decodes and validates, then hands over one record.

    Args:
        secret: The HMAC key shared with the platform.
        work_orders_topic: The work-order topic (with the prefix).
        return_visits_topic: The return-visit topic (with the prefix).
        name: Stage name; also the ``ubridge.source`` header.
        options: Replay bounds, shared replays and clock (:class:`SignedRecordPush`).
    """

    def __init__(
        self,
        *,
        secret: SecretStr,
        work_orders_topic: str,
        return_visits_topic: str,
        name: str = STAGE,
        **options: Unpack[PushOptions],
    ) -> None:
        paths = (
            RecordPath(
                WORK_ORDERS_PATH,
                work_orders_topic,
                "HotlineWorkOrder",
                "order_id",
                "one work order",
                lambda raw, ingested: parse_work_order(raw, ingested_at=ingested, source=PUSH_SOURCE),
            ),
            RecordPath(
                RETURN_VISITS_PATH,
                return_visits_topic,
                "ReturnVisit",
                "order_id",
                "one return visit",
                lambda raw, ingested: parse_return_visit(raw, ingested_at=ingested, source=PUSH_SOURCE),
            ),
        )
        super().__init__(name=name, secret=secret, routes=ROUTES, paths=paths, **options)


def build_push(
    settings: HotlinePushSettings,
    *,
    kafka: KafkaSettings,
    work_orders_topic: str,
    return_visits_topic: str,
    metrics: Metrics,
    stop: threading.Event,
    signatures_topic: str | None = None,
    producer: KafkaProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpIntake:
    """The push intake, ready to :meth:`~HttpIntake.run` (arguments as the 爱山东 gateway's ``build_gateway``)."""
    return serve_signed(
        settings,
        lambda options: HotlinePush(
            secret=settings.secret,
            work_orders_topic=work_orders_topic,
            return_visits_topic=return_visits_topic,
            name=settings.name,
            **options,
        ),
        kafka=kafka,
        metrics=metrics,
        stop=stop,
        signatures_topic=signatures_topic,
        producer=producer,
        clock=clock,
    )
