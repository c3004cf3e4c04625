"""W3C Trace Context (``traceparent``) on Kafka headers and HTTP requests, so one id finds a task's whole path.

A record gets a ``traceparent`` where it enters ubridge: a source's poll starts a trace per record; a push
intake continues the caller's trace when its request carries one. Every stage writes its outputs as
children of the record it consumed (same trace id, a new parent id), the sink sends the utility the same
header with the task, and the utility's status callback may send it back. Log lines about a record carry its
``trace_id``.

Format (https://www.w3.org/TR/trace-context/): ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``;
all-zero ids are invalid. Only version 00 is written; later versions are read by their first four fields,
as the specification asks.
"""

import random
import re
from collections.abc import Iterable
from typing import Final

from connectors.runtime.interface import Headers

TRACEPARENT: Final = "traceparent"
_FORMAT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE: Final = "0" * 32
_ZERO_PARENT: Final = "0" * 16
_SAMPLED: Final = "01"


def parse(value: str | bytes | None) -> tuple[str, str, str] | None:
    """``(trace id, parent id, flags)`` of a valid ``traceparent``, else None (absent, malformed, all zeros)."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    match = _FORMAT.fullmatch(text.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_PARENT:
        return None
    return trace_id, parent_id, flags


def new_trace() -> str:
    """A ``traceparent`` that starts a new trace."""
    return f"00-{_random_id(128)}-{_random_id(64)}-{_SAMPLED}"


def child(parent: str | bytes | None) -> str:
    """A ``traceparent`` for work done on behalf of ``parent``: its trace, a new parent id (a new trace if none)."""
    parsed = parse(parent)
    if parsed is None:
        return new_trace()
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{_random_id(64)}-{flags}"


def _random_id(bits: int) -> str:
    """A non-zero random id as lower-case hex.

    Ids must be unique, not unpredictable (the specification asks for randomness, not secrecy), and one is drawn
    per record a stage writes. ``os.urandom`` gives up the interpreter lock for its system call, and in a stage
    whose Kafka clients' I/O threads want the lock, getting it back cost ~17 µs per record (a fifth of the
    normaliser's time under cProfile); ``random`` keeps the lock. It is reseeded in a forked child, so worker
    processes do not repeat each other's ids.
    """
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def trace_id(traceparent: str | bytes | None) -> str | None:
    """The trace id of a ``traceparent``, for log lines."""
    parsed = parse(traceparent)
    return None if parsed is None else parsed[0]


def of_headers(headers: Iterable[tuple[str, bytes]] | None) -> bytes | None:
    """The ``traceparent`` among Kafka headers, if any."""
    for name, value in headers or ():
        if name == TRACEPARENT:
            return value
    return None


def traced(headers: Headers, traceparent: str) -> Headers:
    """``headers`` with ``traceparent`` set, replacing one already there."""
    return (*(h for h in headers if h[0] != TRACEPARENT), (TRACEPARENT, traceparent.encode("ascii")))
