"""Builds the payment stages from the configuration (the registry lists them; this module knows their parts)."""

import threading

from connectors.payments.settings import payments_endpoint
from connectors.payments.stage import ACK_PEER, PaymentDelivery, Target
from connectors.runtime.metrics import Metrics
from connectors.runtime.peer_post import PeerPoster
from connectors.settings import Settings
from routing.service_areas import load_service_areas
from schemas import Codec


def build_payment_delivery(
    settings: Settings, *, metrics: Metrics, stop: threading.Event, codec: Codec
) -> PaymentDelivery:
    """The delivery stage's processor: every configured utility is a target, with its task credentials."""
    config = settings.payments
    assert config is not None  # noqa: S101 - the registry lists the stage only when payments are configured
    targets = {
        utility.id: Target(
            url=config.endpoints.get(utility.id, payments_endpoint(utility.endpoint)),
            poster=PeerPoster(
                utility.id,
                token=utility.auth.token,
                timeout_s=utility.timeout_s,
                subject="payment",
                retry=config.retry,
                retries=metrics.payment_retries,
                stop=stop,
            ),
        )
        for utility in settings.utilities
    }
    ack = config.acknowledgement
    return PaymentDelivery(
        input_topic=settings.topic("payments"),
        areas=load_service_areas(settings.routing.service_areas),
        targets=targets,
        acknowledgement_url=ack.url,
        acknowledger=PeerPoster(
            ACK_PEER,
            subject="payment",
            token=ack.token,
            timeout_s=ack.timeout_s,
            retry=config.retry,
            retries=metrics.payment_retries,
            stop=stop,
        ),
        codec=codec,
        metrics=metrics,
        max_in_flight=config.max_in_flight,
    )
