"""Survey notices: each change of a joint survey, from ``ubridge.surveys.v1`` to every utility taking part.

``POST {origin of the utility's task endpoint}/v1/surveys`` (or its configured endpoint) with the utility's task
token and ``Idempotency-Key: <survey id>:<round>:<state>``: the same proposal reaches every participant (the
slot, the other utilities, the lead department), then each new round, then AGREED or SEPARATE. Posts are
bounded retries (:class:`connectors.runtime.peer_post.PeerPoster`); a survey one of whose utilities still
refuses or fails is dead-lettered with the reason (a replay posts again to all, under the same keys), and the
surveys behind it go on.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import structlog
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.interface import Delivered, Outcome, outcome_of
from connectors.runtime.peer_post import PeerPoster, on_origin
from routing.errors import DataError
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "survey-notices"
NOTICES_PATH: Final = "/v1/surveys"


def notices_endpoint(task_endpoint: str) -> str:
    """The default survey endpoint of a utility: its task endpoint's origin + ``/v1/surveys``."""
    return on_origin(task_endpoint, NOTICES_PATH)


class SurveyNotices:
    """Tells every participant each change of its surveys; a :class:`Processor`.

    Args:
        input_topic: The surveys topic.
        targets: Utility id → (its survey endpoint, its poster).
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
        """Post each survey to its utilities; one that cannot be told to all is a ``DataError`` for the DLQ."""
        for record in records:
            yield outcome_of(self._tell, record)

    def close(self) -> None:
        """Close every utility's connection pool."""
        for _, poster in self._targets.values():
            poster.close()

    def _tell(self, record: ConsumerRecord) -> Delivered:
        survey = self._codec.decode_as("SurveyProposal", record.value)
        unknown = sorted(p["utility_id"] for p in survey["participants"] if p["utility_id"] not in self._targets)
        if unknown:
            raise DataError("participants", f"participants: {', '.join(unknown)[:80]} not configured utilities")
        key = f"{survey['survey_id']}:{survey['round']}:{survey['state']}"
        for participant in survey["participants"]:
            url, poster = self._targets[participant["utility_id"]]
            poster.post(url, notice_body(survey, participant["utility_id"]), key=key)
        log.info("survey_notice_sent", stage=STAGE, survey_id=survey["survey_id"], state=survey["state"])
        return Delivered()


def notice_body(survey: Mapping[str, Any], utility_id: str) -> dict[str, Any]:
    """What ``utility_id`` receives: the survey, its own task, the others taking part; instants in ISO 8601."""
    (own,) = [p["task_id"] for p in survey["participants"] if p["utility_id"] == utility_id]
    others = [p["utility_id"] for p in survey["participants"] if p["utility_id"] != utility_id]
    body = {name: value.isoformat() if isinstance(value, datetime) else value for name, value in survey.items()}
    return {**body, "utility_id": utility_id, "task_id": own, "other_utilities": others}
