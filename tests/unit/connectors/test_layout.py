"""How ``ubridge run`` spreads its stages over processes (issue 17 item 3): counts, weights, pinned groups."""

import pytest

from connectors.runtime.layout import LayoutError, is_background, plan_groups, process_count

FLOW = [
    ("gonggai-interface", 1.0),
    ("normaliser-gonggai", 3.0),
    ("router", 3.0),
    ("sink-a", 1.0),
    ("sink-b", 1.0),
    ("ledger", 3.0),
]


@pytest.mark.parametrize(
    ("configured", "stages", "cores", "kinds", "expected"),
    [
        ("auto", 6, 2, set(), 3),
        ("auto", 20, 2, {"background"}, 4),
        ("auto", 20, 2, {"readers"}, 4),
        ("auto", 20, 2, {"background", "readers"}, 5),
        ("auto", 20, 16, {"background", "readers"}, 19),
        ("auto", 6, 16, set(), 6),
        ("auto", 1, 8, set(), 1),
        ("auto", 20, 1, {"background", "readers"}, 1),
        (4, 6, 2, {"background", "readers"}, 4),
        (1, 6, 8, set(), 1),
        (8, 3, 2, set(), 3),
    ],
)
def test_auto_spreads_the_path_over_one_process_more_than_the_cores_and_never_more_than_stages(
    configured: int | str, stages: int, cores: int, kinds: set[str], expected: int
) -> None:
    """``auto``: cores + 1 for the path, one more each for background and sources; one core, one process.

    A set count is kept; any count is capped by the stages to run (an empty process helps nobody).
    """
    count = process_count(
        configured, stages=stages, cores=cores, background="background" in kinds, readers="readers" in kinds
    )
    assert count == expected


def test_the_heavy_transforms_go_to_different_processes() -> None:
    """Two processes: the heaviest first, each into the lighter process, so the loads come out even."""
    groups = plan_groups(FLOW, count=2)
    weight = dict(FLOW)
    loads = [sum(weight[name] for name in group) for group in groups]
    assert (groups, loads) == (
        [["normaliser-gonggai", "ledger"], ["gonggai-interface", "router", "sink-a", "sink-b"]],
        [6.0, 6.0],
    )


def test_every_stage_runs_exactly_once_in_flow_order_within_its_group() -> None:
    """However many processes, the groups partition the stages and keep the flow order inside each."""
    order = [name for name, _ in FLOW]
    for count in range(1, 8):
        groups = plan_groups(FLOW, count=count)
        flat = [name for group in groups for name in group]
        assert (sorted(flat), all(g == sorted(g, key=order.index) for g in groups)) == (sorted(order), True)
        assert len(groups) == min(count, len(FLOW))


def test_one_process_holds_everything() -> None:
    """A count of 1 is today's layout: one group of every stage in flow order."""
    assert plan_groups(FLOW, count=1) == [[name for name, _ in FLOW]]


def test_pinned_stages_share_a_process_and_the_rest_fill_the_others() -> None:
    """Pinning the two sinks together leaves the other stages to the remaining process."""
    groups = plan_groups(FLOW, count=2, pinned=[["sink-b", "sink-a"]])
    assert groups == [["sink-a", "sink-b"], ["gonggai-interface", "normaliser-gonggai", "router", "ledger"]]


def test_pinning_every_stage_leaves_no_empty_process() -> None:
    """Groups that name every stage are the layout, whatever the count."""
    pinned = [["gonggai-interface", "normaliser-gonggai", "router"], ["sink-a", "sink-b", "ledger"]]
    assert plan_groups(FLOW, count=4, pinned=pinned) == pinned


def test_a_pinned_stage_that_does_not_run_is_named_in_the_error() -> None:
    """A typo in ``processes.groups`` is refused with the key, the name and the stages that run."""
    with pytest.raises(LayoutError, match=r"processes.groups: no stage sink-c runs here; running: gonggai-interface"):
        plan_groups(FLOW, count=2, pinned=[["sink-c"]])


def test_a_stage_pinned_twice_is_refused() -> None:
    """One stage in two groups would run twice in one installation's layout."""
    with pytest.raises(LayoutError, match="stage router is in more than one group"):
        plan_groups(FLOW, count=3, pinned=[["router"], ["router", "ledger"]])


def test_background_stages_get_a_process_of_their_own_and_the_others_spread_over_the_rest() -> None:
    """Three processes: the ledger alone in one (run at a lower priority), the delivery path over two."""
    groups = plan_groups(FLOW, count=3, background={"ledger"})
    assert (groups, [is_background(g, {"ledger"}) for g in groups]) == (
        [["gonggai-interface", "normaliser-gonggai", "sink-b"], ["router", "sink-a"], ["ledger"]],
        [False, False, True],
    )


@pytest.mark.parametrize(
    ("count", "background", "expected"),
    [
        (1, {"ledger"}, [[name for name, _ in FLOW]]),
        (
            2,
            {"gonggai-interface", "normaliser-gonggai", "router", "sink-a", "sink-b", "ledger"},
            [["normaliser-gonggai", "ledger"], ["gonggai-interface", "router", "sink-a", "sink-b"]],
        ),
    ],
)
def test_background_stages_share_processes_when_there_is_no_room_or_no_other_kind(
    count: int, background: set[str], expected: list[list[str]]
) -> None:
    """One process holds everything; with only background stages they spread by weight as before."""
    assert plan_groups(FLOW, count=count, background=background) == expected


def test_a_group_is_background_only_when_every_stage_of_it_is() -> None:
    """A process mixing a delivery stage with background ones keeps its priority; an empty one is not background."""
    assert [is_background(g, {"ledger"}) for g in (["ledger"], ["ledger", "router"], [])] == [True, False, False]


def test_polling_sources_get_a_process_of_their_own_beside_the_delivery_path_and_the_background() -> None:
    """Three processes: the source alone, the delivery path in one, the ledger in the low-priority one."""
    groups = plan_groups(FLOW, count=3, background={"ledger"}, readers={"gonggai-interface"})
    assert groups == [["normaliser-gonggai", "router", "sink-a", "sink-b"], ["ledger"], ["gonggai-interface"]]


@pytest.mark.parametrize(
    ("count", "background", "expected"),
    [
        (1, {"ledger"}, [[name for name, _ in FLOW]]),
        (2, {"ledger"}, [["gonggai-interface", "normaliser-gonggai", "router", "sink-a", "sink-b"], ["ledger"]]),
        (2, set(), [["normaliser-gonggai", "router", "sink-a", "sink-b", "ledger"], ["gonggai-interface"]]),
    ],
)
def test_polling_sources_join_the_delivery_path_when_no_process_is_left_for_them(
    count: int, background: set[str], expected: list[list[str]]
) -> None:
    """The background process is carved out first; a source never goes to it, nor leaves the path without room."""
    assert plan_groups(FLOW, count=count, background=background, readers={"gonggai-interface"}) == expected


def test_a_pinned_source_stays_where_it_is_pinned() -> None:
    """``processes.groups`` wins over the readers' process: a pinned source is not moved."""
    groups = plan_groups(FLOW, count=3, pinned=[["gonggai-interface", "router"]], readers={"gonggai-interface"})
    assert groups == [["gonggai-interface", "router"], ["normaliser-gonggai", "sink-a"], ["sink-b", "ledger"]]
