"""``ubridge demo``: wiring of the command line to :mod:`connectors.demo.runner`."""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console

from connectors.broker.local_kafka import BrokerError, start_broker, stop_broker
from connectors.demo.runner import Demo, DemoOptions, print_summary
from connectors.runtime.logs import configure_logging

DEFAULT_WORKDIR = Path.home() / ".cache" / "ubridge" / "demo"


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``demo`` command."""
    demo = subparsers.add_parser("demo", help="run everything locally with simulated outside parties")
    demo.add_argument("--events", type=int, default=1000, help="upstream events to replay (default 1000)")
    demo.add_argument("--rate", type=float, default=200.0, help="events published per second (default 200)")
    demo.add_argument("--exit", action="store_true", help="stop after the summary; exit 0 only if exactly once")
    demo.add_argument("--metrics-port", type=int, default=9464, help="port of /metrics (0 = any free port)")
    demo.add_argument("--timeout-s", type=float, default=300.0, help="longest wait for deliveries")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated traffic")
    demo.add_argument(
        "--source",
        choices=["spgl", "interface"],
        default="spgl",
        help="工改 access: query account on the SPGL tables (default) or the data interface (HTTP pull)",
    )
    demo.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="logs, config and the broker's data")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit code says whether every task arrived exactly once."""
    # Tables need room; a pipe or a CI log would otherwise get rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log_path = args.workdir / "demo.log"
    with log_path.open("a", encoding="utf-8") as log_file:
        configure_logging(json=True, level="info", stream=log_file)
        console.print(f"logs (JSON lines): {log_path}")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        broker_home = args.workdir / "broker"
        if bootstrap is None:
            try:
                bootstrap = start_broker(broker_home, progress=console.print).bootstrap
            except BrokerError as exc:
                console.print(f"[red]ubridge: {exc}[/]")
                return 2
        console.print(f"kafka:         {bootstrap}")
        options = DemoOptions(
            events=args.events,
            rate_per_s=args.rate,
            bootstrap=bootstrap,
            workdir=args.workdir,
            metrics_port=args.metrics_port,
            timeout_s=args.timeout_s,
            seed=args.seed,
            source=args.source,
        )
        demo = Demo(options, console)
        try:
            demo.start()
            expectation = demo.replay()
            result = demo.result(expectation)
            print_summary(console, result)
            if not args.exit:
                _serve_until_interrupted(console)
        finally:
            demo.stop()
            if args.exit and "KAFKA_BOOTSTRAP" not in os.environ:
                stop_broker(broker_home)
    return 0 if result.ok else 1


def _serve_until_interrupted(console: Console) -> None:
    console.print("serving /metrics and the supervision view; press Ctrl-C to stop")
    interrupted = threading.Event()

    def on_signal(_: int, __: FrameType | None) -> None:
        interrupted.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    interrupted.wait()
