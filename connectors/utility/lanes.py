"""Per-key delivery lanes: records of one key one after another, keys side by side, across poll batches.

A record handed in joins its key's lane. Lanes are tasks of one event loop, which runs in the thread that
owns them, in slices (:meth:`Lanes.run_for`) between that thread's polls: a lane handles its records in the
order they came, so a key's next record waits only for that key's previous one, never for a batch; how many
requests are on the wire at once is the HTTP client's limit. The loop sharing the consumer's thread is
deliberate: a thread of its own made every response and every poll wait for the interpreter lock, which
halved throughput. Each result is handed to the ``done`` given with the record, with the seconds it took. A
record withdrawn before its turn (its partition was revoked) is skipped without being handled, and handed to
``done`` without a result.

Example:
    >>> lanes = Lanes(handle, closing=client.close)
    >>> lanes.submit([Pending(record) for record in records], done=finished.append)
    >>> lanes.run_for(0.002)
"""

import asyncio
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
    """Runs ``handle`` over pending records, in order per record key, on an event loop of their own.

    Every method is called from one thread, the owner's; the loop runs only inside them.

    Args:
        handle: What becomes of one record (raises ``StopRequested`` when shutdown interrupted it).
        closing: Awaited in the loop when the lanes close (the HTTP client's pool).
    """

    def __init__(
        self,
        handle: Callable[[ConsumerRecord], Awaitable[Outcome]],
        *,
        closing: Callable[[], Awaitable[None]],
    ) -> None:
        self._handle = handle
        self._closing = closing
        # a key is present while its lane's task runs; its queue holds what that task has yet to handle
        self._lanes: dict[bytes | None, deque[tuple[Pending, Done]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        """Whether any lane has records to handle."""
        return bool(self._tasks)

    def submit(self, pending: Sequence[Pending], *, done: Done) -> None:
        """Queue each record behind the earlier ones of its key; they start when the loop next runs."""
        self._enqueue(pending, done)

    def run_for(self, seconds: float) -> None:
        """Let the lanes work for ``seconds`` (less once none is busy)."""
        if self._tasks:
            self._loop.run_until_complete(self._until_idle(seconds))

    def run_until_idle(self) -> None:
        """Let the lanes work until every record handed in was handled."""
        if self._tasks:
            self._loop.run_until_complete(self._until_idle(None))

    async def _until_idle(self, seconds: float | None) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return

    def close(self, *, wait: bool = True) -> None:
        """Stop the lanes, after they finished (``wait``) or at once, and close the client and the loop."""
        self._loop.run_until_complete(self._close(wait=wait))
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
                self._idle.clear()
                task.add_done_callback(self._ended)
            lane.append((item, done))

    def _ended(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _run(self, key: bytes | None) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                item, done = lane.popleft()
                if not item.withdrawn:
                    started = time.perf_counter()
                    try:
                        item.result = await self._handle(item.record)
                    except Exception as exc:  # handed to the owner, which decides what it means
                        item.result = exc
                    item.seconds = time.perf_counter() - started
                done(item)
        finally:
            del self._lanes[key]
