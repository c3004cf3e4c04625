"""Which stages share a process when ``ubridge run`` spreads them over child processes (pure arithmetic).

Each child is its own interpreter with its own GIL, so the Kafka clients' I/O threads of one group of
stages do not contend with another group's. Stages are weighed (a transform that decodes and re-encodes
every record weighs more than a sink or an intake) and placed heaviest first into the lightest process,
which keeps the busiest stages apart; ``groups`` in the configuration pins stages together. The stages off
the path from the upstream systems to the utilities (ledger, views, notices, permits, surveys) get a process
of their own, which runs at a lower CPU priority: on a saturated machine they wait, not the deliveries.

The sources that poll an upstream system (the exchange database, the HTTP feeds) get one more process of their
own. They mostly wait on that system, and in a process shared with a busy transform each database round trip
(sqlite3 and the database drivers give the interpreter lock up for every statement and every row) waited for
the lock: a poll of 14 ms of CPU took 300-900 ms at 100 events/s; in a process of its own a committed row
reaches the raw topic in 60-70 ms (p50).

Example:
    >>> plan_groups([("normaliser", 3.0), ("router", 3.0), ("sink-a", 1.0), ("sink-b", 1.0)], count=2)
    [['normaliser', 'sink-a'], ['router', 'sink-b']]
"""

from collections.abc import Collection, Sequence


class LayoutError(ValueError):
    """The configured groups name a stage that does not run, or one stage twice."""


def process_count(
    configured: int | str, *, stages: int, cores: int, background: bool = False, readers: bool = False
) -> int:
    """How many processes: never more than there are stages, never fewer than one.

    ``auto`` on two cores or more spreads the delivery path over one process more than there are cores, and adds
    one for the ``background`` stages and one for the polling sources (``readers``) when some run; on one core it
    is one process. The delivery path's stages are GIL-bound: a thread waiting for a lock that another holds
    waits up to the 20 ms switch interval, so three lightly loaded interpreters on two cores answer sooner than
    two busy ones (the README has the measurements).
    """
    if configured != "auto":
        wanted = int(configured)
    elif cores == 1:
        wanted = 1
    else:
        wanted = cores + 1 + int(background) + int(readers)
    return max(1, min(wanted, stages))


def plan_groups(
    stages: Sequence[tuple[str, float]],
    *,
    count: int,
    pinned: Sequence[Sequence[str]] = (),
    background: Collection[str] = frozenset(),
    readers: Collection[str] = frozenset(),
) -> list[list[str]]:
    """The stages of each process, each group in the stages' own (flow) order; empty groups are dropped.

    Args:
        stages: Every stage to run, in flow order, with its weight.
        count: How many processes to spread them over (the pinned groups count among them).
        pinned: Groups the configuration fixes; the other stages fill the remaining processes.
        background: Stages off the path from the upstream systems to the utilities. When two processes or more
            are left and both kinds run, these share one process of their own (which :func:`is_background`
            recognises, to run it at a lower CPU priority) and the others spread over the rest.
        readers: Sources that poll an upstream system. When a process is left for them after the background
            one and another for the delivery path, they share it; otherwise they join the delivery path.

    Raises:
        LayoutError: A pinned stage is not among ``stages`` or is pinned twice.
    """
    order = {name: index for index, (name, _) in enumerate(stages)}
    named = [name for group in pinned for name in group]
    unknown = sorted(set(named) - set(order))
    if unknown:
        message = f"processes.groups: no stage {', '.join(unknown)} runs here; running: {', '.join(order)}"
        raise LayoutError(message)
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        message = f"processes.groups: stage {', '.join(twice)} is in more than one group"
        raise LayoutError(message)
    free = [(name, weight) for name, weight in stages if name not in set(named)]
    slots = max(0, count - len(pinned)) or (1 if free else 0)
    behind = [(name, weight) for name, weight in free if name in background]
    polling = [(name, weight) for name, weight in free if name in readers and name not in background]
    ahead = [(name, weight) for name, weight in free if name not in background and name not in readers]
    own: list[list[str]] = []
    if behind and (ahead or polling) and slots > 1:
        own.append([name for name, _ in behind])
        slots -= 1
    else:
        ahead += behind
    if polling and ahead and slots > 1:
        own.append([name for name, _ in polling])
        slots -= 1
    else:
        ahead += polling
    groups = [list(group) for group in pinned] + _packed(ahead, slots, order) + own
    return [sorted(group, key=order.__getitem__) for group in groups if group]


def is_background(group: Collection[str], background: Collection[str]) -> bool:
    """Whether every stage of ``group`` is a background stage (its process may yield the CPU to the others)."""
    return bool(group) and all(name in background for name in group)


def _packed(stages: Sequence[tuple[str, float]], count: int, order: dict[str, int]) -> list[list[str]]:
    """``stages`` in ``count`` bins, heaviest first into the lightest bin."""
    bins: list[list[str]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for name, weight in sorted(stages, key=lambda stage: (-stage[1], order[stage[0]])):
        lightest = loads.index(min(loads))
        bins[lightest].append(name)
        loads[lightest] += weight
    return bins
