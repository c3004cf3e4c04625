"""Per-key delivery lanes: records of one key one after another, keys side by side, across poll batches.

A record handed in joins its key's lane. A lane that is idle takes a worker and handles its records in the
order they came, then gives the worker back; so a key's next record waits only for that key's previous one,
never for a batch, and at most ``workers`` keys are handled at once. Each result is handed to ``done`` on the
worker's thread, with the seconds it took. A record withdrawn before its turn (its partition was revoked) is
skipped without being handled, and handed to ``done`` without a result.

Example:
    >>> lanes = Lanes(handle, workers=8, done=results.put)
    >>> lanes.submit([Pending(record) for record in records])
"""

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer.future import FutureRecordMetadata

from connectors.runtime.interface import Outcome

Result = Outcome | Exception  # StopRequested: interrupted; any other exception: the stage fails


@dataclass(eq=False)
class Pending:
    """One record on its way; ``withdrawn`` is set (by the consumer's thread) when it is no longer ours."""

    record: ConsumerRecord
    withdrawn: bool = False
    result: Result | None = None
    seconds: float = 0.0
    acks: list[FutureRecordMetadata] | None = None  # its outputs, once the consumer's thread produced them


class Lanes:
    """Runs ``handle`` over pending records, in order per record key, on ``workers`` threads.

    Args:
        handle: What becomes of one record (raises ``StopRequested`` when shutdown interrupted it).
        workers: Keys handled at once.
        done: Called with each pending record once its ``result`` is set; from a worker thread.
        name: Thread name prefix.
    """

    def __init__(
        self,
        handle: Callable[[ConsumerRecord], Outcome],
        *,
        workers: int,
        done: Callable[[Pending], None],
        name: str,
    ) -> None:
        self._handle = handle
        self._done = done
        self._lock = threading.Lock()
        # a key is present while its lane holds a worker; its queue holds what that worker has yet to handle
        self._lanes: dict[bytes | None, deque[Pending]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(self, pending: Sequence[Pending]) -> None:
        """Queue each record behind the earlier ones of its key; idle keys start at once."""
        started: list[bytes | None] = []
        with self._lock:
            for item in pending:
                key = item.record.key
                lane = self._lanes.get(key)
                if lane is None:
                    lane = self._lanes[key] = deque()
                    started.append(key)
                lane.append(item)
        for key in started:
            self._pool.submit(self._run, key)

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers, after the lanes finished (``wait``) or leaving them to finish unattended."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _run(self, key: bytes | None) -> None:
        while True:
            with self._lock:
                lane = self._lanes[key]
                if not lane:
                    del self._lanes[key]
                    return
                item = lane.popleft()
            if item.withdrawn:
                self._done(item)  # without a result: nobody waits for it, but everybody counts it
                continue
            started = time.perf_counter()
            try:
                item.result = self._handle(item.record)
            except Exception as exc:  # handed to the consumer's thread, which decides what it means
                item.result = exc
            item.seconds = time.perf_counter() - started
            self._done(item)
