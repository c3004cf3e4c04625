"""Which stages share a process when ``ubridge run`` spreads them over child processes (pure arithmetic).

Each child is its own interpreter with its own GIL, so the Kafka clients' I/O threads of one group of
stages do not contend with another group's. Stages are weighed (a transform that decodes and re-encodes
every record weighs more than a sink or an intake) and placed heaviest first into the lightest process,
which keeps the busiest stages apart; ``groups`` in the configuration pins stages together.

Example:
    >>> plan_groups([("normaliser", 3.0), ("router", 3.0), ("sink-a", 1.0), ("sink-b", 1.0)], count=2)
    [['normaliser', 'sink-a'], ['router', 'sink-b']]
"""

from collections.abc import Sequence


class LayoutError(ValueError):
    """The configured groups name a stage that does not run, or one stage twice."""


def process_count(configured: int | str, *, stages: int, cores: int) -> int:
    """How many processes: ``auto`` is one per core; never more than there are stages, never fewer than one."""
    wanted = cores if configured == "auto" else int(configured)
    return max(1, min(wanted, stages))


def plan_groups(
    stages: Sequence[tuple[str, float]], *, count: int, pinned: Sequence[Sequence[str]] = ()
) -> list[list[str]]:
    """The stages of each process, each group in the stages' own (flow) order; empty groups are dropped.

    Args:
        stages: Every stage to run, in flow order, with its weight.
        count: How many processes to spread them over (the pinned groups count among them).
        pinned: Groups the configuration fixes; the other stages fill the remaining processes.

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
    bins: list[list[str]] = [[] for _ in range(max(0, count - len(pinned)) or (1 if free else 0))]
    loads = [0.0] * len(bins)
    for name, weight in sorted(free, key=lambda stage: (-stage[1], order[stage[0]])):
        lightest = loads.index(min(loads))
        bins[lightest].append(name)
        loads[lightest] += weight
    groups = [list(group) for group in pinned] + bins
    return [sorted(group, key=order.__getitem__) for group in groups if group]
