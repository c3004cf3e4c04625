"""A utility's billing system, simulated: it posts (入账) the 爱山东 payments ubridge delivers, exactly once.

Contract of ``POST /v1/payments`` (same bearer token as ``/v1/tasks``):

- Headers ``Authorization: Bearer <token>`` and ``Idempotency-Key: <payment id>``; body a JSON object with at
  least ``payment_id`` (equal to the key), ``utility_id``, ``account_no`` and ``amount`` (yuan, a decimal
  string).
- 201 ``{"status": "posted", "payment_id", "receipt_no", "posted_at"}``: the payment is on the account.
  A key seen before with the same body: 200 ``{"status": "duplicate", …}`` with the same receipt (never a
  second posting). A key seen before with a different body: 409. 401 on a bad token; 400 when the key or a
  field is missing; 422 when ``utility_id`` names another utility.
- Faults (``set_faults``, or ``POST /_sim/payment-faults``) are those of the task endpoint, drawn apart:
  errors and outages strike before posting, ``fail_after_store_rate`` posts and then answers 503.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators._http import NO_CONTENT, FaultPlan, Request, Response, error_response, json_response, unauthorized

PAYMENTS_PATH = "/v1/payments"


@dataclass(frozen=True)
class PostedPayment:
    """A payment as the utility posted it: the body received, its receipt number and when."""

    payment_id: str
    receipt_no: str
    posted_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class PaymentStats:
    """Counters over ``POST /v1/payments``: requests, postings, repeats, conflicts, faults, refusals."""

    requests: int = 0
    posted: int = 0
    repeats: int = 0
    conflicts: int = 0
    faults_injected: int = 0
    rejected: int = 0


class PaymentBook:
    """The payments one utility posted, thread-safe; the utility simulator serves it."""

    def __init__(self, utility_id: str, *, token: str, seed: int) -> None:
        self.utility_id = utility_id
        self._token = token
        self._lock = threading.Lock()
        self._posted: dict[str, PostedPayment] = {}
        self._counts: dict[str, int] = {}
        self._faults = FaultPlan(seed + 1)

    def set_faults(self, **plan: Any) -> None:
        """Replace the fault plan (the keywords of ``UtilitySimulator.set_faults``); none clears it."""
        self._faults.configure(**plan)

    def payments(self) -> list[PostedPayment]:
        """The payments posted, in order."""
        with self._lock:
            return list(self._posted.values())

    def stats(self) -> PaymentStats:
        """The request counters."""
        with self._lock:
            return PaymentStats(**self._counts)

    def receive(self, request: Request) -> Response:
        """Answer ``POST /v1/payments``."""
        self._count("requests")
        refusal = self._faults.intercept()
        if refusal is not None:
            self._count("faults_injected")
        elif not request.bearer_matches(self._token):
            refusal = unauthorized()
        body = _valid_payment(request) if refusal is None else refusal
        if isinstance(body, Response):
            return body
        if body.get("utility_id") != self.utility_id:
            self._count("rejected")
            return error_response(422, f"utility_id {body.get('utility_id')!r} is not {self.utility_id!r}")
        return self._post(body)

    def _post(self, body: dict[str, Any]) -> Response:
        with self._lock:
            held = self._posted.get(body["payment_id"])
            if held is not None and held.body != body:
                self._counts["conflicts"] = self._counts.get("conflicts", 0) + 1
                return error_response(409, "this payment id was posted with a different body")
            status, outcome = (200, "duplicate") if held is not None else (201, "posted")
            if held is None:
                number = len(self._posted) + 1
                held = PostedPayment(body["payment_id"], f"RC-{self.utility_id}-{number:06d}", datetime.now(UTC), body)
                self._posted[held.payment_id] = held
            counter = "repeats" if outcome == "duplicate" else "posted"
            self._counts[counter] = self._counts.get(counter, 0) + 1
        lost = self._faults.lost_acknowledgement()
        if lost is not None:
            self._count("faults_injected")
            return lost
        answer = {
            "status": outcome,
            "payment_id": held.payment_id,
            "receipt_no": held.receipt_no,
            "posted_at": held.posted_at.isoformat(),
        }
        return json_response(status, answer)

    def faults_route(self, request: Request) -> Response:
        """Answer ``POST /_sim/payment-faults``."""
        try:
            self.set_faults(**request.json_object())
        except (TypeError, ValueError) as exc:
            return error_response(400, f"bad fault plan: {exc}")
        return NO_CONTENT

    def listing(self, _request: Request) -> Response:
        """Answer ``GET /_sim/payments``."""
        payments = [
            {"payment_id": p.payment_id, "receipt_no": p.receipt_no, "posted_at": p.posted_at.isoformat(), **p.body}
            for p in self.payments()
        ]
        return json_response(200, {"payments": payments, "stats": self.stats().__dict__})

    def _count(self, counter: str) -> None:
        with self._lock:
            self._counts[counter] = self._counts.get(counter, 0) + 1


def _valid_payment(request: Request) -> dict[str, Any] | Response:
    """The payment body, or the 400 answer that explains why it is malformed."""
    try:
        body = request.json_object()
    except ValueError:
        return error_response(400, "the body is not a JSON object")
    problem = _problem(request.headers.get("idempotency-key", ""), body)
    return body if problem is None else error_response(400, problem)


def _problem(key: str, body: dict[str, Any]) -> str | None:
    missing = [name for name in ("payment_id", "account_no", "amount") if not body.get(name)]
    if not key:
        return "the Idempotency-Key header is required"
    if missing:
        return f"the body lacks {', '.join(missing)}"
    if key != body["payment_id"]:
        return "the Idempotency-Key is not the payment_id"
    try:
        amount = Decimal(str(body["amount"]))
    except InvalidOperation:
        return "amount is not a decimal number of yuan"
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return "amount must be positive yuan with at most 2 decimals"
    return None
