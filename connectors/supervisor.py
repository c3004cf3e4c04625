"""Keeps one stage running inside its process: a stage that fails is rebuilt and restarted, with capped backoff.

One stage's failure (its clients broken by a Kafka outage, a fenced producer, a bug outside any one record)
never stops the other stages of the process. The supervisor builds the stage, runs it until it returns (a
stop) or raises, then waits ``min(cap, first * 2**(n-1))`` seconds and builds it anew: fresh clients, state
rebuilt from Kafka, work redone from the last commit (at-least-once). A stage that ran longer than
``_STABLE_S`` before failing starts the count again. While it waits its ``ubridge_stage_up`` is 0, it reads
``restarting`` on ``/healthz`` and not ready on ``/readyz``, and ``ubridge_stage_restarts_total`` counts it.

An operator's restart (``ubridge admin restart``, through the control topic) stops the running stage cleanly
or cuts its backoff short, and builds it anew at once. Each run is built with a stop event of its own, set by
that request or by the process's stop (``ctx.stop``).

Only a stage that cannot be built the first time for a reason other than Kafka (a bad file, a bad setting)
is fatal: that is a configuration error, and the process stops with it.

Example:
    >>> supervisor = Supervisor(spec, ctx)
    >>> threading.Thread(target=supervisor.run).start()
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, Protocol, runtime_checkable

import structlog
from kafka.errors import KafkaError

from connectors.registry import Context, Runnable, StageSpec
from routing.privacy import mask_text


@runtime_checkable
class Closable(Protocol):
    """A stage that holds something from its build on (an intake's listening socket) until it runs."""

    def close(self) -> None:
        """Release it without running."""
        ...


log = structlog.get_logger(__name__)

Phase = Literal["starting", "running", "restarting", "stopped", "fatal"]

_FIRST_S: Final = 1.0
_CAP_S: Final = 60.0
_STABLE_S: Final = 120.0  # ran this long: the next failure is a new incident, its backoff starts again


@dataclass
class Backoff:
    """Capped exponential restart delays; ``clock`` is a swap point for tests."""

    first_s: float = _FIRST_S
    cap_s: float = _CAP_S
    stable_s: float = _STABLE_S
    failures: int = 0

    def next_delay(self, ran_s: float) -> float:
        """The pause before the next start, after a run that lasted ``ran_s`` seconds."""
        self.failures = 1 if ran_s >= self.stable_s else self.failures + 1
        return float(min(self.cap_s, self.first_s * 2 ** (self.failures - 1)))


class Supervisor:
    """Builds, runs and restarts one stage until ``ctx.stop`` is set.

    Args:
        spec: The stage and how to build it.
        ctx: What every stage is built from; ``ctx.stop`` ends the supervision.
        backoff: Restart delays.
        on_fatal: Called when the first build fails for a reason other than Kafka.
    """

    def __init__(
        self,
        spec: StageSpec,
        ctx: Context,
        *,
        backoff: Backoff | None = None,
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = spec.name
        self._spec = spec
        self._ctx = ctx
        self._backoff = backoff or Backoff()
        self._on_fatal = on_fatal
        self._lock = threading.Lock()
        self.runnable: Runnable | None = None
        self.phase: Phase = "starting"
        self.restarts = 0
        self.last_error: str | None = None
        self.next_start_at: float | None = None
        self._run_stop = threading.Event()
        self._restart_requested = False

    def context(self) -> Context:
        """The context the current run of the stage is built with: its stop event is the run's own."""
        with self._lock:
            return replace(self._ctx, stop=self._run_stop)

    def restart(self) -> None:
        """Stop the running stage (or end its backoff) and build it anew now."""
        with self._lock:
            self._restart_requested = True
            self._run_stop.set()

    def _halt_on_stop(self) -> None:
        """Pass the process's stop on to the current run (whose stop event is its own)."""
        self._ctx.stop.wait()
        with self._lock:
            self._run_stop.set()

    def run(self) -> None:
        """Supervise until stopped (or the first build turns out to be a configuration error)."""
        stop = self._ctx.stop
        threading.Thread(target=self._halt_on_stop, name=f"{self.name}-stop", daemon=True).start()
        runnable = self.runnable  # built by the application at start, when Kafka let it
        while not stop.is_set():
            if runnable is None:
                runnable = self._build(first=self.restarts == 0)
                if runnable is None:
                    return
            started = time.monotonic()
            self._set(phase="running", runnable=runnable)
            try:
                runnable.run()
            except Exception as exc:  # the stage logged its own traceback (stage_failed)
                self._set(error=_describe(exc))
            runnable = None
            ran_s = time.monotonic() - started
            if stop.is_set():
                break
            if not self._take_restart() and not self._pause(self._backoff.next_delay(ran_s)):
                break
            self.restarts += 1
            self._ctx.metrics.stage_restarts.labels(self.name).inc()
        if isinstance(runnable, Closable):  # built, never run (stopped first): free what it holds, a port
            runnable.close()
        self._set(phase="stopped")

    def live(self) -> bool:
        """Alive unless the stage is fatally misconfigured (a restarting stage is alive: it heals itself)."""
        return self.phase != "fatal"

    def ready(self) -> bool:
        """Running, and ready by its own account (group joined, Kafka answering its commits)."""
        runnable = self.runnable
        return self.phase == "running" and runnable is not None and runnable.state.ready and not runnable.state.failed

    def report(self) -> dict[str, Any]:
        """The stage's state for the health endpoints."""
        with self._lock:
            report: dict[str, Any] = {"state": self.phase, "restarts": self.restarts}
            if self.last_error is not None:
                report["last_error"] = self.last_error
            if self.phase == "restarting" and self.next_start_at is not None:
                report["restart_in_s"] = round(max(0.0, self.next_start_at - time.monotonic()), 1)
            return report

    def _build(self, *, first: bool) -> Runnable | None:
        """Build the stage; retry Kafka failures with backoff; None when stopped or fatally misconfigured."""
        while not self._ctx.stop.is_set():
            try:
                return self._spec.build(self.context())
            except KafkaError as exc:
                self._set(error=_describe(exc))
                log.warning("stage_build_failed", stage=self.name, error=self.last_error)
            except Exception as exc:
                self._set(error=_describe(exc))
                if first:
                    log.exception("stage_misconfigured", stage=self.name)
                    self._set(phase="fatal")
                    self._on_fatal()
                    return None
                log.exception("stage_build_failed", stage=self.name)
            if not self._pause(self._backoff.next_delay(0.0)):
                return None
        return None

    def _pause(self, delay_s: float) -> bool:
        """Wait before the next attempt (an operator's restart ends the wait); False when a stop came first."""
        self._set(phase="restarting", next_start_at=time.monotonic() + delay_s)
        self._ctx.metrics.stage_up.labels(self.name).set(0)
        log.warning("stage_restarting", stage=self.name, in_s=delay_s, attempt=self._backoff.failures)
        with self._lock:
            run_stop = self._run_stop
        run_stop.wait(delay_s)
        self._take_restart()
        return not self._ctx.stop.is_set()

    def _take_restart(self) -> bool:
        """Whether an operator asked for a restart since the last one; if so, the next run gets a fresh stop."""
        with self._lock:
            requested, self._restart_requested = self._restart_requested, False
            if requested:
                self._run_stop = threading.Event()
        if requested:
            log.info("stage_restarted_by_operator", stage=self.name)
        return requested

    def _set(
        self,
        *,
        phase: Phase | None = None,
        runnable: Runnable | None = None,
        error: str | None = None,
        next_start_at: float | None = None,
    ) -> None:
        with self._lock:
            if phase is not None:
                self.phase = phase
            if runnable is not None:
                self.runnable = runnable
            if error is not None:
                self.last_error = error
            self.next_start_at = next_start_at


def _describe(exc: BaseException) -> str:
    return mask_text(f"{type(exc).__name__}: {exc}")[:500]
