"""A utility's business system, simulated: it receives tasks idempotently and can misbehave on demand.

Contract:

- ``POST /v1/tasks`` with ``Authorization: Bearer <token>``, ``Idempotency-Key: <task id>:<revision>`` and
  the task as a JSON object (at least ``task_id`` and ``utility_id``; ``revision`` ≥ 1, 1 when absent, and
  then the key is the bare task id). It follows the IETF Idempotency-Key draft strictly: a key seen before
  with the same body answers 200 ``{"status": "duplicate", "task_id", "revision", "utility_ref"}`` (never a
  second task); a key seen before with a *different* body answers 422. A new key stores the task:
  201 ``{"status": "created", ...}`` for a task id not seen before; for a known task id, a higher revision
  replaces the task and answers 200 ``"updated"`` (``"cancelled"`` when its ``action`` is ``CANCEL``), a
  revision not above the one held answers 200 ``"superseded"`` and changes nothing. 401 on a bad token;
  400 ``{"error": ...}`` when the key is missing, the body is not a JSON object, ``task_id`` is missing,
  ``revision`` is not a positive integer or the key is not ``<task id>:<revision>``; 422 when ``utility_id``
  names another utility.
- Faults strike before the task is stored, except ``fail_after_store_rate``: the task is stored and the
  answer is a 503 (a lost acknowledgement). 429 and 503 answers carry ``Retry-After``.
- Control plane, never faulted or delayed: ``GET /_sim/tasks``, ``GET /_sim/stats``, ``GET /_sim/task-status``
  (every status reported, as the feed has them), ``POST /_sim/faults``
  with the keyword names of `UtilitySimulator.set_faults` (answers 204), ``POST /_sim/progress`` with the
  keyword names of `UtilitySimulator.set_progress` (answers 204) and ``GET /_sim/progress`` (the plan and
  the progression counters).
- Progress (off until `UtilitySimulator.set_progress`): each newly stored task walks through its stages
  (``simulators.utility.progress``) until a revision cancels it; the statuses are served, with the same bearer token, by
  ``GET /v1/task-status?cursor=<n>&limit=<m>`` → ``{"statuses": [{"seq", "task_id", "stage", "occurred_at",
  "pipe_length_m"?, "reason"?, "detail"?}], "next_cursor", "has_more"}`` and, when a callback URL is set,
  POSTed to ``{callback_url}/v1/tasks/{task_id}/status``. The feed is never faulted.
- ``POST /v1/payments`` (:mod:`simulators.utility.payments`), ``POST /v1/permits/status``
  (:mod:`simulators.utility.permits`) and ``POST /v1/surveys`` (:mod:`simulators.utility.surveys`, answered
  once ``POST /_sim/survey-answers`` gives ``reply_url``, ``reply_token`` and ``counter_rate``): the billing
  desk, the permit states ubridge tells the utility, and the joint surveys it proposes.

Example:
    >>> simulator = UtilitySimulator("yantai-water", token="T")
    >>> url = simulator.start()  # then POST f"{url}/v1/tasks"
    >>> simulator.set_progress(callback_url="http://127.0.0.1:8090", callback_token="C", hours_per_second=3600)
    >>> simulator.stop()
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
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
from simulators.utility.payments import PAYMENTS_PATH, PaymentBook
from simulators.utility.permits import NOTICES_PATH, PermitNoticeBook
from simulators.utility.progress import Progression, StatusReport
from simulators.utility.surveys import SURVEYS_PATH, SurveyDesk

TASKS_PATH = "/v1/tasks"
STATUS_FEED_PATH = "/v1/task-status"
_FEED_LIMIT_DEFAULT = 100
_FEED_LIMIT_MAX = 1000
_REF_PREFIXES = {"water": "W", "gas": "G", "heat": "H", "power": "E", "telecom": "T"}


@dataclass(frozen=True)
class ReceivedTask:
    """A task as the utility stored it.

    Attributes:
        task_id: the task id.
        received_at: when it was first stored (UTC, aware).
        body: the JSON body of the revision held (the latest applied).
        utility_ref: the utility's own reference, e.g. ``W-000123``.
        revision: the revision held.
        traceparent: the W3C ``traceparent`` header of the request that brought that revision, if any.
    """

    task_id: str
    received_at: datetime
    body: dict[str, Any]
    utility_ref: str
    revision: int = 1
    traceparent: str | None = None


@dataclass(frozen=True)
class SimStats:
    """Counters over ``POST /v1/tasks`` requests.

    Attributes:
        requests: every request, whatever the answer.
        unique: tasks stored.
        repeats: requests answered as duplicates (a key seen before, with the same body).
        faults_injected: injected errors, outage answers and lost acknowledgements.
        rejected: tasks refused with 422 because they belong to another utility.
        revisions: later revisions of a stored task applied (updates and cancellations).
        superseded: revisions not above the one held, acknowledged and ignored.
        key_conflicts: keys seen before with a different body, refused with 422.
        statuses_reported: task statuses the progression reported (change feed; callbacks too when set).
        callbacks_delivered: status callbacks answered 2xx.
        callback_failures: status callbacks that still failed after their retries.
    """

    requests: int = 0
    unique: int = 0
    repeats: int = 0
    faults_injected: int = 0
    rejected: int = 0
    revisions: int = 0
    superseded: int = 0
    key_conflicts: int = 0
    statuses_reported: int = 0
    callbacks_delivered: int = 0
    callback_failures: int = 0


class UtilitySimulator:
    """One utility's business system (water, gas or heat company), thread-safe."""

    def __init__(self, utility_id: str, *, token: str, host: str = "127.0.0.1", port: int = 0, seed: int = 11) -> None:
        self.utility_id = utility_id
        self._token = token
        self._lock = threading.Lock()
        self._tasks: dict[str, ReceivedTask] = {}
        self._keys: dict[str, dict[str, Any]] = {}  # Idempotency-Key → the body it first came with
        self._counts: Counter[str] = Counter()
        self._ref_prefix = _ref_prefix(utility_id)
        self._faults = FaultPlan(seed)
        self._progress = Progression(utility_id, seed=seed)
        self.payments = PaymentBook(utility_id, token=token, seed=seed)  # POST /v1/payments
        self.permits = PermitNoticeBook(utility_id, token=token, seed=seed)  # POST /v1/permits/status
        self.surveys = SurveyDesk(utility_id, token=token, seed=seed)  # POST /v1/surveys
        self._http = JsonHttpServer(self._handle, host=host, port=port)
        self._routes = {
            ("POST", TASKS_PATH): self._receive,
            ("GET", "/_sim/tasks"): lambda _: json_response(200, {"tasks": list(map(_task_json, self.tasks()))}),
            ("GET", "/_sim/stats"): lambda _: json_response(200, self._request_counts()),
            ("GET", "/_sim/task-status"): lambda _: json_response(
                200, {"statuses": [report.to_json() for report in self.statuses()]}
            ),
            ("POST", "/_sim/faults"): self._faults_route,
            ("GET", STATUS_FEED_PATH): self._status_feed,
            ("POST", PAYMENTS_PATH): self.payments.receive,
            ("GET", "/_sim/payments"): self.payments.listing,
            ("POST", "/_sim/payment-faults"): self.payments.faults_route,
            ("POST", NOTICES_PATH): self.permits.receive,
            ("GET", "/_sim/permit-notices"): self.permits.listing,
            ("POST", "/_sim/permit-faults"): self.permits.faults_route,
            ("POST", SURVEYS_PATH): self.surveys.receive,
            ("GET", "/_sim/surveys"): self.surveys.listing,
            ("POST", "/_sim/survey-faults"): self.surveys.faults_route,
            ("POST", "/_sim/survey-answers"): self._survey_answers_route,
            ("POST", "/_sim/progress"): self._progress_route,
            ("GET", "/_sim/progress"): lambda _: json_response(
                200, {"settings": self._progress.settings(), **self._progress.counts()}
            ),
        }

    def start(self) -> str:
        """Start serving (and progressing tasks, once configured) and return the base URL."""
        url = self._http.start()
        self._progress.start()
        return url

    def stop(self) -> None:
        """Stop serving, stop the progression and the survey answers, and release the port."""
        self._progress.stop()
        self.surveys.stop()
        self._http.stop()

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 503,
        latency_ms: int = 0,
        outage_s: float = 0.0,
        retry_after_s: float | None = None,
        fail_after_store_rate: float = 0.0,
    ) -> None:
        """Replace the fault plan of ``POST /v1/tasks``; no arguments clears every fault.

        Args:
            error_rate: probability in [0, 1] that a request is answered ``error_status`` (task not stored).
            error_status: the injected status.
            latency_ms: delay added to every task response.
            outage_s: every task request fails with 503 for this many seconds from now.
            retry_after_s: ``Retry-After`` on 429 and 503 answers; None means 1 second.
            fail_after_store_rate: probability that a newly stored task is answered 503 anyway.
        """
        self._faults.configure(
            error_rate=error_rate,
            error_status=error_status,
            latency_ms=latency_ms,
            outage_s=outage_s,
            retry_after_s=retry_after_s,
            fail_after_store_rate=fail_after_store_rate,
        )

    def set_progress(
        self,
        *,
        callback_url: str | None = None,
        callback_token: str | None = None,
        hours_per_second: float = 3600.0,
        slow_rate: float = 0.1,
        external_works_rate: float = 0.3,
        reject_rate: float = 0.05,
        seed: int | None = None,
    ) -> None:
        """Make newly stored tasks progress through their stages (see ``simulators.utility.progress``).

        Args:
            callback_url: ubridge's status-callback base URL; None reports through the change feed only.
            callback_token: Bearer token sent with callbacks.
            hours_per_second: Simulated working hours that pass per real second.
            slow_rate: Share of tasks whose first contact takes 4–6 working hours (a breach of the 3 h rule).
            external_works_rate: Share of tasks that need external pipe works (5–180 m).
            reject_rate: Share of tasks rejected, with a reason.
            seed: Seed of the draws; the simulator's seed when None.

        Raises:
            ValueError: a rate outside [0, 1], a non-positive speed or a non-HTTP callback URL.
        """
        self._progress.configure(
            callback_url=callback_url,
            callback_token=callback_token,
            hours_per_second=hours_per_second,
            slow_rate=slow_rate,
            external_works_rate=external_works_rate,
            reject_rate=reject_rate,
            seed=seed,
        )

    def statuses(self) -> list[StatusReport]:
        """Return every status reported so far, in change-feed order."""
        return self._progress.reports()

    def tasks(self) -> list[ReceivedTask]:
        """Return a copy of the unique tasks, in arrival order."""
        with self._lock:
            return copy.deepcopy(list(self._tasks.values()))

    def stats(self) -> SimStats:
        """Return the request counters and the progression's."""
        with self._lock:
            counts = dict(self._counts)
        return SimStats(**counts, **self._progress.counts())

    def _handle(self, request: Request) -> Response:
        return dispatch(self._routes, request)

    def _receive(self, request: Request) -> Response:
        self._count("requests")
        fault = self._faults.intercept()
        if fault is not None:
            self._count("faults_injected")
            return fault
        if not request.bearer_matches(self._token):
            return unauthorized()
        body = _valid_task(request)
        if isinstance(body, Response):
            return body
        if body.get("utility_id") != self.utility_id:
            self._count("rejected")
            return error_response(422, f"utility_id {body.get('utility_id')!r} is not {self.utility_id!r}")
        return self._store(request.headers["idempotency-key"], body, request.headers.get("traceparent"))

    def _store(self, key: str, body: dict[str, Any], traceparent: str | None = None) -> Response:
        with self._lock:
            seen = self._keys.get(key)
            if seen is not None:
                if seen != body:
                    self._counts["key_conflicts"] += 1
                    return error_response(422, "this Idempotency-Key was used with a different body")
                self._counts["repeats"] += 1
                held = self._tasks[body["task_id"]]
                return _answer(200, "duplicate", dataclasses.replace(held, revision=body.get("revision", 1)))
            answer, stored = self._apply(body, traceparent)
            self._keys[key] = body
        if stored is not None:
            self._progress.task_stored(stored.task_id, body, stored.received_at, stored.traceparent)
        elif self._tasks[body["task_id"]].revision == body.get("revision", 1) and body.get("action") == "CANCEL":
            self._progress.task_cancelled(body["task_id"])  # this very revision cancelled the task
        lost = self._faults.lost_acknowledgement()
        if lost is not None:
            self._count("faults_injected")
            return lost
        return answer

    def _apply(self, body: dict[str, Any], traceparent: str | None) -> tuple[Response, ReceivedTask | None]:
        """Store a new key's task (under the lock): the answer, and the task when it is new."""
        task_id, revision = body["task_id"], body.get("revision", 1)
        known = self._tasks.get(task_id)
        if known is None:
            self._counts["unique"] += 1
            ref = f"{self._ref_prefix}-{self._counts['unique']:06d}"
            task = ReceivedTask(task_id, datetime.now(UTC), body, ref, revision, traceparent)
            self._tasks[task_id] = task
            return _answer(201, "created", task), task
        if revision <= known.revision:
            self._counts["superseded"] += 1
            return _answer(200, "superseded", known), None
        self._counts["revisions"] += 1
        self._tasks[task_id] = dataclasses.replace(known, body=body, revision=revision, traceparent=traceparent)
        outcome = "cancelled" if body.get("action") == "CANCEL" else "updated"
        return _answer(200, outcome, self._tasks[task_id]), None

    def _faults_route(self, request: Request) -> Response:
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT

    def _progress_route(self, request: Request) -> Response:
        try:
            self.set_progress(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad progress plan: {exc}")
        return NO_CONTENT

    def _survey_answers_route(self, request: Request) -> Response:
        try:
            self.surveys.configure(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad survey answers: {exc}")
        return NO_CONTENT

    def _status_feed(self, request: Request) -> Response:
        if not request.bearer_matches(self._token):
            return unauthorized()
        try:
            cursor = int(request.query.get("cursor") or 0)
            limit = int(request.query.get("limit") or _FEED_LIMIT_DEFAULT)
        except ValueError:
            return error_response(400, "cursor and limit must be integers")
        if cursor < 0 or not 1 <= limit <= _FEED_LIMIT_MAX:
            return error_response(400, f"cursor must be >= 0 and limit within 1..{_FEED_LIMIT_MAX}")
        return json_response(200, self._progress.page(cursor, limit))

    def _request_counts(self) -> dict[str, int]:
        """The ``POST /v1/tasks`` counters of `stats` (the progression's are at ``GET /_sim/progress``)."""
        progress = self._progress.counts()
        return {k: v for k, v in dataclasses.asdict(self.stats()).items() if k not in progress}

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] += 1


def _valid_task(request: Request) -> dict[str, Any] | Response:
    """Return the task body, or the 400 answer that explains why it is malformed."""
    key = request.headers.get("idempotency-key", "")
    if not key:
        return error_response(400, "the Idempotency-Key header is required")
    try:
        body = request.json_object()
    except ValueError:
        return error_response(400, "the body is not a JSON object")
    if not body.get("task_id"):
        return error_response(400, "the body lacks task_id")
    revision = body.get("revision", 1)
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        return error_response(400, "revision must be a positive integer")
    expected = body["task_id"] if "revision" not in body else f"{body['task_id']}:{revision}"
    if key != expected:
        return error_response(400, "the Idempotency-Key is not <task_id>:<revision>")
    return body


def _ref_prefix(utility_id: str) -> str:
    """Pick a reference prefix from the service named in the id (``yantai-water`` → ``W``)."""
    for word, prefix in _REF_PREFIXES.items():
        if word in utility_id.lower():
            return prefix
    return "U"


def _answer(status: int, outcome: str, task: ReceivedTask) -> Response:
    answer = {"status": outcome, "task_id": task.task_id, "revision": task.revision, "utility_ref": task.utility_ref}
    return json_response(status, answer)


def _task_json(task: ReceivedTask) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "received_at": task.received_at.isoformat(),
        "utility_ref": task.utility_ref,
        "revision": task.revision,
        "body": task.body,
    }
