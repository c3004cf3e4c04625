import pytest

from connectors.migrate.task_plan import PartitionPlan, plan_partition, start_offset, translate


@pytest.mark.parametrize(
    ("committed", "beginning", "start"),
    [(None, 0, 0), (None, 7, 7), (12, 0, 12), (3, 7, 7), (7, 7, 7)],
)
def test_a_sink_resumes_at_its_commit_or_at_the_oldest_record_kept(
    committed: int | None, beginning: int, start: int
) -> None:
    """Never committed, or committed below what retention kept: the oldest record, as earliest reset does."""
    assert start_offset(committed, beginning) == start


def test_each_utility_s_records_from_its_own_start_are_copied_in_order() -> None:
    """Starts differ per utility: each gets only what its sink had not committed, in the partition's order."""
    records = [(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a"), (5, "b")]
    plan = plan_partition(records, {"a": 3, "b": 0})
    assert plan.copies == ((1, "b"), (3, "b"), (4, "a"), (5, "b"))
    assert (plan.delivered, plan.unconfigured, plan.unreadable) == (2, {}, ())


def test_records_of_utilities_without_a_sink_and_unreadable_ones_are_left_and_counted() -> None:
    """A utility with no configured sink, and a record that is no task, are reported, never copied."""
    plan = plan_partition([(0, "zibo-water"), (1, None), (2, "zibo-water"), (3, "a")], {"a": 0})
    assert plan == PartitionPlan(copies=((3, "a"),), delivered=0, unconfigured={"zibo-water": 2}, unreadable=(1,))


def test_nothing_to_copy_when_every_sink_is_caught_up() -> None:
    """Every record below its sink's commit: nothing copied, all counted as delivered."""
    assert plan_partition([(0, "a"), (1, "b")], {"a": 2, "b": 5}) == PartitionPlan((), 2, {}, ())


@pytest.mark.parametrize(
    ("offset", "new_start", "translated"),
    [
        (-1, 0, -1),  # no offset recorded stays none
        (4, 0, -1),  # delivered before anything copied: just before the copy
        (4, 10, 9),  # the new partition already had records: still just before the copy
        (6, 0, 0),  # delivered from the first record copied (delivered, not committed)
        (7, 0, 0),  # between two copies (another utility's record): the copy of the last one at or below
        (9, 0, 1),
        (20, 0, 2),  # beyond every copy
    ],
)
def test_a_revision_s_offset_moves_to_the_copy_of_the_last_record_at_or_below_it(
    offset: int, new_start: int, translated: int
) -> None:
    """Records at or below the revision's offset stay "read again" after the copy, and none above it does."""
    copied = [(6, new_start), (9, new_start + 1), (15, new_start + 2)]
    assert translate(offset, copied, new_start=new_start) == translated
