"""Ports for the demo's listeners, chosen now and bound later by ``ubridge run`` (or the demo's own stages).

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` lies in its ephemeral range, the one it also gives
to outgoing connections: between the choice and the bind, one of the Kafka or HTTP clients' connections could
take it, and the listener failed with "Address already in use" (about once in ten runs of the latency
benchmark). A closed probe's port may also be offered again, to a second listener of the same configuration.
So the demo picks below the ephemeral range, checks the port is free, and never hands one out twice.
"""

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default, when the range cannot be read
_LOWEST = 10000  # below: the well-known and commonly configured service ports
_PICKER = random.SystemRandom()
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range, and not handed out before by this process."""
    high = _ephemeral_low() - 1
    while True:
        port = _PICKER.randint(_LOWEST, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # another service listens there
        _HANDED_OUT.add(port)
        return port


def _ephemeral_low() -> int:
    try:
        low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW
    return low if low > _LOWEST + 1000 else _DEFAULT_EPHEMERAL_LOW
