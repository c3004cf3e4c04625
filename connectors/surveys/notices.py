"""Survey notices: each change of a joint survey, from ``ubridge.surveys.v1`` to every utility taking part.

``POST {origin of the utility's task endpoint}/v1/surveys`` (or its configured endpoint) with the utility's task
token and ``Idempotency-Key: <survey id>:<round>:<state>``: the same proposal reaches every participant (the
slot, the other utilities, the lead department), then each new round, then AGREED or SEPARATE. Posts are
bounded retries (:mod:`connectors.runtime.utility_notices`); a survey one of whose utilities still
refuses or fails is dead-lettered with the reason (a replay posts again to all, under the same keys), and the
surveys behind it go on.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered
from connectors.runtime.utility_notices import UtilityNotices
from routing.errors import DataError

log = structlog.get_logger(__name__)

STAGE: Final = "survey-notices"
NOTICES_PATH: Final = "/v1/surveys"


class SurveyNotices(UtilityNotices):
    """Tells every participant each change of its surveys; a :class:`Processor`."""

    stage = STAGE

    def tell(self, record: ConsumerRecord) -> Delivered:
        """Post the survey to each of its utilities; one not configured fails the record before any post."""
        survey = self._codec.decode_as("SurveyProposal", record.value)
        unknown = sorted(p["utility_id"] for p in survey["participants"] if p["utility_id"] not in self._targets)
        if unknown:
            raise DataError("participants", f"participants: {', '.join(unknown)[:80]} not configured utilities")
        key = f"{survey['survey_id']}:{survey['round']}:{survey['state']}"
        for participant in survey["participants"]:
            self.post(participant["utility_id"], notice_body(survey, participant["utility_id"]), key=key)
        log.info("survey_notice_sent", stage=STAGE, survey_id=survey["survey_id"], state=survey["state"])
        return Delivered()


def notice_body(survey: Mapping[str, Any], utility_id: str) -> dict[str, Any]:
    """What ``utility_id`` receives: the survey, its own task, the others taking part; instants in ISO 8601."""
    (own,) = [p["task_id"] for p in survey["participants"] if p["utility_id"] == utility_id]
    others = [p["utility_id"] for p in survey["participants"] if p["utility_id"] != utility_id]
    body = {name: value.isoformat() if isinstance(value, datetime) else value for name, value in survey.items()}
    return {**body, "utility_id": utility_id, "task_id": own, "other_utilities": others}
