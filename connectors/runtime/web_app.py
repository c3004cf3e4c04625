"""The ASGI layer every HTTP surface of a process is built from: FastAPI applications assembled from routers.

:func:`build_app` makes one application out of parts (the health router, an intake's router, later the
admin API's) with the answers every part shares: unknown path 404, wrong method 405 with ``Allow``, and for
anything that escapes a route a 500 whose JSON body carries an ``error_id`` also logged with the traceback
(as a structured event, never as text on a stream). :func:`shielded` wraps an application for serving: an
HTTP version other than 1.x is refused with 400, and no exception reaches the server.

:func:`read_body` reads a request body while it streams in, refusing it with 413 once it passes the limit.

Example:
    >>> app = build_app([health_router(registry, live, ready), admin_router(...)])
    >>> WebServer(app, host="0.0.0.0", port=9464, name="health").start()
"""

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from routing.privacy import mask_text

log = structlog.get_logger(__name__)

TITLE: Final = "ubridge"
API_VERSION: Final = "1"


class Problem(BaseModel):
    """Every answer that is not a success: why, and where applicable which field and which event."""

    error: str = Field(description="What is wrong, in words; personal data is never echoed.")
    field: str | None = Field(None, description="The offending field (the sender's own name for it).")
    index: int | None = Field(None, description="In a batch, the position of the offending event.")


class InternalProblem(BaseModel):
    """A 500: a fault of ubridge, not of the request; quote ``error_id`` when reporting it."""

    error: str = Field(description="Always 'internal error'; the details are in ubridge's log.")
    error_id: str = Field(description="Finds the logged event (``request_crashed``) with its traceback.")


class BodyTooLarge(Exception):
    """The request body passed the limit."""

    def __init__(self, limit: int, size: int | None = None) -> None:
        reason = f"body of {size} bytes" if size is not None else "body"
        super().__init__(f"{reason} exceeds the limit of {limit}")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, read as it streams in.

    Raises:
        BodyTooLarge: ``Content-Length`` announces more than ``max_bytes`` (nothing is read), or more arrives.
        ClientDisconnect: The client left before the body was complete.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def problem(status: int, reason: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON ``{"error": reason}`` answer."""
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def build_app(parts: Iterable[APIRouter], *, title: str = TITLE, description: str = "") -> FastAPI:
    """One application serving every route of ``parts``, with ubridge's JSON answers for what none serves.

    Args:
        parts: Routers to include, in order (a path served by two is served by the first).
        title: The OpenAPI title.
        description: The OpenAPI description.
    """
    app = FastAPI(
        title=title,
        version=API_VERSION,
        description=description,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for part in parts:
        app.include_router(part)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_exception_handler(Exception, _crashed)
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this class only
    headers = dict(exc.headers or {})
    if isinstance(exc.detail, Mapping) and "reason" in exc.detail:  # a route's own refusal, naming its field
        field = exc.detail.get("field")
        body = Problem(error=str(exc.detail["reason"]), field=None if field is None else str(field))
        return JSONResponse(body.model_dump(exclude_none=True), exc.status_code, headers=headers)
    if exc.status_code == 405:  # noqa: PLR2004 - HTTP status
        return problem(405, f"use {headers.get('Allow', 'another method')}", headers=headers)
    if exc.status_code == 404:  # noqa: PLR2004 - HTTP status
        return problem(404, f"no such resource: {mask_text(request.url.path[:200])}", headers=headers)
    return problem(exc.status_code, str(exc.detail), headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class only
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
    return JSONResponse(Problem(error=str(first.get("msg")), field=field).model_dump(exclude_none=True), 422)


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    return problem(413, str(exc), headers={"Connection": "close"})


async def _gone(request: Request, exc: Exception) -> JSONResponse:
    log.info("client_disconnected", path=mask_text(request.url.path[:200]))
    return problem(400, "the client disconnected", headers={"Connection": "close"})


async def _crashed(request: Request, exc: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex
    log.error("request_crashed", error_id=error_id, path=mask_text(request.url.path[:200]), exc_info=exc)
    body = InternalProblem(error="internal error", error_id=error_id)
    return JSONResponse(body.model_dump(), status_code=500, headers={"Connection": "close"})


def shielded(app: ASGIApp, *, name: str) -> ASGIApp:
    """``app`` for serving: HTTP/1.x only, and nothing it raises reaches the server (its 500 is already sent)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not str(scope.get("http_version", "")).startswith("1."):
            reason = f"HTTP/{str(scope.get('http_version'))[:8]} is not supported; use HTTP/1.1"
            await problem(400, reason, headers={"Connection": "close"})(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except Exception as exc:  # Starlette re-raises after sending the 500: it is logged already
            if not started:
                await _unanswered(scope, receive, send, name, exc)

    return guarded


async def _unanswered(scope: Scope, receive: Receive, send: Send, name: str, exc: Exception) -> None:
    error_id = uuid.uuid4().hex
    log.error("request_crashed", server=name, error_id=error_id, exc_info=exc)
    body: dict[str, Any] = InternalProblem(error="internal error", error_id=error_id).model_dump()
    await JSONResponse(body, status_code=500, headers={"Connection": "close"})(scope, receive, send)
