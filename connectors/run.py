"""``ubridge run``: the configured stages, in one process or spread over supervised children.

With ``processes.count`` above 1 (``auto``: one per core) and more than one stage to run, the stages are
split into groups (:mod:`connectors.runtime.layout`) and each group runs in a child process of its own
(:mod:`connectors.process_tree`); otherwise every stage is a thread of this process (:class:`App`).
"""

import gc
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final, Protocol

import structlog

from connectors.app import App, UnknownStageError, select_stages
from connectors.process_tree import ProcessTree
from connectors.registry import stage_specs
from connectors.runtime.children import STATE_ENV, die_with_parent
from connectors.runtime.kafka_access import KafkaAccessError, check_access
from connectors.runtime.layout import LayoutError, is_background, plan_groups, process_count
from connectors.runtime.schema_registry import SchemaRegistryError, codec_for
from connectors.settings import Settings

log = structlog.get_logger(__name__)

SHUTDOWN_S: Final = 25.0  # SIGTERM → exit within this (plus the stages' own bounded closes), even with Kafka down
# A process running stages has dozens of threads (each stage's loop, each Kafka client's I/O threads) taking the
# GIL in turn; Python's 5 ms switch interval hands it over more often than their work needs. End to end at 100
# events/s, four alternating pairs of runs: medians p50/p99 1.35/2.3 s at 20 ms against 1.83/3.3 s at 5 ms,
# 20 ms ahead in three pairs of four (the spread between runs is as large); 1 ms was 3 to 4 times worse.
SWITCH_INTERVAL_S: Final = 0.02


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def run(settings: Settings, config: Path, *, stages: Sequence[str] | None, child: bool) -> int:
    """Run until SIGTERM; the exit status (1: a stage failed for good, 2: cannot start)."""
    if child:
        if not die_with_parent():
            return 0  # the parent died before this child asked to die with it
        _yield_cpu_if_background(settings, stages)
        return _run_app(settings, stages, health_port_file=Path(os.environ[STATE_ENV]))
    try:
        check_access(settings.kafka)
        groups = layout(settings, stages)
        # registered once here, so that a refusal stops the whole process with one line before any child runs
        codec_for(settings).close()
    except (KafkaAccessError, UnknownStageError, LayoutError, SchemaRegistryError) as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    if len(groups) <= 1:
        return _run_app(settings, stages, health_port_file=None)
    return _run_tree(settings, config, groups)


def layout(settings: Settings, stages: Sequence[str] | None) -> list[list[str]]:
    """The stages of each process.

    Raises:
        UnknownStageError: ``stages`` names a stage the configuration does not define.
        LayoutError: ``processes.groups`` names a stage the configuration does not define, or one twice.
    """
    specs = stage_specs(settings)
    selected = select_stages(specs, stages)
    pinned = settings.processes.groups
    plan_groups([(s.name, s.weight) for s in specs], count=len(specs), pinned=pinned)  # names checked here
    names = {s.name for s in selected}
    kept = [[name for name in group if name in names] for group in pinned]
    readers = {s.name for s in selected if s.reader}
    background = {s.name for s in selected if s.background}
    count = process_count(
        settings.processes.count,
        stages=len(selected),
        cores=len(os.sched_getaffinity(0)),
        background=bool(background),
        readers=bool(readers),
    )
    weighed = [(s.name, s.weight) for s in selected]
    return plan_groups(weighed, count=count, pinned=[g for g in kept if g], background=background, readers=readers)


def _yield_cpu_if_background(settings: Settings, stages: Sequence[str] | None) -> None:
    """Lower this child's CPU priority when it runs only background stages (``processes.background_nice``).

    On a saturated machine the scheduler then serves the delivery path first; the background stages (ledger,
    views, notices) catch up when the load falls (the README has the measurements).
    """
    background = {s.name for s in stage_specs(settings) if s.background}
    nice = settings.processes.background_nice
    if nice and stages and is_background(stages, background):
        os.nice(nice)
        log.info("process_priority_lowered", nice=nice, stages=list(stages))


def _on_signals(target: _Stoppable) -> None:
    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        target.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _run_app(settings: Settings, stages: Sequence[str] | None, *, health_port_file: Path | None) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        app = App(settings, only=stages, health_port_file=health_port_file)
    except UnknownStageError as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    _on_signals(app)
    try:
        app.start()
    except SchemaRegistryError as exc:
        print(f"ubridge: {exc}", file=sys.stderr)
        return 2
    # The libraries, the configuration and the stages' start-up state live as long as the process: out of the
    # collector's sight, a full collection walks only what the stages hold since. Walking everything stopped every
    # thread of the process for 120-510 ms, 2 to 5 times in a 20 s latency run (README, "Benchmarks").
    gc.freeze()
    while not app.wait(timeout_s=0.5):
        if app.stop_event.is_set():
            break
    if not app.wait(timeout_s=SHUTDOWN_S):
        # A stage still blocked on an unreachable broker: its uncommitted work is redone by the next owner.
        busy = [s.name for s in app.supervisors if s.phase != "stopped"]
        log.warning("shutdown_forced", after_s=SHUTDOWN_S, stages=busy)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1 if app.failed else 0)
    log.info("process_stopped", failed=app.failed)
    return 1 if app.failed else 0


def _run_tree(settings: Settings, config: Path, groups: list[list[str]]) -> int:
    tree = ProcessTree(settings, config, groups=groups, shutdown_s=SHUTDOWN_S)
    _on_signals(tree)
    tree.start()
    while not tree.wait(timeout_s=0.5):
        if tree.stop_event.is_set():
            break
    tree.drain()
    log.info("process_stopped", failed=tree.exit_status != 0, children=len(groups))
    return tree.exit_status
