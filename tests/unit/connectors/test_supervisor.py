import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from kafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from connectors.registry import Context, Runnable, StageSpec
from connectors.runtime.interface import StageState
from connectors.runtime.kafka_probe import KafkaProbe
from connectors.runtime.metrics import Metrics
from connectors.supervisor import Backoff, Supervisor
from schemas import Codec
from tests.support import settings_for, wait_until


class Fake:
    """A stage that raises ``crashes`` times (one per build), then runs until stopped."""

    def __init__(self, stop: threading.Event, crash: bool) -> None:
        self.stage = "fake"
        self.state = StageState()
        self._stop = stop
        self._crash = crash

    def run(self) -> None:
        if self._crash:
            message = "clients broken"
            raise RuntimeError(message)
        self.state.started = self.state.ready = True
        self._stop.wait()


def context() -> Context:
    return Context(settings_for("127.0.0.1:1", "t."), Metrics(CollectorRegistry()), threading.Event(), Codec.default())


@contextmanager
def supervise(build: Callable[[Context], Runnable], ctx: Context) -> Iterator[Supervisor]:
    fatal = threading.Event()
    supervisor = Supervisor(
        StageSpec("fake", build), ctx, backoff=Backoff(first_s=0.01, cap_s=0.04), on_fatal=fatal.set
    )
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    yield supervisor
    ctx.stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def builds(outcomes: list[str]) -> Callable[[Context], Runnable]:
    """A build function that, per call, crashes (``crash``), fails like Kafka (``kafka``) or works (``ok``)."""
    queue = list(outcomes)

    def build(ctx: Context) -> Runnable:
        what = queue.pop(0) if len(queue) > 1 else queue[0]
        if what == "kafka":
            raise KafkaConnectionError
        if what == "config":
            message = "calendar.yaml: office_hours: must be a non-empty list"
            raise ValueError(message)
        return Fake(ctx.stop, crash=what == "crash")

    return build


def test_a_failing_stage_is_restarted_until_it_runs() -> None:
    """Two crashes, then a clean run: two restarts counted, the stage running, ready and alive."""
    ctx = context()
    with supervise(builds(["crash", "crash", "ok"]), ctx) as supervisor:
        wait_until(supervisor.ready, timeout_s=5, what="the third run")
        restarts = ctx.metrics.registry.get_sample_value("ubridge_stage_restarts_total", {"stage": "fake"})
        report = supervisor.report()
        assert (2, 2.0, True, "RuntimeError: clients broken") == (
            report["restarts"],
            restarts,
            supervisor.live(),
            report["last_error"],
        )


def test_kafka_failures_at_build_are_retried_not_fatal() -> None:
    """A build that cannot reach Kafka is retried with backoff until it can."""
    ctx = context()
    with supervise(builds(["kafka", "kafka", "ok"]), ctx) as supervisor:
        wait_until(supervisor.ready, timeout_s=5, what="the stage built")
        assert supervisor.live()


def test_a_configuration_error_at_the_first_build_is_fatal() -> None:
    """A stage whose first build fails for another reason is a configuration error: fatal, not alive."""
    ctx = context()
    fatal: list[bool] = []
    supervisor = Supervisor(StageSpec("fake", builds(["config"])), ctx, on_fatal=lambda: fatal.append(True))
    supervisor.run()
    assert ("fatal", False, [True]) == (supervisor.phase, supervisor.live(), fatal)


@pytest.mark.parametrize(("ran_s", "expected"), [(0.0, [1.0, 2.0, 4.0, 8.0, 8.0]), (500.0, [1.0, 1.0, 1.0, 1.0, 1.0])])
def test_backoff_doubles_to_its_cap_and_restarts_after_a_stable_run(ran_s: float, expected: list[float]) -> None:
    """Quick failures double the pause up to the cap; a failure after a long run starts again at the first."""
    backoff = Backoff(first_s=1.0, cap_s=8.0, stable_s=120.0)
    assert expected == [backoff.next_delay(ran_s) for _ in range(5)]


def test_kafka_probe_follows_a_listener() -> None:
    """The probe is up while a bootstrap address accepts connections and down, with the cause, once it is gone."""
    registry = CollectorRegistry()
    gauge = Metrics(registry).kafka_up
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = KafkaProbe(f"127.0.0.1:1,127.0.0.1:{port}", gauge=gauge, stop=threading.Event(), timeout_s=0.5)
    up = probe.check()
    listener.close()
    down = probe.check()
    assert (True, False, 0.0, True) == (
        up,
        down,
        registry.get_sample_value("ubridge_kafka_up"),
        f"127.0.0.1:{port} (ConnectionRefusedError)" in (probe.error or ""),
    )


def test_a_stage_built_at_start_is_run_not_built_again() -> None:
    """The runnable the application built at start is the one that runs: building twice would bind ports twice."""
    ctx = context()
    calls: list[str] = []

    def build(_: Context) -> Runnable:
        calls.append("build")
        return Fake(ctx.stop, crash=False)

    supervisor = Supervisor(StageSpec("fake", build), ctx)
    supervisor.runnable = Fake(ctx.stop, crash=False)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    wait_until(supervisor.ready, timeout_s=5, what="the prebuilt stage running")
    ctx.stop.set()
    thread.join(timeout=5)
    assert (calls, supervisor.phase) == ([], "stopped")


def test_an_operator_restart_stops_the_running_stage_and_builds_it_anew() -> None:
    """restart() ends the current run through its own stop event; the stage is built again at once and runs."""
    ctx = context()
    built: list[Fake] = []

    def build(run_ctx: Context) -> Runnable:
        built.append(Fake(run_ctx.stop, crash=False))
        return built[-1]

    with supervise(build, ctx) as supervisor:
        wait_until(supervisor.ready, timeout_s=5, what="the first run")
        supervisor.restart()
        wait_until(lambda: len(built) == 2 and supervisor.ready(), timeout_s=5, what="the second run")
        assert (supervisor.restarts, supervisor.runnable is built[1], ctx.stop.is_set()) == (1, True, False)


def test_an_operator_restart_cuts_a_failed_stages_backoff_short() -> None:
    """A stage waiting out a long backoff after a crash is restarted at once when asked."""
    ctx = context()
    supervisor = Supervisor(StageSpec("fake", builds(["crash", "ok"])), ctx, backoff=Backoff(first_s=60.0))
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: supervisor.phase == "restarting", timeout_s=5, what="the backoff after the crash")
        supervisor.restart()
        wait_until(supervisor.ready, timeout_s=5, what="the stage running long before its backoff ended")
    finally:
        ctx.stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


class Holding(Fake):
    """A stage that holds a listening socket from its build on, as an intake does."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(stop, crash=False)
        self.socket = socket.create_server(("127.0.0.1", 0))

    def close(self) -> None:
        self.socket.close()


def test_a_stage_built_but_stopped_before_it_ran_releases_what_it_holds() -> None:
    """Stopped before its first run (a process told to stop while starting), an intake frees its port."""
    ctx = context()
    holding = Holding(ctx.stop)
    supervisor = Supervisor(StageSpec("fake", lambda _: holding), ctx)
    supervisor.runnable = holding
    ctx.stop.set()
    supervisor.run()
    assert holding.socket.fileno() == -1
    assert supervisor.phase == "stopped"
