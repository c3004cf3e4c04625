"""A group member whose rebalance has begun finishes it, as Kafka's own Java consumer does.

kafka-python 3.0.12 asks ``need_rejoin()`` on every poll before driving a rebalance. A leader member also
answers True while its metadata differs from the metadata it assigned with, and on a cluster whose brokers
have not all caught up with a new topic (or while one is dying) that difference comes and goes between two
metadata responses. A poll that saw it begins a rebalance: the revocation listener runs, heartbeats stop,
JoinGroup goes out. If the next poll no longer sees it, kafka-python never goes back to that join: the member
stays "rebalancing" without heartbeats or fetches, the coordinator drops it after ``session.timeout.ms``, and
the stage consumes nothing until the process restarts. CI saw two sinks, then the normaliser, stuck so for
minutes on a three-broker cluster.

The Java consumer asks ``rejoinNeededOrPending()``: a rejoin that is needed *or a join already under way*.
:func:`install` makes kafka-python's ``ConsumerCoordinator.need_rejoin`` answer the same, so a started
rebalance is always driven to its end. It is installed once, when :mod:`connectors.runtime.kafka` is imported.
"""

from collections.abc import Callable
from typing import Any

from kafka.coordinator.consumer import ConsumerCoordinator

_MARK = "_ubridge_finishes_pending_joins"


def install() -> None:
    """Make every kafka-python consumer finish a rebalance it began (idempotent)."""
    if getattr(ConsumerCoordinator.need_rejoin, _MARK, False):
        return
    needed: Callable[[ConsumerCoordinator], bool] = ConsumerCoordinator.need_rejoin

    def need_rejoin_or_pending(self: Any) -> bool:
        # ``rejoining`` is set once the join is prepared (listeners run, heartbeat off), cleared when it completes
        return bool(needed(self) or self.rejoining)

    setattr(need_rejoin_or_pending, _MARK, True)
    ConsumerCoordinator.need_rejoin = need_rejoin_or_pending
