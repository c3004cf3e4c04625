"""The complaint ledger's orders in memory, followed from its compacted topic (the supervision view's source).

The figures of the supervision view and of the monthly report come from this topic, the complaint stage's own
record of every order (:func:`routing.complaints.complaint_figures`). Held visits and closes (``held/…`` keys)
are skipped; a tombstone removes its key; a value that does not decode is logged and skipped.

Example:
    >>> follower = ComplaintFollower(settings.kafka, settings.topic("complaints_ledger"))
    >>> threading.Thread(target=follower.run, args=(stop,), daemon=True).start()
    >>> follower.wait_caught_up(30); follower.entries()
"""

from collections.abc import Callable
from datetime import datetime

from connectors.runtime.topic_follower import TopicFollower, by_field
from connectors.settings import KafkaSettings
from routing.complaints import complaint_figures
from routing.records import ComplaintLedgerEntry
from routing.satisfaction import SatisfactionPolicy
from routing.supervision import ComplaintFigures, Level
from schemas import Codec

# (now, a month's bounds or None for every order) → the complaint figures per (level, group)
ComplaintSource = Callable[[datetime, tuple[datetime, datetime] | None], dict[tuple[Level, str], ComplaintFigures]]


class ComplaintFollower(TopicFollower[ComplaintLedgerEntry]):
    """Every order of the complaint ledger topic, followed from its start (:class:`TopicFollower`).

    Args:
        kafka: The cluster.
        topic: The complaint ledger topic (prefix applied).
        codec: Avro codec (the process-wide one by default).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, codec: Codec | None = None) -> None:
        super().__init__(kafka, topic, record="ComplaintLedgerEntry", key_of=by_field("order_id"), codec=codec)


def follower_figures(follower: ComplaintFollower, policy: SatisfactionPolicy) -> ComplaintSource:
    """The figures function of the supervision view over the orders the follower holds now."""
    return lambda now, within: complaint_figures(follower.entries(), policy, now=now, within=within)
