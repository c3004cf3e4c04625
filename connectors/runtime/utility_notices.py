"""Telling utilities' business systems of what happened to what they asked for: permits' states, surveys' rounds.

A notices stage reads a topic and POSTs each record, as JSON, to the endpoint of the utility (or utilities) it
concerns: by default ``path`` on the origin of the utility's task endpoint, with its task token, under an
``Idempotency-Key`` that names the record's state, so a replay never tells twice. Posts are bounded retries
(:class:`connectors.runtime.peer_post.PeerPoster`); a record that cannot be told is a ``DataError`` for the
dead-letter topic, with the reason, and the records behind it go on.
"""

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import Counter

from connectors.runtime.interface import Delivered, Outcome, outcome_of
from connectors.runtime.peer_post import BoundedRetry, PeerPoster, on_origin
from connectors.settings import UtilitySettings
from routing.errors import DataError
from schemas import Codec

Target = tuple[str, PeerPoster]  # the utility's endpoint, and its poster


def utility_targets(
    utilities: Sequence[UtilitySettings],
    *,
    path: str,
    endpoints: Mapping[str, str],
    subject: str,
    retry: BoundedRetry,
    retries: Counter,
    stop: threading.Event,
) -> dict[str, Target]:
    """Every configured utility's endpoint (``endpoints``, else ``path`` on its task endpoint's origin) and poster."""
    return {
        utility.id: (
            endpoints.get(utility.id, on_origin(utility.endpoint, path)),
            PeerPoster(
                utility.id,
                subject=subject,
                token=utility.auth.token,
                timeout_s=utility.timeout_s,
                retry=retry,
                retries=retries,
                stop=stop,
            ),
        )
        for utility in utilities
    }


class UtilityNotices:
    """The loop half of a notices :class:`Processor`: each record through ``tell``, every poster closed at the end.

    Args:
        input_topic: The topic told of.
        targets: Utility id → its target (:func:`utility_targets`).
        codec: The Avro codec.
    """

    stage: str

    def __init__(self, *, input_topic: str, targets: Mapping[str, Target], codec: Codec | None = None) -> None:
        self.input_topics = (input_topic,)
        self._targets = dict(targets)
        self._codec = codec or Codec.default()

    def process(self, records: Sequence[ConsumerRecord]) -> Iterator[Outcome]:
        """Tell each record; one that cannot be told is a ``DataError`` for the DLQ."""
        for record in records:
            yield outcome_of(self.tell, record)

    def close(self) -> None:
        """Close every utility's connection pool."""
        for _, poster in self._targets.values():
            poster.close()

    def tell(self, record: ConsumerRecord) -> Delivered:
        """Post what ``record`` says to the utilities it concerns (each subclass knows which)."""
        raise NotImplementedError

    def post(self, utility: str, body: Mapping[str, Any], *, key: str) -> None:
        """POST ``body`` to ``utility``'s endpoint under ``key``.

        Raises:
            DataError: ``utility`` is not configured, or refused it for good, or stayed down.
        """
        target = self._targets.get(utility)
        if target is None:
            raise DataError("utility_id", f"utility_id: {utility[:40]!r} is not a configured utility")
        url, poster = target
        poster.post(url, body, key=key)
