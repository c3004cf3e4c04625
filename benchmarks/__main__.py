"""``make bench``: every figure against the real local broker, one line each: ``bench <name> <value> <unit>``.

Each line ends with a comment giving the rate the run achieved (or offered) and the machine's 1-minute load
average at the end of that run: on a shared machine the ratios between figures of one invocation are what
counts, never a figure alone.

1. ``throughput``: a bare kafka-python consume → produce → commit passthrough of the raw events (the ceiling:
   run before, between and after the stages; the median, with its spread), then ubridge's normaliser and
   router on the same data, each in its loop's own thread (the normaliser also with ``--workers`` worker
   processes); ``normaliser_vs_passthrough`` and ``router_vs_passthrough`` are their ratios to the ceiling; a
   passthrough writing as many records per event as the router did bounds the router's
   (``passthrough_router_fanout_vs_passthrough``);
2. ``sink``: one utility's sink delivering tasks all addressed to it to a receiver that answers at once
   (:mod:`benchmarks.receiver`, a process of its own), against the anchor (:mod:`benchmarks.anchor`: aiokafka
   + aiohttp, 32 requests in flight, the same work) on the same tasks and receiver: ``sink_vs_anchor``; the sink
   with as many requests in flight; the same anchor on kafka-python, ubridge's Kafka client, shows what that
   client allows (``anchor_kafka_python_vs_anchor``);
3. ``spgl``: the 工改 query-account reader, SPGL rows from SQLite into the raw topic;
4. ``backfill``: the backfill of a PostgreSQL exchange database of ``--spgl-backfill-rows`` rows in both
   dialects (rows/s and the reader's peak RSS at that size and a quarter of it, see benchmarks/spgl_backfill.py);
5. ``latency``: end to end at 100 and 300 events/s (``--rates``) with the default configuration and process
   layout of ``ubridge run``, the load generator in a process of its own, each hop printed
   (:mod:`benchmarks.latency`);
6. ``memory``: the resident set of a separate ``ubridge run`` process after 10,000 and 50,000 events of
   sustained demo traffic (:mod:`benchmarks.memory`);
7. ``restore``: the ledger's restore time from its changelog at 10,000 and 100,000 tasks
   (:mod:`benchmarks.ledger_restore`);
8. ``taskview``: statuses per second a fresh task view folds from the task-status topic into its SQLite table
   (:mod:`benchmarks.task_view`);
9. ``failover``: seconds from SIGKILL of the source's owner to the standby running it (:mod:`benchmarks.failover`).

``--only`` runs some of these groups. Throughput is timed after each run from its outputs' Kafka timestamps
(first send to last), so consumer-group joins and worker start-up do not count and nothing watches the stage
while it runs.
"""

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.anchor import IN_FLIGHT
from benchmarks.failover import failover_seconds
from benchmarks.harness import (
    SINK_UTILITY,
    Throughput,
    anchor_sink_run,
    count_records,
    passthrough,
    produce_raw,
    produce_tasks,
    run_stage,
    tasks_per_utility,
)
from benchmarks.latency import HOPS, end_to_end
from benchmarks.ledger_restore import restore_seconds
from benchmarks.memory import memory_under_load
from benchmarks.receiver import Receiver
from benchmarks.spgl import spgl_throughput
from benchmarks.spgl_backfill import print_figures, spgl_backfill
from benchmarks.task_view import statuses_per_s
from connectors.broker.local_kafka import start_broker, stop_broker
from connectors.runtime.logs import configure_logging

GROUPS = ("throughput", "sink", "spgl", "backfill", "latency", "memory", "restore", "taskview", "failover")


def main() -> int:  # noqa: PLR0912, PLR0915 - one flat list of groups reads best
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="raw events per throughput run")
    parser.add_argument("--spgl-rows", type=int, default=50000, help="SPGL rows for the query-account reader")
    parser.add_argument(
        "--spgl-backfill-rows", type=int, default=1_000_000, help="rows of the PostgreSQL backfill (0: skip it)"
    )
    parser.add_argument("--tasks", type=int, default=10000, help="tasks per sink run")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[100.0, 300.0], help="offered rates of the latency runs, events/s"
    )
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument(
        "--processes", default=None, help="processes.count of the latency runs (default: the configuration's own)"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes per parallel run (default: cores)"
    )
    parser.add_argument("--memory-rate", type=float, default=40.0, help="offered rate of the memory run, events/s")
    parser.add_argument(
        "--memory-source",
        choices=("spgl", "interface"),
        default="spgl",
        help="approval-system source of the memory run",
    )
    parser.add_argument("--failover-rounds", type=int, default=3, help="SIGKILLs of the source's owner")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="benchmark groups to run")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")

    home = Path(tempfile.mkdtemp(prefix="ubridge-bench-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    started_here = bootstrap is None
    if bootstrap is None:
        bootstrap = start_broker(home, progress=lambda line: print(f"# {line}", file=sys.stderr)).bootstrap
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    try:
        if "throughput" in args.only:
            _throughput(bootstrap, prefix, args)
        if "sink" in args.only:
            _sink(bootstrap, prefix, args)
        if "spgl" in args.only:
            print("# spgl reader: running", file=sys.stderr, flush=True)
            rate = spgl_throughput(bootstrap, prefix + "spgl.", args.spgl_rows)
            _line("spgl_reader_throughput", rate, "rows/s", _load_note())
        if "backfill" in args.only and args.spgl_backfill_rows:
            print_figures(spgl_backfill(args.spgl_backfill_rows))
        if "latency" in args.only:
            _latency(bootstrap, prefix, args)
        if "memory" in args.only:
            print("# memory: sustained load on a separate ubridge process", file=sys.stderr, flush=True)
            memory = memory_under_load(
                bootstrap,
                prefix + "mem.",
                checkpoints=(10_000, 50_000),
                rate_per_s=args.memory_rate,
                source=args.memory_source,
            )
            _line("rss_10k_events", memory.rss_mib[10_000], "MiB", _load_note())
            _line("rss_50k_events", memory.rss_mib[50_000], "MiB", _load_note())
            growth = 100 * (memory.rss_mib[50_000] - memory.rss_mib[10_000]) / memory.rss_mib[10_000]
            _line("rss_growth_10k_to_50k", growth, "percent", _load_note())
            _line("rss_peak", memory.peak_mib, "MiB", _load_note())
            _line("memory_run_rate", memory.events_per_s, "events/s", f"offered {args.memory_rate:g}/s, {_load_note()}")
        if "restore" in args.only:
            for tasks in (10_000, 100_000):
                print(f"# restore: ledger of {tasks} tasks", file=sys.stderr, flush=True)
                seconds = restore_seconds(bootstrap, prefix, tasks)
                _line(f"ledger_restore_{tasks // 1000}k_tasks", seconds, "s", _load_note())
        if "taskview" in args.only:
            print("# taskview: a fresh task view reading 20,000 statuses, 10 a poll", file=sys.stderr, flush=True)
            _line("task_view_statuses_per_s", statuses_per_s(bootstrap, prefix, 10_000), "statuses/s", _load_note())
        if "failover" in args.only:
            print("# failover: SIGKILL of the source's owner", file=sys.stderr, flush=True)
            failover = failover_seconds(bootstrap, prefix + "fo.", rounds=args.failover_rounds)
            _line("source_failover_median", failover.median, "s", _load_note())
            _line("source_failover_max", max(failover.seconds), "s", _load_note())
            _line("source_failover_session_timeout", failover.session_timeout_s, "s")
    finally:
        if started_here:
            stop_broker(home)
    return 0


def _throughput(bootstrap: str, prefix: str, args: argparse.Namespace) -> None:
    """The passthrough ceiling and each stage, on the same raw events."""
    raw_topic = produce_raw(bootstrap, prefix, args.events)
    # The passthrough runs before, between and after the stages and its median is the ceiling: on a small
    # shared machine one run can be off by a fifth either way.
    ceilings: list[Throughput] = []
    stages: dict[str, Throughput] = {}
    for stage in ("normaliser", "router"):
        ceilings.append(passthrough(bootstrap, raw_topic, prefix, _progress("passthrough", len(ceilings))))
        stages[stage] = run_stage(stage, bootstrap, prefix, workers=_progress(stage, 0))
        if stage == "normaliser":  # the router keeps the grants behind each task, so it runs in its loop only
            parallel = f"{stage}_workers{args.workers}"
            stages[parallel] = run_stage(stage, bootstrap, prefix, workers=_progress(parallel, args.workers))
    ceilings.append(passthrough(bootstrap, raw_topic, prefix, _progress("passthrough", len(ceilings))))
    rates = [run.rate for run in ceilings]
    ceiling = statistics.median(rates)
    for number, passed in enumerate(ceilings):
        _line(f"passthrough_run{number}", passed.rate, "events/s", _note(passed))
    _line("passthrough_throughput", ceiling, "events/s", "median of the runs above")
    _line("passthrough_spread", 100 * (max(rates) - min(rates)) / ceiling, "percent")
    for name, measured in stages.items():
        _line(f"{name}_throughput", measured.rate, "events/s", _note(measured))
        _line(f"{name}_vs_passthrough", measured.rate / ceiling, "x", "target >= 0.70 in the loop's own thread")
    # The router writes more than it reads (a task per utility served, and the grants): kafka-python's own work for
    # as many records, with nothing decoded or encoded, bounds what the router can reach against the ceiling.
    events = count_records(bootstrap, f"{prefix}events")
    written = count_records(bootstrap, f"{prefix}tasks") + count_records(bootstrap, f"{prefix}grants")
    fanout = written / events
    floor = passthrough(
        bootstrap, raw_topic, prefix, _progress("passthrough, router's fan-out", len(ceilings)), copies=fanout
    )
    _line("router_records_written_per_event", fanout, "records/event", f"{written} tasks and grants of {events} events")
    _line("passthrough_router_fanout_throughput", floor.rate, "events/s", _note(floor))
    _line(
        "passthrough_router_fanout_vs_passthrough",
        floor.rate / ceiling,
        "x",
        "kafka-python alone, the router's ceiling",
    )
    _line("router_vs_its_fanout_passthrough", stages["router"].rate / floor.rate, "x")
    # a sink reads only its utility's topic: one record per task; on the one task topic of earlier releases it
    # read (and decoded) every utility's tasks to keep its own
    shares = tasks_per_utility(bootstrap, f"{prefix}tasks")
    shared = sum(shares.values()) / max(shares.get(SINK_UTILITY, 0), 1)
    note = f"{sum(shares.values())} tasks of {len(shares)} utilities, {shares.get(SINK_UTILITY, 0)} for {SINK_UTILITY}"
    _line("sink_records_read_per_task_shared_topic", shared, "records/task", note)


def _sink(bootstrap: str, prefix: str, args: argparse.Namespace) -> None:
    """The ubridge sink and the anchor, on the same tasks and the same receiver, the anchor first and last."""
    produce_tasks(bootstrap, prefix, args.tasks, utility=SINK_UTILITY)
    receiver = Receiver()
    try:
        endpoint = f"{receiver.url}/v1/tasks"
        before = anchor_sink_run(bootstrap, prefix, endpoint, run=_progress("anchor sink", 0))
        kafka_python = anchor_sink_run(
            bootstrap, prefix, endpoint, run=_progress("anchor sink on kafka-python", 0), kafka_python=True
        )
        sink = run_stage("sink", bootstrap, prefix, workers=_progress("sink", 0), endpoint=endpoint)
        after = anchor_sink_run(bootstrap, prefix, endpoint, run=_progress("anchor sink", 1))
    finally:
        receiver.stop()
    anchor = (before.rate + after.rate) / 2
    _line("anchor_sink_run0", before.rate, "tasks/s", _note(before))
    _line("anchor_sink_run1", after.rate, "tasks/s", _note(after))
    _line("anchor_sink_kafka_python", kafka_python.rate, "tasks/s", _note(kafka_python))
    _line("sink_throughput", sink.rate, "tasks/s", _note(sink) + f", max_in_flight {IN_FLIGHT} as the anchors")
    _line("sink_vs_anchor", sink.rate / anchor, "x", "target >= 1.0; anchor: mean of the two runs")
    _line("anchor_kafka_python_vs_anchor", kafka_python.rate / anchor, "x", "the same anchor on ubridge's Kafka client")
    _line("sink_vs_anchor_kafka_python", sink.rate / kafka_python.rate, "x")
    delivered = count_records(bootstrap, f"{prefix}status")  # the sink's RECEIVED, one per task it delivered
    own = f"{sink.records} records read from its own topic, {delivered} tasks delivered"
    _line("sink_records_read_per_task", sink.records / max(delivered, 1), "records/task", own)


def _latency(bootstrap: str, prefix: str, args: argparse.Namespace) -> None:
    """End-to-end latency at each offered rate, with every hop."""
    for rate in args.rates:
        print(f"# latency: {rate:g} events/s for {args.latency_seconds:g} s", file=sys.stderr, flush=True)
        run = end_to_end(
            bootstrap, f"{prefix}e2e{rate:g}.", rate_per_s=rate, seconds=args.latency_seconds, processes=args.processes
        )
        note = f"offered {run.offered_per_s:g}/s, achieved {run.achieved_per_s:.1f}/s, load {run.load:.2f}"
        if args.processes is not None:
            note += f", processes {args.processes}"
        tag = f"{rate:g}eps"
        _line(f"e2e_tasks_{tag}", run.tasks, "tasks", note)
        _line(f"e2e_p50_{tag}", run.total.p50_ms, "ms", note)
        _line(f"e2e_p99_{tag}", run.total.p99_ms, "ms", note)
        for hop in HOPS:
            _line(f"e2e_{hop}_p50_{tag}", run.hops[hop].p50_ms, "ms", note)
            _line(f"e2e_{hop}_p99_{tag}", run.hops[hop].p99_ms, "ms", note)


def _progress(run: str, value: int) -> int:
    """Say on standard error which run starts; returns ``value`` so that it reads inline."""
    print(f"# {run}: running", file=sys.stderr, flush=True)
    return value


def _note(run: Throughput) -> str:
    return f"{run.records} records in {run.seconds:.2f} s, load {run.load:.2f}"


def _load_note() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _line(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"bench {name} {value:.2f} {unit}" + (f"  # {note}" if note else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
