"""The 工改系统 data interface, simulated: paged project events behind a bearer token.

Contract (vendor format "default"):

- ``GET /api/v1/project-events?cursor=N&limit=M`` with ``Authorization: Bearer <token>`` answers
  ``{"events": [...seq > N, ascending...], "next_cursor": <last seq or N>, "has_more": bool}``; ``limit`` is
  1..500 (default 100), ``cursor`` a non-negative integer (default 0). 401 on a bad token, 400 on bad
  parameters, both as ``{"error": "..."}``.
- The departments' permit desks: :mod:`simulators.approval.permits`.
- Control plane, never faulted or delayed: ``GET /_sim/events`` (all events), ``POST /_sim/generate`` with
  ``{"events": n, "invalid_rate": x, "unserved_rate": y}`` (answers ``{"events": [...new...]}``) and
  ``POST /_sim/faults`` with the keyword names of `ApprovalSimulator.set_faults` (answers 204).

Example:
    >>> simulator = ApprovalSimulator(token="T", seed=7)
    >>> _ = simulator.generate(50, invalid_rate=0.1)
    >>> url = simulator.start()  # then GET f"{url}/api/v1/project-events?cursor=0&limit=20"
    >>> simulator.stop()
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable
from typing import Any

from simulators._http import (
    NO_CONTENT,
    FaultPlan,
    JsonHttpServer,
    Request,
    Response,
    dispatch,
    error_response,
    json_response,
    unauthorized,
)
from simulators.approval.generator import EventGenerator
from simulators.approval.permits import PermitDesks

FEED_PATH = "/api/v1/project-events"
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class ApprovalSimulator:
    """A seeded approval system whose events are the ground truth tests compare against."""

    def __init__(
        self,
        *,
        token: str = "approval-token",  # noqa: S107 - the documented demo token, not a secret
        seed: int = 7,
        host: str = "127.0.0.1",
        port: int = 0,
        on_generated: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._token = token
        self._on_generated = on_generated
        self._lock = threading.Lock()
        self._generator = EventGenerator(seed)
        self._events: list[dict[str, Any]] = []
        self._faults = FaultPlan(seed)
        self._http = JsonHttpServer(self._handle, host=host, port=port)
        self.permits = PermitDesks(token=token, seed=seed)
        self._routes = {
            **self.permits.routes(),
            ("GET", FEED_PATH): self._feed,
            ("GET", "/_sim/events"): lambda _: json_response(200, {"events": self.events()}),
            ("POST", "/_sim/generate"): self._generate_route,
            ("POST", "/_sim/faults"): self._faults_route,
        }

    def start(self) -> str:
        """Start serving and return the base URL, e.g. ``http://127.0.0.1:41234``."""
        return self._http.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._http.stop()

    def generate(self, n_events: int, *, invalid_rate: float = 0.0, unserved_rate: float = 0.0) -> list[dict[str, Any]]:
        """Append ``n_events`` new events and return them (see `EventGenerator.generate`)."""
        with self._lock:
            new = self._generator.generate(n_events, invalid_rate=invalid_rate, unserved_rate=unserved_rate)
            self._events.extend(new)
            if self._on_generated is not None:
                # e.g. the exchange database: the approval system's push job writes the same facts as rows
                self._on_generated(copy.deepcopy(new))
        return copy.deepcopy(new)

    def events(self) -> list[dict[str, Any]]:
        """Return a copy of every event generated so far, in ``seq`` order."""
        with self._lock:
            return copy.deepcopy(self._events)

    def set_faults(
        self, *, error_rate: float = 0.0, error_status: int = 503, latency_ms: int = 0, outage_s: float = 0.0
    ) -> None:
        """Replace the fault plan of the event feed; no arguments clears every fault.

        Args:
            error_rate: probability in [0, 1] that a request is answered ``error_status``.
            error_status: the injected status; 429 and 503 carry ``Retry-After: 1``.
            latency_ms: delay added to every feed response.
            outage_s: every feed request fails with 503 for this many seconds from now.
        """
        self._faults.configure(
            error_rate=error_rate, error_status=error_status, latency_ms=latency_ms, outage_s=outage_s
        )

    def _handle(self, request: Request) -> Response:
        return dispatch(self._routes, request)

    def _feed(self, request: Request) -> Response:
        fault = self._faults.intercept()
        if fault is not None:
            return fault
        if not request.bearer_matches(self._token):
            return unauthorized()
        try:
            cursor, limit = _page_params(request.query)
        except ValueError as exc:
            return error_response(400, str(exc))
        with self._lock:
            start = bisect.bisect_right(self._events, cursor, key=lambda event: int(event["seq"]))
            page = self._events[start : start + limit]
            has_more = start + limit < len(self._events)
        # Stored events are never mutated after they are appended, so serialising outside the lock is safe.
        next_cursor = page[-1]["seq"] if page else cursor
        return json_response(200, {"events": page, "next_cursor": next_cursor, "has_more": has_more})

    def _generate_route(self, request: Request) -> Response:
        try:
            payload = request.json_object()
            new = self.generate(
                int(payload.get("events", 0)),
                invalid_rate=float(payload.get("invalid_rate", 0.0)),
                unserved_rate=float(payload.get("unserved_rate", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad generate request: {exc}")
        return json_response(200, {"events": new})

    def _faults_route(self, request: Request) -> Response:
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT


def _page_params(query: dict[str, str]) -> tuple[int, int]:
    """Parse ``cursor`` and ``limit``.

    Raises:
        ValueError: either is not an integer or is out of range.
    """
    try:
        cursor = int(query.get("cursor", "0"))
        limit = int(query.get("limit", str(DEFAULT_LIMIT)))
    except ValueError as exc:
        message = "cursor and limit must be integers"
        raise ValueError(message) from exc
    if cursor < 0 or not 1 <= limit <= MAX_LIMIT:
        message = f"cursor must be >= 0 and limit within 1..{MAX_LIMIT}"
        raise ValueError(message)
    return cursor, limit
