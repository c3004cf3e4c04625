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

from simulators.approval import ApprovalSimulator
from simulators.utility import UtilitySimulator


def main(argv: list[str] | None = None) -> None:
    """Start the simulators, announce their URLs, serve until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("--approval-token", default="approval-token")
    parser.add_argument("--approval-seed", type=int, default=7)
    parser.add_argument("--utility", action="append", default=[], metavar="ID=TOKEN", help="repeatable")
    args = parser.parse_args(argv)
    approval = ApprovalSimulator(token=args.approval_token, seed=args.approval_seed)
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
