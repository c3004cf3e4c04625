"""Per-key delivery lanes: records of one key one after another, keys side by side, across poll batches.

A record handed in joins its key's lane. Lanes run as tasks of one event loop, in a thread of their own: a
lane handles its records in the order they came, so a key's next record waits only for that key's
previous one, never for a batch; how many requests are on the wire at once is the HTTP client's limit. Each
result is handed to the ``done`` given with the record, on the lanes' thread, with the seconds it took. A
record withdrawn before its turn (its partition was revoked) is skipped without being handled, and handed to
``done`` without a result.

Example:
    >>> lanes = Lanes(handle, name="sink-yantai-water")
    >>> lanes.submit([Pending(record) for record in records], done=results.put)
"""

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
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


Done = Callable[[Pending], None]


class Lanes:
    """Runs ``handle`` over pending records, in order per record key, in an event loop thread of its own.

    Args:
        handle: What becomes of one record (raises ``StopRequested`` when shutdown interrupted it).
        closing: Awaited in the loop when the lanes close (the HTTP client's pool).
        name: The thread's name.
    """

    def __init__(
        self,
        handle: Callable[[ConsumerRecord], Awaitable[Outcome]],
        *,
        closing: Callable[[], Awaitable[None]],
        name: str,
    ) -> None:
        self._handle = handle
        self._closing = closing
        # a key is present while its lane's task runs; its queue holds what that task has yet to handle
        self._lanes: dict[bytes | None, deque[tuple[Pending, Done]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, pending: Sequence[Pending], *, done: Done) -> None:
        """Queue each record behind the earlier ones of its key; idle keys start at once. Any thread."""
        self._loop.call_soon_threadsafe(self._enqueue, pending, done)

    def close(self, *, wait: bool = True) -> None:
        """Stop the lanes, after they finished (``wait``) or at once, close the client and end the thread."""
        asyncio.run_coroutine_threadsafe(self._close(wait=wait), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _close(self, *, wait: bool) -> None:
        if not wait:
            for task in self._tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._closing()

    def _enqueue(self, pending: Sequence[Pending], done: Done) -> None:
        for item in pending:
            key = item.record.key
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = deque()
                task = self._loop.create_task(self._run(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            lane.append((item, done))

    async def _run(self, key: bytes | None) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                item, done = lane.popleft()
                if not item.withdrawn:
                    started = time.perf_counter()
                    try:
                        item.result = await self._handle(item.record)
                    except Exception as exc:  # handed to the consumer's thread, which decides what it means
                        item.result = exc
                    item.seconds = time.perf_counter() - started
                done(item)
        finally:
            del self._lanes[key]
