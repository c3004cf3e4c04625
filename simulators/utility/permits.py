"""A utility's business system, simulated: it keeps the permit states ubridge tells it (issue 18 item 1).

Contract of ``POST /v1/permits/status`` (same bearer token as ``/v1/tasks``):

- Headers ``Authorization: Bearer <token>`` and ``Idempotency-Key: <permit id>:<state>``; body the permit's
  status as a JSON object with at least ``permit_id``, ``utility_id`` and ``state`` (the key must match them).
- 200 ``{"status": "noted"}`` the first time, ``{"status": "duplicate"}`` for a key seen before (the state is
  kept once). 401 on a bad token; 400 when the key or a field is missing or they disagree; 422 when
  ``utility_id`` names another utility.
- Faults (``set_faults``, or ``POST /_sim/permit-faults``) are those of the task endpoint, drawn apart.
- ``GET /_sim/permit-notices``: every notice kept, in arrival order.
"""

from __future__ import annotations

import threading
from typing import Any

from simulators._http import NO_CONTENT, FaultPlan, Request, Response, error_response, json_response, unauthorized

NOTICES_PATH = "/v1/permits/status"


class PermitNoticeBook:
    """The permit states one utility was told, thread-safe; the utility simulator serves it."""

    def __init__(self, utility_id: str, *, token: str, seed: int) -> None:
        self.utility_id = utility_id
        self._token = token
        self._lock = threading.Lock()
        self._notices: dict[str, dict[str, Any]] = {}
        self.repeats = 0
        self._faults = FaultPlan(seed + 3)

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan (the keywords of ``UtilitySimulator.set_faults``); none clears it."""
        self._faults.configure(**plan)

    def notices(self) -> list[dict[str, Any]]:
        """The notices kept, in arrival order (a repeat is not kept twice)."""
        with self._lock:
            return list(self._notices.values())

    def states(self) -> dict[str, list[str]]:
        """Permit id → the states told, in order."""
        seen: dict[str, list[str]] = {}
        for notice in self.notices():
            seen.setdefault(notice["permit_id"], []).append(notice["state"])
        return seen

    def receive(self, request: Request) -> Response:
        """Answer ``POST /v1/permits/status``."""
        refusal = self._faults.intercept()
        if refusal is None and not request.bearer_matches(self._token):
            refusal = unauthorized()
        body = _valid_notice(request) if refusal is None else refusal
        if isinstance(body, Response):
            return body
        if body["utility_id"] != self.utility_id:
            return error_response(422, f"utility_id {body['utility_id']!r} is not {self.utility_id!r}")
        key = f"{body['permit_id']}:{body['state']}"
        with self._lock:
            repeat = key in self._notices
            if repeat:
                self.repeats += 1
            else:
                self._notices[key] = body
        return json_response(200, {"status": "duplicate" if repeat else "noted"})

    def faults_route(self, request: Request) -> Response:
        """Answer ``POST /_sim/permit-faults``."""
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT

    def listing(self, _request: Request) -> Response:
        """Answer ``GET /_sim/permit-notices``."""
        return json_response(200, {"notices": self.notices(), "repeats": self.repeats})


def _valid_notice(request: Request) -> dict[str, Any] | Response:
    """The notice, or the 400 answer that explains why it is malformed."""
    try:
        body = request.json_object()
    except ValueError:
        return error_response(400, "the body is not a JSON object")
    missing = [name for name in ("permit_id", "utility_id", "state") if not body.get(name)]
    if missing:
        return error_response(400, f"the body lacks {', '.join(missing)}")
    if request.headers.get("idempotency-key", "") != f"{body['permit_id']}:{body['state']}":
        return error_response(400, "the Idempotency-Key is not <permit_id>:<state>")
    return body
