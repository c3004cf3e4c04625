"""Run the approval-system simulator until Ctrl-C: ``python -m simulators.approval --port 8080``."""

from __future__ import annotations

import argparse
import signal
import threading

from simulators.approval.server import ApprovalSimulator


def main(argv: list[str] | None = None) -> None:
    """Generate the requested events, serve them and print the base URL."""
    parser = argparse.ArgumentParser(prog="python -m simulators.approval", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--token", default="approval-token", help="bearer token clients must send")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=100, help="events to generate before serving")
    parser.add_argument("--invalid-rate", type=float, default=0.0, help="fraction of defective events")
    parser.add_argument("--unserved-rate", type=float, default=0.0, help="fraction of projects in Qingdao")
    args = parser.parse_args(argv)
    simulator = ApprovalSimulator(token=args.token, seed=args.seed, host=args.host, port=args.port)
    simulator.generate(args.events, invalid_rate=args.invalid_rate, unserved_rate=args.unserved_rate)
    # Stop cleanly on SIGTERM (containers) and on Ctrl-C even when started with SIGINT ignored (`cmd &`).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    print(simulator.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
