"""The wait between a source's polls when it has nothing to do (issue 17: sources do not sleep on work)."""

import pytest

from connectors.runtime.idle import QUICK_POLL_S, idle_wait_s


def test_a_poll_that_found_work_is_followed_at_once() -> None:
    """No empty poll yet means no wait: the runner polls again as soon as it has written the batch."""
    assert idle_wait_s(0, interval_s=5.0) == 0.0


def test_the_first_empty_poll_waits_the_quick_interval() -> None:
    """Right after work the source looks again within 100 ms, where a burst's next rows usually are."""
    assert (idle_wait_s(1, interval_s=5.0), QUICK_POLL_S < 0.1) == (QUICK_POLL_S, True)


def test_each_empty_poll_doubles_the_wait_up_to_the_interval() -> None:
    """An idle source settles at its configured interval and stays there, however long it idles."""
    waits = [idle_wait_s(n, interval_s=1.0, quick_s=0.1) for n in (1, 2, 3, 4, 5, 6, 1000)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("interval_s", [0.01, 0.05])
def test_an_interval_below_the_quick_one_wins(interval_s: float) -> None:
    """A configured interval shorter than the quick one is never exceeded."""
    assert idle_wait_s(1, interval_s=interval_s) == interval_s
