"""Run a utility's simulated business system until Ctrl-C: ``python -m simulators.utility --utility-id X``."""

from __future__ import annotations

import argparse
import signal
import threading

from simulators.utility.server import UtilitySimulator


def main(argv: list[str] | None = None) -> None:
    """Serve the utility's task endpoint and print the base URL."""
    parser = argparse.ArgumentParser(prog="python -m simulators.utility", description=__doc__)
    parser.add_argument("--utility-id", required=True, help="e.g. yantai-water")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--token", required=True, help="bearer token clients must send")
    parser.add_argument("--seed", type=int, default=11, help="seed of the fault and progress draws")
    parser.add_argument("--hours-per-second", type=float, help="progress stored tasks at this speed (off if absent)")
    parser.add_argument("--callback-url", help="ubridge's status-callback base URL (with --hours-per-second)")
    parser.add_argument("--callback-token", help="bearer token for the status callbacks")
    args = parser.parse_args(argv)
    simulator = UtilitySimulator(args.utility_id, token=args.token, host=args.host, port=args.port, seed=args.seed)
    if args.hours_per_second is not None:
        simulator.set_progress(
            callback_url=args.callback_url, callback_token=args.callback_token, hours_per_second=args.hours_per_second
        )
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
