"""The admin API as a FastAPI router: stages, pause/resume/restart, dead letters, offsets (``/admin/v1``).

Every route needs ``Authorization: Bearer <token>`` with one of the configured admin tokens (``admin.tokens``,
a name per token); the token's name, or ``X-Ubridge-Operator`` when the caller names a person, is recorded as
who acted. Errors are the shared layer's JSON ``{"error": ..., "field": ...}`` (503 with ``Retry-After`` when
Kafka does not answer). Handlers are plain functions: FastAPI runs them in its thread pool, as the service blocks on
Kafka.

Example:
    >>> app = FastAPI()
    >>> app.include_router(admin_router(AdminService(settings, stale_after_s=15), {"ops": token}))
"""

import hmac
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka.errors import KafkaError

from connectors.admin.dead_letters import DeadLetterFilter
from connectors.admin.models import (
    ActionAnswer,
    ActionRequest,
    LetterCriteria,
    LetterDetail,
    LetterQuery,
    LetterSummary,
    OffsetsResetAnswer,
    OffsetsResetRequest,
    ReplayAnswer,
    ReplayRequest,
)
from connectors.admin.service import AdminError, AdminService
from connectors.admin.status import StageView

T = TypeVar("T")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid admin token."},
    404: {"description": "No such stage or dead letter."},
}


def admin_router(service: AdminService, tokens: Mapping[str, str]) -> APIRouter:
    """The admin routes over ``service``, open to callers bearing one of ``tokens`` (name → token)."""
    bearer = HTTPBearer(auto_error=False, scheme_name="AdminToken", description="One of the admin.tokens.")

    def actor(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        operator: Annotated[str | None, Header(alias="X-Ubridge-Operator", max_length=100)] = None,
    ) -> str:
        given = b"" if credentials is None else credentials.credentials.encode()
        for name, token in tokens.items():
            if hmac.compare_digest(given, token.encode()):
                return name if operator is None else f"{operator} ({name})"
        detail = {"field": "Authorization", "reason": "a valid admin bearer token is required"}
        raise HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})

    Actor = Annotated[str, Depends(actor)]
    router = APIRouter(prefix="/admin/v1", tags=["admin"], responses=_ERRORS)

    @router.get("/stages", response_model=list[StageView])
    def stages(_: Actor) -> list[StageView]:
        """Every stage of every process of the installation: state, lag, records, last error (masked)."""
        return _answer(service.stages)

    @router.post("/stages/{stage}/pause", response_model=ActionAnswer)
    def pause(stage: str, by: Actor, body: ActionRequest | None = None) -> ActionAnswer:
        """Pause a stage in every process until resumed (a utility's sink: its deliveries)."""
        return _answer(lambda: service.pause(stage, by=by, reason=_reason(body)))

    @router.post("/stages/{stage}/resume", response_model=ActionAnswer)
    def resume(stage: str, by: Actor, body: ActionRequest | None = None) -> ActionAnswer:
        """Resume a paused stage in every process."""
        return _answer(lambda: service.resume(stage, by=by, reason=_reason(body)))

    @router.post("/stages/{stage}/restart", response_model=ActionAnswer)
    def restart(stage: str, by: Actor, body: ActionRequest | None = None) -> ActionAnswer:
        """Stop a stage and build it anew now, in every process running it (a failed one too)."""
        return _answer(lambda: service.restart(stage, by=by, reason=_reason(body)))

    @router.get("/stages/{stage}/dead-letters", response_model=list[LetterSummary])
    def dead_letters(stage: str, query: Annotated[LetterQuery, Query()], _: Actor) -> list[LetterSummary]:
        """The stage's dead letters that match every criterion given, oldest first."""
        return _answer(lambda: service.dead_letters(stage, _filter(query), limit=query.limit))

    @router.get("/stages/{stage}/dead-letters/{partition}/{offset}", response_model=LetterDetail)
    def dead_letter(stage: str, partition: int, offset: int, _: Actor) -> LetterDetail:
        """One dead letter, decoded, personal data masked."""
        return _answer(lambda: service.dead_letter(stage, partition, offset))

    @router.post("/stages/{stage}/dead-letters/replay", response_model=ReplayAnswer)
    def replay(stage: str, body: ReplayRequest, by: Actor) -> ReplayAnswer:
        """Send chosen dead letters back to their source topic (or ``topic``); recorded on the audit topic."""
        chosen = _filter(body)
        return _answer(
            lambda: service.replay(stage, chosen, offsets=body.offsets, topic=body.topic, by=by, reason=body.reason)
        )

    @router.post("/stages/{stage}/offsets/reset", response_model=OffsetsResetAnswer)
    def reset_offsets(stage: str, body: OffsetsResetRequest, by: Actor) -> OffsetsResetAnswer:
        """Move the stage's consumer group to a time or the start; 409 while the stage runs anywhere."""
        to = None if body.to == "start" else body.to
        return _answer(lambda: service.reset_offsets(stage, to, by=by, reason=body.reason))

    return router


def _reason(body: ActionRequest | None) -> str | None:
    return None if body is None else body.reason


def _filter(criteria: LetterCriteria) -> DeadLetterFilter:
    return DeadLetterFilter(
        error_class=criteria.error_class,
        field=criteria.field,
        since=criteria.since,
        until=criteria.until,
        from_offset=criteria.from_offset,
        to_offset=criteria.to_offset,
    )


def _answer(call: Callable[[], T]) -> T:
    """The service's answer, or its refusal as an HTTP error naming the field and the reason."""
    try:
        return call()
    except AdminError as exc:
        raise HTTPException(exc.status, detail={"field": exc.field, "reason": exc.reason}) from exc
    except KafkaError as exc:
        reason = f"Kafka did not answer ({type(exc).__name__}); try again"
        raise HTTPException(503, detail={"field": "kafka", "reason": reason}, headers={"Retry-After": "5"}) from exc
