"""The approval system's departments, simulated: permits a utility files through ubridge (issue 18 item 1).

Contract (mounted on :class:`simulators.approval.ApprovalSimulator`, same bearer token as the event feed):

- ``POST /api/v1/permits`` with ``{"permit_id", "department", "kind", "project_code", "utility_id",
  "pipe_length_m", "route"}`` (``project_code`` null for works without a construction project, such as a
  爱山东 household connection's): 201 ``{"permit_id", "reference", "state": "SUBMITTED"}`` the first time, 200 with
  the permit as it stands (its current state) for a repeat of the same ``permit_id``, as a real desk answers a
  resubmission (idempotent); 400 when a field is missing, 404 for an
  unknown department, 401 on a bad token.
- ``GET /api/v1/permits/status?permit_id=X``: 200 ``{"permit_id", "reference", "state", "reason",
  "updated_at"}``; 404 unknown permit. Each read takes the department's next scripted step, if any, so a
  follower polling the interface sees the department work.
- Control plane, never faulted: ``GET /_sim/permits`` (every permit with its history), ``POST /_sim/permits/script``
  ``{"department": [["ACCEPTED", null], ["MORE_REQUIRED", "缺少管线路由图"], ["GRANTED", null]]}`` (the steps a
  department takes on each permit submitted afterwards; default ACCEPTED then GRANTED), ``POST
  /_sim/permits/script-permit`` ``{"permit_id", "steps"}`` (one permit's own steps, if submitted afterwards), ``POST
  /_sim/permits/decide`` ``{"permit_id", "state", "reason"}`` and ``POST /_sim/permits/faults`` (keyword names of
  :meth:`simulators._http.FaultPlan.configure`; faults the two business routes only).
"""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime
from typing import Any, Final

from simulators._http import (
    NO_CONTENT,
    FaultPlan,
    Request,
    Response,
    Route,
    error_response,
    json_response,
    unauthorized,
)

SUBMIT_PATH: Final = "/api/v1/permits"
STATUS_PATH: Final = "/api/v1/permits/status"
DEPARTMENTS: Final = ("planning", "road", "traffic", "greening")
STATES: Final = ("ACCEPTED", "MORE_REQUIRED", "GRANTED", "REFUSED")
_REQUIRED: Final = ("permit_id", "department", "kind", "utility_id", "pipe_length_m", "route")
_DEFAULT_SCRIPT: Final = (("ACCEPTED", None), ("GRANTED", None))

Step = tuple[str, str | None]


class PermitDesks:
    """The departments' desks: permits filed, their scripted decisions, and the faults of the business routes."""

    def __init__(self, *, token: str, seed: int) -> None:
        self._token = token
        self._lock = threading.Lock()
        self._permits: dict[str, dict[str, Any]] = {}
        self._scripts: dict[str, tuple[Step, ...]] = {}
        self._permit_scripts: dict[str, tuple[Step, ...]] = {}
        self._faults = FaultPlan(seed + 1)
        self.submissions = 0  # every business POST that reached a desk, repeats included (tests count retries)

    def routes(self) -> dict[tuple[str, str], Route]:
        """The routes to mount on the approval simulator."""
        return {
            ("POST", SUBMIT_PATH): self._submit,
            ("GET", STATUS_PATH): self._status,
            ("GET", "/_sim/permits"): lambda _: json_response(200, {"permits": self.permits()}),
            ("POST", "/_sim/permits/script"): self._script_route,
            ("POST", "/_sim/permits/script-permit"): self._script_permit_route,
            ("POST", "/_sim/permits/decide"): self._decide_route,
            ("POST", "/_sim/permits/faults"): self._faults_route,
        }

    def permits(self) -> list[dict[str, Any]]:
        """Every permit filed so far, with its history of states."""
        with self._lock:
            return copy.deepcopy(list(self._permits.values()))

    def script(self, department: str, steps: list[Step] | tuple[Step, ...]) -> None:
        """The steps ``department`` takes on each permit submitted from now on, one per status read.

        Raises:
            ValueError: An unknown department or state.
        """
        if department not in DEPARTMENTS:
            message = f"unknown department {department!r}"
            raise ValueError(message)
        checked = _checked(steps)
        with self._lock:
            self._scripts[department] = checked

    def script_permit(self, permit_id: str, steps: list[Step] | tuple[Step, ...]) -> None:
        """The steps its department takes on ``permit_id`` once submitted, instead of the department's script.

        Raises:
            ValueError: An unknown state.
        """
        checked = _checked(steps)
        with self._lock:
            self._permit_scripts[permit_id] = checked

    def decide(self, permit_id: str, state: str, reason: str | None = None) -> None:
        """Move a permit to ``state`` now, whatever its script says (its script is dropped).

        Raises:
            KeyError: No such permit.
            ValueError: An unknown state.
        """
        if state not in STATES:
            message = f"state must be one of {', '.join(STATES)}"
            raise ValueError(message)
        with self._lock:
            permit = self._permits[permit_id]
            permit["script"] = []
            _move(permit, state, reason)

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan of the business routes (see :meth:`FaultPlan.configure`)."""
        self._faults.configure(**plan)

    def _script_of(self, permit_id: str, department: str) -> tuple[Step, ...]:
        """The steps a new permit will take: its own script, else its department's; called holding the lock."""
        own = self._permit_scripts.get(permit_id)
        return own if own is not None else self._scripts.get(department, _DEFAULT_SCRIPT)

    def _submit(self, request: Request) -> Response:
        fault = self._faults.intercept()
        if fault is not None:
            return fault
        if not request.bearer_matches(self._token):
            return unauthorized()
        try:
            payload = request.json_object()
        except ValueError as exc:
            return error_response(400, f"bad permit: {exc}")
        problem = _problem(payload)
        if problem is not None:
            return error_response(400, f"bad permit: {problem}")
        department = str(payload["department"])
        if department not in DEPARTMENTS:
            return error_response(404, f"no such department: {department[:40]}")
        permit_id = str(payload["permit_id"])
        with self._lock:
            self.submissions += 1
            permit = self._permits.get(permit_id)
            status = 200
            if permit is None:
                status = 201
                permit = {
                    "permit_id": permit_id,
                    "reference": f"SP{len(self._permits) + 1:06d}",
                    "department": department,
                    "request": copy.deepcopy(payload),
                    "state": "SUBMITTED",
                    "reason": None,
                    "updated_at": _now(),
                    "history": [["SUBMITTED", None]],
                    "script": [list(step) for step in self._script_of(permit_id, department)],
                }
                self._permits[permit_id] = permit
            answer = {"permit_id": permit_id, "reference": permit["reference"], "state": permit["state"]}
        return json_response(status, answer)

    def _status(self, request: Request) -> Response:
        fault = self._faults.intercept()
        if fault is not None:
            return fault
        if not request.bearer_matches(self._token):
            return unauthorized()
        permit_id = request.query.get("permit_id", "")
        with self._lock:
            permit = self._permits.get(permit_id)
            if permit is None:
                return error_response(404, f"no such permit: {permit_id[:80]}")
            if permit["script"]:
                state, reason = permit["script"].pop(0)
                _move(permit, state, reason)
            answer = {name: permit[name] for name in ("permit_id", "reference", "state", "reason", "updated_at")}
        return json_response(200, answer)

    def _script_route(self, request: Request) -> Response:
        try:
            for department, steps in request.json_object().items():
                self.script(department, [(state, reason) for state, reason in steps])
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad script: {exc}")
        return NO_CONTENT

    def _script_permit_route(self, request: Request) -> Response:
        try:
            body = request.json_object()
            self.script_permit(str(body["permit_id"]), [(state, reason) for state, reason in body["steps"]])
        except (KeyError, TypeError, ValueError) as exc:
            return error_response(400, f"bad script: {exc}")
        return NO_CONTENT

    def _decide_route(self, request: Request) -> Response:
        try:
            payload = request.json_object()
            self.decide(str(payload["permit_id"]), str(payload["state"]), payload.get("reason"))
        except KeyError as exc:
            return error_response(404, f"no such permit or field: {exc}")
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad decision: {exc}")
        return NO_CONTENT

    def _faults_route(self, request: Request) -> Response:
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT


def _problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a submitted permit, if anything."""
    missing = [name for name in _REQUIRED if payload.get(name) in (None, "")]
    if missing:
        return f"{missing[0]} is required"
    if not isinstance(payload.get("project_code"), str | None):
        return "project_code must be a string or null"
    return None


def _checked(steps: list[Step] | tuple[Step, ...]) -> tuple[Step, ...]:
    """The steps, each state one a department can take.

    Raises:
        ValueError: An unknown state.
    """
    checked = tuple((str(state), None if reason is None else str(reason)) for state, reason in steps)
    if any(state not in STATES for state, _ in checked):
        message = f"a step's state must be one of {', '.join(STATES)}"
        raise ValueError(message)
    return checked


def _move(permit: dict[str, Any], state: str, reason: str | None) -> None:
    permit["state"], permit["reason"], permit["updated_at"] = state, reason, _now()
    permit["history"].append([state, reason])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
