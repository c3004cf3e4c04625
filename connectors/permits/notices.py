"""Permit notices: each permit's state, from ``ubridge.permit-status.v1`` to the utility that filed it.

The utility filed the application through ubridge; the departments answer ubridge; so ubridge tells the
utility's business system every state its permits reach (``SUBMITTED`` or ``COMMITTED`` at filing, then
``ACCEPTED``, ``MORE_REQUIRED`` with the department's reason, ``GRANTED``, ``REFUSED``), with the department's
deadline. ``POST {origin of the utility's task endpoint}/v1/permits/status`` (or its configured endpoint) with
the utility's task token and ``Idempotency-Key: <permit id>:<state>``, so a replay never tells it twice.

Posts are bounded retries (:class:`connectors.runtime.peer_post.PeerPoster`); a notice that still fails, or is
refused, is dead-lettered with the reason and the notices behind it go on. A status of a utility that is not
configured is a ``DataError`` too: nothing is dropped unseen.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, outcome_of
from connectors.runtime.peer_post import PeerPoster, on_origin
from routing.errors import DataError
from routing.permits import PermitStatus
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "permit-notices"
NOTICES_PATH: Final = "/v1/permits/status"


def notices_endpoint(task_endpoint: str) -> str:
    """The default permit-notice endpoint of a utility: its task endpoint's origin + ``/v1/permits/status``."""
    return on_origin(task_endpoint, NOTICES_PATH)


class PermitNotices:
    """Tells each utility the states of its permits; a :class:`Processor`.

    Args:
        input_topic: The permit-status topic.
        targets: Utility id → (its notice endpoint, its poster).
        codec: The Avro codec.
    """

    stage = STAGE

    def __init__(
        self, *, input_topic: str, targets: Mapping[str, tuple[str, PeerPoster]], codec: Codec | None = None
    ) -> None:
        self.input_topics = (input_topic,)
        self._targets = dict(targets)
        self._codec = codec or Codec.default()

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Post each status to its utility; one that cannot be told is a ``DataError`` for the DLQ."""
        for record in records:
            yield outcome_of(self._tell, record)

    def close(self) -> None:
        """Close every utility's connection pool."""
        for _, poster in self._targets.values():
            poster.close()

    def _tell(self, record: ConsumerRecord) -> Delivered:
        status = cast("PermitStatus", self._codec.decode_as("PermitStatus", record.value))
        target = self._targets.get(status["utility_id"])
        if target is None:
            raise DataError("utility_id", f"utility_id: {status['utility_id'][:40]!r} is not a configured utility")
        url, poster = target
        poster.post(url, notice_body(status), key=f"{status['permit_id']}:{status['state']}")
        log.info("permit_notice_sent", stage=STAGE, permit_id=status["permit_id"], state=status["state"])
        return Delivered()


def notice_body(status: PermitStatus) -> dict[str, Any]:
    """The JSON a utility receives: the status, its instants as ISO 8601 with their offset."""
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in status.items()}
