"""Permit notices: each permit's state, from ``ubridge.permit-status.v1`` to the utility that filed it.

The utility filed the application through ubridge; the departments answer ubridge; so ubridge tells the
utility's business system every state its permits reach (``SUBMITTED`` or ``COMMITTED`` at filing, then
``ACCEPTED``, ``MORE_REQUIRED`` with the department's reason, ``GRANTED``, ``REFUSED``), with the department's
deadline. ``POST {origin of the utility's task endpoint}/v1/permits/status`` (or its configured endpoint) with
the utility's task token and ``Idempotency-Key: <permit id>:<state>``, so a replay never tells it twice
(:mod:`connectors.runtime.utility_notices`: bounded retries, then the dead-letter topic with the reason). A
status of a utility that is not configured is a ``DataError`` too: nothing is dropped unseen.
"""

from datetime import datetime
from typing import Any, Final, cast

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered
from connectors.runtime.utility_notices import UtilityNotices
from routing.permits import PermitStatus

log = structlog.get_logger(__name__)

STAGE: Final = "permit-notices"
NOTICES_PATH: Final = "/v1/permits/status"


class PermitNotices(UtilityNotices):
    """Tells each utility the states of its permits; a :class:`Processor`."""

    stage = STAGE

    def tell(self, record: ConsumerRecord) -> Delivered:
        """Post the status to the utility that filed the permit."""
        status = cast("PermitStatus", self._codec.decode_as("PermitStatus", record.value))
        self.post(status["utility_id"], notice_body(status), key=f"{status['permit_id']}:{status['state']}")
        log.info("permit_notice_sent", stage=STAGE, permit_id=status["permit_id"], state=status["state"])
        return Delivered()


def notice_body(status: PermitStatus) -> dict[str, Any]:
    """The JSON a utility receives: the status, its instants as ISO 8601 with their offset."""
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in status.items()}
