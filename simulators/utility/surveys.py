"""A utility's business system, simulated: the joint site surveys ubridge proposes, and its answers to them.

Contract of ``POST /v1/surveys`` (same bearer token as ``/v1/tasks``):

- Headers ``Authorization: Bearer <token>`` and ``Idempotency-Key: <survey id>:<round>:<state>``; body the
  survey as JSON with at least ``survey_id``, ``round``, ``state``, ``utility_id``, ``slot_start`` and
  ``slot_end`` (the key must match them). 200 ``{"status": "noted"}`` the first time, ``{"status":
  "duplicate"}`` for a key seen before. 401 on a bad token; 400 when a field or the key is wrong; 422 when
  ``utility_id`` names another utility. Faults (``set_faults``) are those of the task endpoint, drawn apart.
- Answers (off until :meth:`SurveyDesk.configure`): to each PROPOSED round, the utility replies at ``reply_url``
  ``/v1/surveys/{id}/replies`` with ``reply_token``, from a thread of its own: ACCEPT, or with ``counter_rate``
  (round 1 only) a COUNTER one day later at the same hour. A round it proposed itself needs no answer.
- ``GET /_sim/surveys``: every notice kept, in arrival order, and the replies sent with their answers.
"""

from __future__ import annotations

import queue
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from simulators._http import NO_CONTENT, FaultPlan, Request, Response, error_response, json_response, unauthorized

SURVEYS_PATH = "/v1/surveys"
_REQUIRED = ("survey_id", "round", "state", "utility_id", "slot_start", "slot_end")


class SurveyDesk:
    """The surveys one utility was told of, and the answers it sends; the utility simulator serves it."""

    def __init__(self, utility_id: str, *, token: str, seed: int) -> None:
        self.utility_id = utility_id
        self._token = token
        self._lock = threading.Lock()
        self._notices: dict[str, dict[str, Any]] = {}
        self._replies: list[dict[str, Any]] = []
        self._faults = FaultPlan(seed + 5)
        self._rng = random.Random(seed)
        self._plan: dict[str, Any] | None = None
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def configure(self, *, reply_url: str, reply_token: str, counter_rate: float = 0.0) -> None:
        """Answer every proposal from now on at ``reply_url`` (ubridge's reply intake) with ``reply_token``."""
        with self._lock:
            self._plan = {"url": reply_url.rstrip("/"), "token": reply_token, "counter_rate": counter_rate}
            if self._worker is None:
                self._worker = threading.Thread(target=self._answer, name=f"surveys-{self.utility_id}", daemon=True)
                self._worker.start()

    def stop(self) -> None:
        """Stop answering."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan (the keywords of ``UtilitySimulator.set_faults``); none clears it."""
        self._faults.configure(**plan)

    def notices(self) -> list[dict[str, Any]]:
        """The notices kept, in arrival order (a repeat is not kept twice)."""
        with self._lock:
            return list(self._notices.values())

    def replies(self) -> list[dict[str, Any]]:
        """The answers sent, with the status ubridge answered."""
        with self._lock:
            return list(self._replies)

    def receive(self, request: Request) -> Response:
        """Answer ``POST /v1/surveys``."""
        refusal = self._faults.intercept()
        if refusal is None and not request.bearer_matches(self._token):
            refusal = unauthorized()
        body = _valid_notice(request) if refusal is None else refusal
        if isinstance(body, Response):
            return body
        if body["utility_id"] != self.utility_id:
            return error_response(422, f"utility_id {body['utility_id']!r} is not {self.utility_id!r}")
        key = f"{body['survey_id']}:{body['round']}:{body['state']}"
        with self._lock:
            repeat = key in self._notices
            if not repeat:
                self._notices[key] = body
            answering = self._plan is not None and not repeat
        if answering and body["state"] == "PROPOSED" and body.get("proposed_by") != self.utility_id:
            self._queue.put(body)
        return json_response(200, {"status": "duplicate" if repeat else "noted"})

    def listing(self, _request: Request) -> Response:
        """Answer ``GET /_sim/surveys``."""
        return json_response(200, {"notices": self.notices(), "replies": self.replies()})

    def faults_route(self, request: Request) -> Response:
        """Answer ``POST /_sim/survey-faults``."""
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT

    def _answer(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (survey := self._queue.get()) is not None:
                self._reply(client, survey)

    def _reply(self, client: httpx.Client, survey: dict[str, Any]) -> None:
        with self._lock:
            plan = dict(self._plan or {})
            counter = survey["round"] == 1 and self._rng.random() < plan["counter_rate"]
        body: dict[str, Any] = {
            "round": survey["round"],
            "answer": "COUNTER" if counter else "ACCEPT",
            "replied_at": datetime.now(UTC).isoformat(),
        }
        if counter:
            start, end = datetime.fromisoformat(survey["slot_start"]), datetime.fromisoformat(survey["slot_end"])
            body |= {
                "slot_start": (start + timedelta(days=1)).isoformat(),
                "slot_end": (end + timedelta(days=1)).isoformat(),
            }
        url = f"{plan['url']}/v1/surveys/{survey['survey_id']}/replies"
        status = 0
        for _ in range(20):  # the intake may be briefly unavailable: a utility's system retries
            try:
                status = client.post(url, json=body, headers={"Authorization": f"Bearer {plan['token']}"}).status_code
            except httpx.HTTPError:
                status = 0
            if status not in (0, 429, 503):
                break
            threading.Event().wait(0.5)
        with self._lock:
            self._replies.append({"survey_id": survey["survey_id"], **body, "status": status})


def _valid_notice(request: Request) -> dict[str, Any] | Response:
    """The notice, or the 400 answer that explains why it is malformed."""
    try:
        body = request.json_object()
    except ValueError:
        return error_response(400, "the body is not a JSON object")
    missing = [name for name in _REQUIRED if body.get(name) in (None, "")]
    if missing:
        return error_response(400, f"the body lacks {', '.join(missing)}")
    if request.headers.get("idempotency-key", "") != f"{body['survey_id']}:{body['round']}:{body['state']}":
        return error_response(400, "the Idempotency-Key is not <survey_id>:<round>:<state>")
    return body
