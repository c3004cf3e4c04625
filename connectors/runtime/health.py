"""The HTTP side of observability: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while every check of ``live`` passes; ``/readyz`` while every check of ``ready``
does (the application decides what they mean: see :mod:`connectors.app`). Both bodies are JSON: ``ok``, the
checks, and the application's ``detail`` (each stage's state, the Kafka connection, the causes of a 503).

:func:`health_router` is the part; :class:`HealthServer` serves it, with any further routers (the admin
API), on the metrics port through the ASGI layer.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from connectors.runtime.web_app import build_app
from connectors.runtime.web_server import WebLimits, WebServer

Checks = Callable[[], Mapping[str, bool]]
Detail = Callable[[], Mapping[str, Any]]


class HealthAnswer(BaseModel):
    """The state of the process: ``ok`` is the answer; 503 when it is false."""

    ok: bool = Field(description="Every check passes.")
    stages: dict[str, bool] = Field(description="Each check (a stage, or the Kafka connection) and its result.")
    detail: dict[str, Any] = Field(description="Each stage's state, the Kafka connection, the causes of a 503.")


def health_router(registry: CollectorRegistry, live: Checks, ready: Checks, detail: Detail | None = None) -> APIRouter:
    """``/metrics``, ``/healthz`` and ``/readyz``."""
    router = APIRouter(tags=["health"])
    more = detail or dict

    def answer(checks: Mapping[str, bool]) -> JSONResponse:
        ok = bool(checks) and all(checks.values())
        body = HealthAnswer(ok=ok, stages=dict(checks), detail=dict(more()))
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/healthz",
        summary="Liveness: every stage runs or restarts by itself",
        response_model=HealthAnswer,
        responses={503: {"model": HealthAnswer, "description": "A stage has failed."}},
    )
    def healthz() -> JSONResponse:
        return answer(live())

    @router.get(
        "/readyz",
        summary="Readiness: every stage runs and Kafka is reachable",
        response_model=HealthAnswer,
        responses={503: {"model": HealthAnswer, "description": "Not ready; detail names the cause."}},
    )
    def readyz() -> JSONResponse:
        return answer(ready())

    return router


class HealthServer:
    """Serves metrics and health, and any ``routers`` given, in a daemon thread.

    Args:
        registry: The metrics to expose.
        live: Returns each stage's liveness.
        ready: Returns each stage's readiness.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        detail: More to say in both bodies (``detail``), such as why a check fails.
        routers: More parts served on the same port (the admin API).
        limits: Connections and deadlines.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        live: Checks,
        ready: Checks,
        host: str,
        port: int,
        *,
        detail: Detail | None = None,
        routers: Sequence[APIRouter] = (),
        limits: WebLimits | None = None,
    ) -> None:
        app = build_app([health_router(registry, live, ready, detail), *routers], description="ubridge process")
        self._server = WebServer(app, host=host, port=port, name="health", limits=limits)

    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.port

    def start(self) -> None:
        """Begin serving."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving (in-flight requests finish first) and free the port."""
        self._server.stop()
