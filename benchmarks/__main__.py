"""``make bench``: every figure against the real local broker, one line each: ``bench <name> <value> <unit>``.

1. passthrough: bare kafka-python consume → produce → commit of the raw events (the ceiling: the median of
   three runs, with their spread);
2. each ubridge stage on the same data in the same run: normaliser, router, one utility sink (and the records it
   reads per task delivered: from its own task topic, and from a single topic of every utility's tasks); the
   normaliser once in the loop's own thread and once with ``--workers`` worker processes (the router keeps
   state, so it runs in its loop only);
3. the 工改 query-account reader: SPGL rows from SQLite into the raw topic, and (group ``backfill``) the backfill
   of a PostgreSQL exchange database of ``--spgl-backfill-rows`` rows in both dialects (rows/s and the reader's
   peak RSS at that size and a quarter of it, see benchmarks/spgl_backfill.py);
4. end-to-end latency at a fixed offered rate through every stage, simulators included;
5. memory: the resident set of a separate ``ubridge run`` process after 10,000 and 50,000 events of
   sustained demo traffic (:mod:`benchmarks.memory`);
6. the ledger's restore time from its changelog at 10,000 and 100,000 tasks (:mod:`benchmarks.ledger_restore`);
7. source failover: seconds from SIGKILL of the source's owner to the standby running it
   (:mod:`benchmarks.failover`).

``--only`` runs some of these groups: ``throughput`` (1-3), ``backfill``, ``latency``, ``memory``, ``restore``,
``failover``.

Throughput is timed, from the stage's own records-in counter, from its first batch to its last, so
consumer-group joins and worker start-up do not count.
"""

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.failover import failover_seconds
from benchmarks.harness import (
    end_to_end,
    passthrough,
    produce_raw,
    run_stage,
    task_counts,
)
from benchmarks.ledger_restore import restore_seconds
from benchmarks.memory import memory_under_load
from benchmarks.spgl import spgl_throughput
from benchmarks.spgl_backfill import print_figures, spgl_backfill
from connectors.broker.local_kafka import start_broker, stop_broker
from connectors.runtime.logs import configure_logging

GROUPS = ("throughput", "backfill", "latency", "memory", "restore", "failover")


def main() -> int:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="raw events per throughput run")
    parser.add_argument("--spgl-rows", type=int, default=50000, help="SPGL rows for the query-account reader")
    parser.add_argument(
        "--spgl-backfill-rows", type=int, default=1_000_000, help="rows of the PostgreSQL backfill (0: skip it)"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="offered rate of the latency run, events/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency run")
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
            _line("rss_10k_events", memory.rss_mib[10_000], "MiB")
            _line("rss_50k_events", memory.rss_mib[50_000], "MiB")
            growth = 100 * (memory.rss_mib[50_000] - memory.rss_mib[10_000]) / memory.rss_mib[10_000]
            _line("rss_growth_10k_to_50k", growth, "percent")
            _line("rss_peak", memory.peak_mib, "MiB")
            _line("memory_run_rate", memory.events_per_s, "events/s")
        if "restore" in args.only:
            for tasks in (10_000, 100_000):
                print(f"# restore: ledger of {tasks} tasks", file=sys.stderr, flush=True)
                _line(f"ledger_restore_{tasks // 1000}k_tasks", restore_seconds(bootstrap, prefix, tasks), "s")
        if "failover" in args.only:
            print("# failover: SIGKILL of the source's owner", file=sys.stderr, flush=True)
            failover = failover_seconds(bootstrap, prefix + "fo.", rounds=args.failover_rounds)
            _line("source_failover_median", failover.median, "s")
            _line("source_failover_max", max(failover.seconds), "s")
            _line("source_failover_session_timeout", failover.session_timeout_s, "s")
    finally:
        if started_here:
            stop_broker(home)
    return 0


def _throughput(bootstrap: str, prefix: str, args: argparse.Namespace) -> None:
    """Groups 1-3: the passthrough ceiling, each stage, the SPGL reader."""
    raw_topic = produce_raw(bootstrap, prefix, args.events)
    # The passthrough runs before, between and after the stages and its median is the ceiling: on a small
    # shared machine one run can be off by a fifth either way.
    ceilings: list[float] = []
    stages: dict[str, float] = {}
    for stage in ("normaliser", "router"):
        ceilings.append(passthrough(bootstrap, raw_topic, prefix, _progress("passthrough", len(ceilings))).rate)
        stages[stage] = run_stage(stage, bootstrap, prefix, workers=_progress(stage, 0)).rate
        if stage == "normaliser":  # the router keeps the grants behind each task, so it runs in its loop only
            parallel = f"{stage}_workers{args.workers}"
            stages[parallel] = run_stage(stage, bootstrap, prefix, workers=_progress(parallel, args.workers)).rate
    ceilings.append(passthrough(bootstrap, raw_topic, prefix, _progress("passthrough", len(ceilings))).rate)
    ceiling = statistics.median(ceilings)
    _line("passthrough_throughput", ceiling, "events/s")
    _line("passthrough_spread", 100 * (max(ceilings) - min(ceilings)) / ceiling, "percent")
    for name, rate in stages.items():
        _line(f"{name}_throughput", rate, "events/s")
        _line(f"{name}_vs_passthrough", 100 * rate / ceiling, "percent")
    sink = run_stage("sink", bootstrap, prefix)
    _line("sink_throughput", sink.rate, "tasks/s")
    # what the sink decodes per task (or revision) it delivers, from its own topic, and what it decoded from the
    # one shared task topic of earlier releases (every utility's tasks; repeats filtered in both)
    counts = task_counts(bootstrap, prefix)
    _line("sink_records_read_per_task", sink.records_read / max(sink.delivered, 1), "records/task")
    _line("sink_records_read_per_task_shared_topic", sum(counts.values()) / max(sink.delivered, 1), "records/task")
    _line("spgl_reader_throughput", spgl_throughput(bootstrap, prefix + "spgl.", args.spgl_rows), "rows/s")


def _latency(bootstrap: str, prefix: str, args: argparse.Namespace) -> None:
    """Group 4: end-to-end latency at a fixed offered rate."""
    latency = end_to_end(bootstrap, prefix + "e2e.", rate_per_s=args.rate, seconds=args.latency_seconds)
    _line("e2e_offered_rate", args.rate, "events/s")
    _line("e2e_tasks", latency.count, "tasks")
    _line("e2e_latency_p50", latency.p50_ms, "ms")
    _line("e2e_latency_p99", latency.p99_ms, "ms")


def _progress(run: str, value: int) -> int:
    """Say on standard error which run starts; returns ``value`` so that it reads inline."""
    print(f"# {run}: running", file=sys.stderr, flush=True)
    return value


def _line(name: str, value: float, unit: str) -> None:
    print(f"bench {name} {value:.1f} {unit}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
