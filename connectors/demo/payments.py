"""The demo's payments (缴费): the 爱山东 app pushes bills paid, ubridge posts them at the utilities, receipts return.

The app's receipt endpoint runs in the demo's process (:class:`simulators.aishandong.PaymentPlatform`); the
utilities' billing endpoints are the utility simulators' ``POST /v1/payments``. One payment in 30 is for a
division no utility serves (dead-lettered); one in 10 is pushed twice (posted once); the app's receipt endpoint
drops a tenth of requests when faults are on (retried).
"""

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from connectors.aishandong.rules import load_application_rules
from connectors.aishandong.settings import SHIPPED_RULES
from routing.service_areas import ServiceAreaTable
from simulators.aishandong import RECEIPTS_PATH, PaymentPlatform, make_payments, push_payments

SECRET = "demo-aishandong-payments-secret"  # noqa: S105 - the simulated app's, not a secret
RECEIPT_TOKEN = "demo-aishandong-receipts"  # noqa: S105 - as above
REGIONS = ("370602", "370611", "370685", "371502", "370102")
UNSERVED_REGION = "370202"  # no utility in the demo's service areas
UNSERVED_EVERY = 30
REPEAT_EVERY = 10
PER_CHUNK = 3


@dataclass(frozen=True)
class PaymentFigures:
    """One utility's payments: expected, posted (unique), posted twice, receipted back, and the yuan posted."""

    utility: str
    expected: int
    posted: int
    duplicated: int
    acknowledged: int
    amount_yuan: Decimal

    @property
    def exactly_once(self) -> bool:
        """Each expected payment posted once and receipted."""
        return self.expected == self.posted == self.acknowledged and self.duplicated == 0


class DemoPayments:
    """Pushes the demo's payments and tells what became of them."""

    def __init__(self, areas: ServiceAreaTable, *, seed: int, faults: bool) -> None:
        self._areas = areas
        self._seed = seed
        self._words = load_application_rules(SHIPPED_RULES).vocabulary.service_names
        self.platform = PaymentPlatform(token=RECEIPT_TOKEN, seed=seed)
        self._url = self.platform.start()
        if faults:
            self.platform.set_faults(error_rate=0.1, retry_after_s=0.2)
        self.pushed: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self.repeated = 0
        self._port = 0
        self.refused = 0

    def section(self, port: int) -> dict[str, Any]:
        """The ``payments`` section of the demo's configuration, its intake on ``port``."""
        self._port = port
        return {
            "gateway": {"port": port, "secret": SECRET},
            "acknowledgement": {"url": f"{self._url}{RECEIPTS_PATH}", "token": RECEIPT_TOKEN},
            "retry": {"initial_backoff_s": 0.1, "max_backoff_s": 1.0, "max_attempts": 30},
        }

    def push(self, chunk: int) -> None:
        """Push a few payments, every tenth a second time and one in thirty for an unserved division."""
        rng = random.Random(self._seed * 100_003 + chunk)  # noqa: S311 - a reproducible draw, not a secret
        payments = make_payments(PER_CHUNK, self._seed * 1000 + chunk, REGIONS)
        for index, payment in enumerate(payments):
            payment["jfbh"] = f"JF-DEMO-{chunk:06d}-{index}"
            if rng.randrange(UNSERVED_EVERY) == 0:
                payment["xzqhdm"] = UNSERVED_REGION
        repeats = [p for p in payments if rng.randrange(REPEAT_EVERY) == 0]
        url = f"http://127.0.0.1:{self._port}/v1/payments"
        results = push_payments(url, SECRET, payments)
        # a resend is signed afresh, at a later second: the same signature again would be refused as a replay
        results += push_payments(url, SECRET, repeats, clock=lambda: time.time() + 1)
        for payment, result in zip(payments + repeats, results, strict=True):
            if result.status != 202:  # noqa: PLR2004 - HTTP Accepted
                self.refused += 1
            elif payment["jfbh"] in self._ids:
                self.repeated += 1
            else:
                self._ids.add(payment["jfbh"])
                self.pushed.append(payment)

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        """Utility → the payments it should post (those of unserved divisions go to the dead-letter topic)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for payment in self.pushed:
            utility = self._areas.utility_for(payment["xzqhdm"], self._words[payment["fwlx"]])
            if utility is not None:
                out.setdefault(utility, []).append(payment)
        return out

    def settled(self) -> bool:
        """Every payment that a utility serves has its receipt back."""
        return len(self.platform.receipts()) >= sum(len(p) for p in self.expected().values())

    def figures(self, utility_urls: dict[str, str]) -> list[PaymentFigures]:
        """Per utility, what its billing system posted and 爱山东 holds receipts for."""
        expected = self.expected()
        receipts = self.platform.receipts()
        rows = []
        for utility, url in utility_urls.items():
            listing = httpx.get(f"{url}/_sim/payments", timeout=30).raise_for_status().json()
            ids = [p["payment_id"] for p in listing["payments"]]
            rows.append(
                PaymentFigures(
                    utility=utility,
                    expected=len(expected.get(utility, [])),
                    posted=len(set(ids)),
                    duplicated=len(ids) - len(set(ids)),
                    acknowledged=sum(1 for r in receipts if r.utility_id == utility),
                    amount_yuan=sum((Decimal(p["amount"]) for p in listing["payments"]), Decimal("0.00")),
                )
            )
        return [row for row in rows if row.expected or row.posted]

    def stop(self) -> None:
        """Stop the app's receipt endpoint."""
        self.platform.stop()


def payments_line(rows: list[PaymentFigures], *, pushed: int, repeated: int, refused: int) -> str:
    """The summary's line: per utility received/posted/receipted and yuan, and the payments dead-lettered."""
    parts = [f"{r.utility} {r.posted}/{r.expected} posted, {r.acknowledged} receipted, ¥{r.amount_yuan}" for r in rows]
    placed = sum(r.expected for r in rows)
    verdict = "each posted once and receipted" if all(r.exactly_once for r in rows) else "MISMATCH"
    return (
        f"爱山东 payments: {pushed} received, {repeated} pushed again ({refused} refused at the gateway, "
        f"{pushed - placed} for divisions no utility serves, dead-lettered); {'; '.join(parts)}; {verdict}."
    )
