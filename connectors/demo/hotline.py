"""The demo's 12345 hotline: the platform simulator, a few dozen work orders pushed and pulled, what they must become.

Half the orders are pushed signed (GBK, as many provincial platforms send), half published on the platform's feed
for the pull source, and a few both (an order the platform re-sends is one task). Orders sited where no utility of
the demo serves their service (青岛, 济南's gas, 聊城's heat) are dead-lettered, as the 工改 events sited there are.
:meth:`HotlineDemo.replay` returns the orders, for later parts of the demo (return visits, figures) to build on.

Example:
    >>> hotline = HotlineDemo(seed=7)
    >>> document["hotline"] = hotline.config(push_port=free_port())
    >>> orders = hotline.replay(40)
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from connectors.demo.expected import Expectation
from connectors.hotline.push import WORK_ORDERS_PATH
from routing.errors import DataError
from routing.hotline import PUSH_SOURCE, complaint_task, parse_work_order
from routing.service_areas import ServiceAreaTable
from simulators.hotline import UNSERVED_REGION, HotlinePlatform, make_work_orders, push_records

PUSH_SECRET: Final = "demo-hotline-push-secret"  # noqa: S105 - the simulated platform's, not a secret
FEED_TOKEN: Final = "demo-hotline-feed-token"  # noqa: S105 - as above
REGIONS: Final = ("370602", "370611", "370685", "370102", "371502", UNSERVED_REGION)
HOTLINE_ORDERS: Final = 36  # a few dozen: every utility gets some, a few are unserved
RESENT_EVERY: Final = 10  # one order in ten reaches ubridge by both intakes


class HotlineDemo:
    """The platform simulator and the orders replayed to ubridge."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.platform = HotlinePlatform(token=FEED_TOKEN, seed=seed)
        self.orders: list[dict[str, Any]] = []
        self.refused = 0
        self._url: str | None = None
        self._push_url: str | None = None

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
        orders = make_work_orders(count, self.seed, regions=REGIONS)
        pushed = [order for index, order in enumerate(orders) if index % 2 == 0 or index % RESENT_EVERY == 1]
        self.platform.publish([order for index, order in enumerate(orders) if index % 2 == 1])
        results = push_records(self._push_url, PUSH_SECRET, pushed, charset="gbk")
        self.refused += sum(1 for result in results if result.status != 202)  # noqa: PLR2004 - HTTP Accepted
        self.orders += orders
        return orders

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
