"""The demo's 12345 hotline: the platform simulator, a few dozen work orders through the whole loop.

Half the orders are pushed signed (GBK, as many provincial platforms send), half published on the platform's feed
for the pull source, and a few both (an order the platform re-sends is one task). Orders sited where no utility of
the demo serves their service (青岛, 济南's gas, 聊城's heat) are dead-lettered, as the 工改 events sited there are.
The others become COMPLAINT tasks; the utilities' simulators verify, handle and answer them through the status
callbacks, and ubridge's complaint stage sends each answer to this platform. The platform then visits the callers
(:meth:`HotlineDemo.visit_answered`: a seeded mix of results, on its return-visit feed, which the pull source
reads back): the unsatisfied orders go on the 清零 ledger, their utilities answer again, and the platform's
second visit (:meth:`HotlineDemo.revisit`) strikes them off (销号).

Example:
    >>> hotline = HotlineDemo(seed=7)
    >>> document["hotline"] = hotline.config(push_port=free_port())
    >>> orders = hotline.replay(40)
    >>> unsatisfied = hotline.visit_answered()     # once the answers reached the platform
"""

import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from connectors.demo.expected import Expectation
from connectors.hotline.push import WORK_ORDERS_PATH
from routing.calendar import SHANGHAI
from routing.errors import DataError
from routing.hotline import PUSH_SOURCE, complaint_task, parse_work_order
from routing.service_areas import ServiceAreaTable
from simulators.hotline import UNSERVED_REGION, HotlinePlatform, make_work_orders, push_records

PUSH_SECRET: Final = "demo-hotline-push-secret"  # noqa: S105 - the simulated platform's, not a secret
FEED_TOKEN: Final = "demo-hotline-feed-token"  # noqa: S105 - as above
REGIONS: Final = ("370602", "370611", "370685", "370102", "371502", UNSERVED_REGION)
HOTLINE_ORDERS: Final = 36  # a few dozen: every utility gets some, a few are unserved
RESENT_EVERY: Final = 10  # one order in ten reaches ubridge by both intakes
# The callers' verdicts on a first visit: cumulative shares (the rest satisfied). 002's target is 99.5%
# satisfied; a demo shows the 清零 path on a few.
_VERDICTS: Final = ((0.12, "UNSATISFIED"), (0.17, "UNREACHABLE"), (0.37, "BASICALLY_SATISFIED"))
_VISIT_AFTER: Final = timedelta(days=1)
_DISPATCH_GAP_MINUTES: Final = (1, 4)


class HotlineDemo:
    """The platform simulator and the orders replayed to ubridge."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.platform = HotlinePlatform(token=FEED_TOKEN, seed=seed)
        self.orders: list[dict[str, Any]] = []
        self.refused = 0
        self._url: str | None = None
        self._push_url: str | None = None
        self._visited: set[str] = set()

    def config(self, *, push_port: int) -> dict[str, Any]:
        """Start the platform; the ``hotline:`` section ubridge runs with (push on ``push_port``, pull its feed)."""
        if self._url is None:
            self._url = self.platform.start()
        self._push_url = f"http://127.0.0.1:{push_port}{WORK_ORDERS_PATH}"
        return {
            "push": {"port": push_port, "secret": PUSH_SECRET},
            "pull": {"base_url": self._url, "token": FEED_TOKEN, "poll_interval_s": 0.2, "page_size": 50},
        }

    def replay(self, count: int) -> list[dict[str, Any]]:
        """Send ``count`` work orders to ubridge (pushed, pulled, a few both); the orders ubridge accepted."""
        if self._push_url is None:
            message = "config() first: the push URL is not known yet"
            raise RuntimeError(message)
        # All dispatched within the last hours, so that the loop's deadlines run on the demo's own clock. An order
        # dispatched later than now would be verified "before it was dispatched" (the utility starts on it at
        # once) and never answered: at 10:00 in Shanghai that was a quarter of the orders.
        now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
        start = now - _DISPATCH_GAP_MINUTES[1] * timedelta(minutes=count)
        orders = make_work_orders(count, self.seed, regions=REGIONS, start=start, gap_minutes=_DISPATCH_GAP_MINUTES)
        pushed = [order for index, order in enumerate(orders) if index % 2 == 0 or index % RESENT_EVERY == 1]
        self.platform.dispatched(pushed)
        self.platform.publish([order for index, order in enumerate(orders) if index % 2 == 1])
        results = push_records(self._push_url, PUSH_SECRET, pushed, charset="gbk")
        self.refused += sum(1 for result in results if result.status != 202)  # noqa: PLR2004 - HTTP Accepted
        self.orders += orders
        return orders

    @property
    def url(self) -> str:
        """The platform's base URL (its feeds and its answer interface)."""
        if self._url is None:
            message = "config() first: the platform is not started"
            raise RuntimeError(message)
        return self._url

    def answered(self) -> set[str]:
        """The orders the platform has received an answer to."""
        return {answer.order_id for answer in self.platform.answers}

    def visit_answered(self) -> list[str]:
        """Visit the caller of every answered order not visited yet (a seeded mix); the orders found unsatisfied."""
        chance = random.Random(self.seed)  # noqa: S311 - demo traffic
        unsatisfied = []
        for order_id in sorted(self.answered() - self._visited):
            draw = chance.random()
            result = next((verdict for share, verdict in _VERDICTS if draw < share), "SATISFIED")
            self._visit(order_id, result)
            if result == "UNSATISFIED":
                unsatisfied.append(order_id)
        return unsatisfied

    def reanswered(self, order_ids: Iterable[str]) -> bool:
        """Whether every one of ``order_ids`` was answered again after its visit."""
        return all(len(self.platform.answered(order_id)) > 1 for order_id in order_ids)

    def revisit(self, order_ids: Iterable[str]) -> None:
        """Visit again the callers of orders answered anew: satisfied this time."""
        for order_id in order_ids:
            self._visit(order_id, "SATISFIED")

    def _visit(self, order_id: str, result: str) -> None:
        # the answer's time is the utility's simulated office clock, ahead of the wall clock: the visit follows it
        last = max(datetime.fromisoformat(a.answered_at) for a in self.platform.answered(order_id))
        self.platform.return_visit(order_id, result, visited_at=last + _VISIT_AFTER)
        self._visited.add(order_id)

    def stop(self) -> None:
        """Stop the platform."""
        if self._url is not None:
            self.platform.stop()


def expected_complaint_tasks(
    orders: Iterable[Mapping[str, Any]], areas: ServiceAreaTable, *, now: datetime, into: Expectation
) -> None:
    """Add the COMPLAINT tasks the orders must become; an order no utility serves counts as unserved."""
    for raw in orders:
        try:
            task = complaint_task(parse_work_order(raw, ingested_at=now, source=PUSH_SOURCE), areas, now=now)
        except DataError:
            into.unserved += 1
            continue
        into.tasks[task["utility_id"]].add(task["task_id"])
        into.complaint_orders.add(str(task["work_order_id"]))
