"""How long a source waits between polls when it has nothing to do (pure arithmetic).

A source that has just seen work is likely to see more soon (upstream systems write in bursts), so it
looks again quickly; each empty poll in a row doubles the wait until it settles at the configured
interval, which bounds the load an idle installation puts on a system it does not own.
"""

QUICK_POLL_S = 0.05  # the first wait after work: well under the 100 ms a new row may take to show up


def idle_wait_s(empty_polls: int, *, interval_s: float, quick_s: float = QUICK_POLL_S) -> float:
    """The wait after the ``empty_polls``-th empty poll in a row (1 is the first): doubling up to ``interval_s``.

    Example:
        >>> [idle_wait_s(n, interval_s=0.3) for n in (1, 2, 3, 4)]
        [0.05, 0.1, 0.2, 0.3]
    """
    if empty_polls < 1:
        return 0.0
    return min(interval_s, quick_s * float(2 ** min(empty_polls - 1, 32)))
