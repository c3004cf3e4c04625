"""The permit intake: a utility files an external-works permit application with ``POST /v1/permits``.

The same contract as the status callbacks (:mod:`connectors.status.callback`): the utility's bearer token, a
JSON body in its declared charset, every answer JSON. Each accepted application becomes one Avro
``PermitApplication`` on the permits topic, keyed by its id, durable before the 202; the id is a digest of the
utility and its own ``application_no``, so a resent application is the same one (the approval system takes a
permit once per id). A refused body is answered 4xx with ``{"error", "field"}`` *and* written, as it came, to
the stage's dead-letter topic with the reason, so nothing a utility sent is lost from sight.

Answers: 202 ``{"accepted", "application_id", "commitment_notice", "permits"}`` · 400 body not a JSON object ·
401 missing or unknown token · 403 the body names another utility · 404 the task was not delivered to this
utility (dead-lettered) · 405 wrong method · 413 body too large · 415
not JSON · 422 a field is missing, unknown or invalid (``field`` names it) · 503 Kafka unavailable, retry.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from connectors.runtime.http_intake import IntakeRequest, IntakeResponse, IntakeRoute, reject
from connectors.runtime.interface import Output
from connectors.runtime.utility_intake import RefusalLetters, UtilityJsonHandler
from connectors.status.admission import KnownTask, Refusal
from connectors.status.callback_intake import ViewedIntake
from routing.errors import DataError
from routing.permits import PermitApplication, PermitKind, PermitPolicy, filings, parse_application
from schemas import Codec

log = structlog.get_logger(__name__)

STAGE = "permit-intake"
PATH = "/v1/permits"


class PermitBody(BaseModel):
    """An external-works permit application (001: 规划、道路挖掘（占用）、砍伐树木、占用绿地)."""

    model_config = ConfigDict(extra="forbid")

    application_no: str = Field(description="The utility's own number; resending it files nothing new.")
    task_id: str = Field(description="The utility task the external works belong to.")
    project_code: str | None = Field(
        default=None,
        description="The approval system's project code (项目代码); absent for a 爱山东 connection, which has none.",
    )
    region_code: str = Field(description="6-digit GB/T 2260 division code of the works.")
    kinds: list[PermitKind] = Field(description="The permits asked for, each filed with its department at once.")
    pipe_length_m: float = Field(gt=0, description="External pipe length in metres (below 150 m in 郑州: 告知承诺).")
    route: str = Field(description="The pipe's route (streets, from-to).")
    filed_at: datetime = Field(description="When the utility filed it, with its UTC offset.")


class PermitAccepted(BaseModel):
    """The application is durable; ``permits`` says how each kind goes (submitted, or 告知承诺 recorded)."""

    accepted: bool
    application_id: str
    commitment_notice: bool
    permits: dict[str, str]


ROUTE = IntakeRoute(
    path=PATH,
    summary="File an external-works permit application with the approval system's departments",
    body=PermitBody,
    accepted=PermitAccepted,
    refusals={
        400: "The body is not a JSON object.",
        401: "Missing or unknown bearer token.",
        403: "The body names another utility.",
        404: "task_id is not a task delivered to this utility; the body is dead-lettered with the reason.",
        413: "Body larger than max_body_bytes.",
        415: "Not application/json, or an unknown charset.",
        422: "A field is missing, unknown or invalid (field names it); the body is dead-lettered with the reason.",
        503: "Kafka unavailable, or the delivered tasks cannot be read now; retry after Retry-After.",
    },
)


def _now() -> datetime:
    return datetime.now(UTC)


class TaskFinder(Protocol):
    """Finds a delivered task (:class:`connectors.status.task_view.TaskView`)."""

    def find(self, task_id: str) -> KnownTask | Refusal | None:
        """The task; None when it was never delivered; a refusal when that cannot be told now."""
        ...


class PermitIntakeHandler(UtilityJsonHandler):
    """Turns a utility's application into a ``PermitApplication``; an :class:`IntakeHandler`.

    Args:
        tokens: Bearer token → the utility id it authenticates (the utilities' callback tokens).
        topic: The permits topic.
        dlq_topic: Where refused bodies go, with their reason.
        policy: deploy/config/permits.yaml.
        tasks: Finds the delivered tasks (the task view): a utility files permits for its own tasks only.
        clock: Gives ``ingested_at`` (UTC).
    """

    stage = STAGE
    routes = (ROUTE,)

    def __init__(
        self,
        *,
        tokens: Mapping[str, str],
        topic: str,
        dlq_topic: str,
        policy: PermitPolicy,
        tasks: TaskFinder,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        super().__init__(stage=STAGE, tokens=tokens, dlq_topic=dlq_topic, clock=clock)
        self._topic = topic
        self._policy = policy
        self._tasks = tasks
        self._codec = Codec.default()

    def handle(self, request: IntakeRequest) -> IntakeResponse:
        """Answer one request (never raises for bad input)."""
        if request.path != PATH:
            return reject(404, f"no such resource: {request.path[:200]}")
        read = self.read(request)
        if isinstance(read, IntakeResponse):
            return read
        utility, payload = read
        try:
            application = parse_application(
                payload, utility_id=utility, policy=self._policy, source=STAGE, now=self._clock()
            )
        except DataError as exc:
            return self.refuse(request, utility, exc, 422)
        return self._owned(request, application) or self._accepted(application)

    def _owned(self, request: IntakeRequest, application: PermitApplication) -> IntakeResponse | None:
        """None when the application's task was delivered to its utility; else the 404 (or 503) saying why."""
        utility = application["utility_id"]
        found = self._tasks.find(application["task_id"])
        if isinstance(found, Refusal):  # the view cannot become current: Kafka is unreachable
            return IntakeResponse(503, {"error": found.reason, "field": "task_id"}, headers=(("Retry-After", "5"),))
        if found is None or found.utility_id != utility:
            # another utility's task is answered as unknown: whose tasks exist is not the caller's business
            reason = f"task_id: no task {application['task_id'][:80]!r} was delivered to {utility}"
            return self.refuse(request, utility, DataError("task_id", reason), 404)
        return None

    def _accepted(self, application: PermitApplication) -> IntakeResponse:
        """The 202, with the application to store."""
        key = application["application_id"].encode()
        value = self._codec.encode("PermitApplication", dict(application))
        utility = application["utility_id"]
        headers = (("ubridge.source", STAGE.encode()), ("ubridge.utility", utility.encode()))
        plan = {f.kind: "COMMITTED" if f.commitment else f.department.code for f in filings(application, self._policy)}
        log.info("permit_filed", stage=STAGE, utility=utility, application_id=application["application_id"])
        return IntakeResponse(
            202,
            {
                "accepted": True,
                "application_id": application["application_id"],
                "commitment_notice": application["commitment_notice"],
                "permits": plan,
            },
            outputs=(Output(self._topic, key, value, headers),),
        )


class PermitIntake(RefusalLetters, ViewedIntake):
    """A :class:`ViewedIntake` that also stores the dead letters of the requests it refuses."""
