"""The survey-reply intake: a utility answers a joint survey with ``POST /v1/surveys/{survey_id}/replies``.

The contract of the utilities' other JSON intakes (:mod:`connectors.runtime.utility_intake`): the utility's
status-callback token, a JSON object, 4xx ``{"error", "field"}`` with the body dead-lettered. The body:
``{"round", "answer": "ACCEPT"|"COUNTER", "slot_start"?, "slot_end"?, "replied_at"}`` (a COUNTER names its slot,
ISO 8601 with offsets). An accepted reply is an Avro ``SurveyReply`` on the replies topic, keyed by survey id,
durable before the 202; the joint-survey stage applies it (a reply from a utility not in the survey is
dead-lettered there, with its reason).
"""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from connectors.runtime.http_intake import IntakeRequest, IntakeResponse, IntakeRoute, reject
from connectors.runtime.interface import Output
from connectors.runtime.utility_intake import RefusalLetters, UtilityJsonHandler
from routing.errors import DataError
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE: Final = "survey-replies"
_PATH = re.compile(r"/v1/surveys/(survey-[0-9a-f]{24})/replies")
_FIELDS: Final = frozenset({"round", "answer", "slot_start", "slot_end", "replied_at"})
_MAX_ROUND: Final = 100


class SurveyReplyBody(BaseModel):
    """A utility's answer to the slot of a joint survey's round."""

    model_config = ConfigDict(extra="forbid")

    round: int = Field(ge=1, description="The round answered (the proposal's ``round``).")
    answer: Literal["ACCEPT", "COUNTER"]
    slot_start: datetime | None = Field(None, description="With COUNTER: the slot proposed instead, with offset.")
    slot_end: datetime | None = None
    replied_at: datetime = Field(description="When the utility answered, with its UTC offset.")


class SurveyReplyAccepted(BaseModel):
    """The reply is durable; the joint-survey stage applies it."""

    accepted: bool
    survey_id: str


ROUTE = IntakeRoute(
    path="/v1/surveys/{survey_id}/replies",
    summary="Answer a joint site survey's slot (accept it, or counter with another)",
    body=SurveyReplyBody,
    accepted=SurveyReplyAccepted,
    refusals={
        400: "The body is not a JSON object.",
        401: "Missing or unknown bearer token.",
        403: "The body names another utility.",
        404: "No such resource (the survey id is malformed).",
        413: "Body larger than max_body_bytes.",
        415: "Not application/json.",
        422: "A field is missing, unknown or invalid (field names it); the body is dead-lettered with the reason.",
        503: "Kafka unavailable; retry after Retry-After.",
    },
)


class SurveyReplyHandler(UtilityJsonHandler):
    """Turns a utility's answer into a ``SurveyReply``; an :class:`IntakeHandler`.

    Args:
        tokens: Bearer token → the utility id it authenticates (the utilities' callback tokens).
        topic: The replies topic.
        dlq_topic: Where refused bodies go, with their reason.
        clock: Gives ``received_at`` (UTC).
    """

    stage = STAGE
    routes = (ROUTE,)

    def __init__(
        self,
        *,
        tokens: Mapping[str, str],
        topic: str,
        dlq_topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(stage=STAGE, tokens=tokens, dlq_topic=dlq_topic, clock=clock)
        self._topic = topic
        self._codec = Codec.default()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        match = _PATH.fullmatch(request.path)
        if match is None:
            return reject(404, f"no such resource: {request.path[:200]}")
        read = self.read(request)
        if isinstance(read, IntakeResponse):
            return read
        utility, payload = read
        try:
            reply = parse_reply(payload, survey_id=match[1], utility_id=utility, now=self._clock())
        except DataError as exc:
            return self.refuse(request, utility, exc, 422)
        log.info("survey_reply_received", stage=STAGE, survey_id=match[1], utility=utility, answer=reply["answer"])
        value = self._codec.encode("SurveyReply", reply)
        output = Output(self._topic, match[1].encode(), value, (("ubridge.utility", utility.encode()),))
        return IntakeResponse(202, {"accepted": True, "survey_id": match[1]}, outputs=(output,))


def parse_reply(payload: Mapping[str, Any], *, survey_id: str, utility_id: str, now: datetime) -> dict[str, Any]:
    """The reply as an Avro ``SurveyReply``, checked field by field.

    Raises:
        DataError: A field is missing, unknown or invalid (``field`` names it).
    """
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise DataError(unknown[0], f"{unknown[0]}: unknown field")
    number = payload.get("round")
    if type(number) is not int or not 1 <= number <= _MAX_ROUND:
        raise DataError("round", f"round: the round answered, 1 to {_MAX_ROUND}")
    answer = payload.get("answer")
    if answer not in ("ACCEPT", "COUNTER"):
        raise DataError("answer", "answer: ACCEPT or COUNTER")
    start, end = _instant(payload, "slot_start", optional=True), _instant(payload, "slot_end", optional=True)
    if answer == "COUNTER" and (start is None or end is None):
        raise DataError("slot_start", "slot_start: a COUNTER names the slot it proposes (slot_start and slot_end)")
    if start is not None and end is not None and end <= start:
        raise DataError("slot_end", "slot_end: the slot must end after it starts")
    return {
        "survey_id": survey_id,
        "round": number,
        "utility_id": utility_id,
        "answer": answer,
        "slot_start": start if answer == "COUNTER" else None,
        "slot_end": end if answer == "COUNTER" else None,
        "replied_at": _instant(payload, "replied_at", optional=False),
        "received_at": now,
    }


def _instant(payload: Mapping[str, Any], name: str, *, optional: bool) -> datetime | None:
    value = payload.get(name)
    if value is None and optional:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise DataError(name, f"{name}: an ISO 8601 instant with its UTC offset")
    return parsed.astimezone(UTC)


class SurveyReplyIntake(RefusalLetters):
    """The reply intake: an :class:`HttpIntake` that also stores the dead letters of the replies it refuses."""
