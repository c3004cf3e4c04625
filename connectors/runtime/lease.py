"""Runs a source in exactly one process of an installation, and moves it when that process dies.

A source has no input topic for Kafka to spread, so scaling out by running the same configuration in more
processes would run it in each of them, and their transactional producers would fence one another in turn.
Instead each process joins the source's own consumer group (``<prefix>ubridge.lease.<source>``) on the
one-partition coordination topic ``ubridge.coordination.v1``: Kafka assigns that partition to one member, and
that member runs the source; the others stand by. When the owner dies, the group coordinator notices within
``session_timeout_ms``, assigns the partition to a standby, and the standby starts the source from the
committed cursor. Should two owners ever overlap (a paused process that comes back), the transactional id
fences the older one: a cursor is never committed twice.

The source's runner is built at each takeover (fresh producer, cursor read then) and runs in a thread of its
own with its own stop event; a runner that fails ends the lease too, so the stage's supervisor restarts the
whole (the partition is released meanwhile and may go to another process).

Example:
    >>> lease = SourceLease("gonggai-spgl", consumer=make_consumer(kafka, group_id=...), topic=coordination,
    ...                     build=lambda stop: source_runner(stop), metrics=metrics, stop=stop)
    >>> lease.run()
"""

import threading
from collections.abc import Callable
from typing import Final, Protocol

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from connectors.runtime.interface import StageState
from connectors.runtime.metrics import Metrics
from connectors.runtime.subscribe import subscribe

log = structlog.get_logger(__name__)

_POLL_MS: Final = 500
_CLOSE_MS: Final = 5000
_JOIN_S: Final = 30.0  # a runner asked to stop gets this long before the lease gives up waiting for it


class _Runner(Protocol):
    """What the lease needs of a source runner: run until its stop event is set."""

    def run(self) -> None:
        """Poll and write until stopped."""
        ...


class SourceLease:
    """Holds (or waits for) the right to run one source, and runs it while held.

    Args:
        name: The source's stage name.
        consumer: Unsubscribed consumer of the group ``<prefix>ubridge.lease.<name>``.
        topic: The one-partition coordination topic.
        build: Builds the source's runner, stopping when the given event is set.
        metrics: Process metrics (``ubridge_source_owner`` and the stage's ``ubridge_stage_up``).
        stop: Set to end the lease (and the runner).
    """

    def __init__(
        self,
        name: str,
        *,
        consumer: KafkaConsumer,
        topic: str,
        build: Callable[[threading.Event], _Runner],
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        self.stage = name
        self.state = StageState()
        self._consumer = consumer
        self._topic = topic
        self._build = build
        self._metrics = metrics
        self._stop = stop
        self._owner = threading.Event()
        self._failure: BaseException | None = None

    def run(self) -> None:
        """Keep the group membership; run the source while this process owns it; until stopped."""
        listener = _Listener(self.stage, self._owner, self.state)
        subscribe(self._consumer, [self._topic], listener=listener, stop=self._stop, stage=self.stage)
        self.state.started = True
        self._up()
        runner: tuple[threading.Thread, threading.Event] | None = None
        try:
            while not self._stop.is_set():
                self._consumer.poll(timeout_ms=_POLL_MS)  # heartbeats and rebalances happen in here
                if runner is not None and not runner[0].is_alive():
                    if self._failure is not None:
                        raise self._failure
                    runner = None
                if self._owner.is_set() and runner is None:
                    runner = self._start()
                elif not self._owner.is_set() and runner is not None:
                    self._end(runner, reason="lease lost")
                    runner = None
        finally:
            if runner is not None:
                self._end(runner, reason="stopping")
            self._metrics.source_owner.labels(self.stage).set(0)
            self._metrics.stage_up.labels(self.stage).set(0)
            self._consumer.close(autocommit=False, timeout_ms=_CLOSE_MS)

    def _start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        self._failure = None
        runner = self._build(stop)
        thread = threading.Thread(target=self._run, args=(runner,), name=f"{self.stage}-runner", daemon=True)
        thread.start()
        self._metrics.source_owner.labels(self.stage).set(1)
        log.info("source_lease_taken", stage=self.stage)
        return thread, stop

    def _run(self, runner: _Runner) -> None:
        try:
            runner.run()
        except BaseException as exc:  # handed to the lease's thread, which fails the stage with it
            self._failure = exc

    def _end(self, runner: tuple[threading.Thread, threading.Event], *, reason: str) -> None:
        thread, stop = runner
        stop.set()
        thread.join(_JOIN_S)
        self._metrics.source_owner.labels(self.stage).set(0)
        self._up()  # the runner marked the stage down as it ended; the lease itself runs on
        log.info("source_lease_released", stage=self.stage, reason=reason)

    def _up(self) -> None:
        self._metrics.stage_up.labels(self.stage).set(1)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records whether this member owns the partition; runs on the client's thread, so it only sets flags."""

    def __init__(self, stage: str, owner: threading.Event, state: StageState) -> None:
        self._stage = stage
        self._owner = owner
        self._state = state

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """The lease may move: stop running the source."""
        self._owner.clear()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Owner when assigned the coordination partition; a standby otherwise. Either way, ready."""
        if assigned:
            self._owner.set()
        else:
            self._owner.clear()
        self._state.ready = True
        log.info("source_lease_assigned", stage=self._stage, owner=bool(assigned))
