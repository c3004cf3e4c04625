"""Run a whole neighbourhood of outside parties in one process, apart from ubridge's own.

``python -m simulators --approval-seed 7 --utility yantai-water=TOKEN --utility jinan-heat=TOKEN`` starts one
approval system and one business system per ``--utility``, each on a free port, prints one JSON line
``{"approval": URL, "utilities": {"yantai-water": URL, ...}}`` and serves until SIGTERM or Ctrl-C. The demo
and the benchmarks drive them through their ``/_sim/*`` control endpoints, so the simulators never share a
Python interpreter (and its lock) with the process being measured.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from sqlalchemy import create_engine

from simulators.approval import ApprovalSimulator
from simulators.approval.exchange_db import ExchangeWriter, create_exchange_tables
from simulators.utility import UtilitySimulator


def main(argv: list[str] | None = None) -> None:
    """Start the simulators, announce their URLs, serve until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("--approval-token", default="approval-token")
    parser.add_argument("--approval-seed", type=int, default=7)
    parser.add_argument("--utility", action="append", default=[], metavar="ID=TOKEN", help="repeatable")
    parser.add_argument("--exchange-db", metavar="URL", help="also write every event as SPGL rows to this database")
    parser.add_argument("--withdraw-rate", type=float, default=0.0, help="share of handling details withdrawn later")
    parser.add_argument(
        "--out-of-order-rate", type=float, default=0.0, help="share of details committed before parents"
    )
    args = parser.parse_args(argv)
    on_generated = None
    if args.exchange_db:
        engine = create_engine(args.exchange_db)
        create_exchange_tables(engine)
        writer = ExchangeWriter(
            engine, args.approval_seed, withdraw_rate=args.withdraw_rate, out_of_order_rate=args.out_of_order_rate
        )

        def on_generated(events: list[dict[str, Any]]) -> None:
            writer.write(events)
            writer.flush()  # late parents land after their details (higher lsh), but before the next batch

    approval = ApprovalSimulator(token=args.approval_token, seed=args.approval_seed, on_generated=on_generated)
    utilities = [UtilitySimulator(spec.split("=", 1)[0], token=spec.split("=", 1)[1]) for spec in args.utility]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    urls = {"approval": approval.start(), "utilities": {sim.utility_id: sim.start() for sim in utilities}}
    print(json.dumps(urls), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for sim in utilities:
            sim.stop()
        approval.stop()


if __name__ == "__main__":
    main()
