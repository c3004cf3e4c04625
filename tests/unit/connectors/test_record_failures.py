import pickle
from datetime import UTC, datetime

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaConnectionError

from connectors.runtime.dlq import dead_letter, error_context
from connectors.runtime.errors import RecordFailed, RetriableError
from connectors.runtime.interface import RECORD_ATTEMPTS, Delivered, each_record, outcome_of
from routing.errors import DataError

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def record(offset: int, value: bytes = b"v") -> ConsumerRecord:
    return ConsumerRecord("in", 0, -1, offset, 0, 0, b"k", value, [], None, 0, 0, 0)


class Flaky:
    """Raises ``error`` for its first ``failures`` calls, then delivers."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    def __call__(self, _: ConsumerRecord) -> Delivered:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return Delivered()


def test_an_unexpected_exception_is_retried_then_becomes_a_record_failure() -> None:
    """A handler that always raises ValueError is tried RECORD_ATTEMPTS times, then yields RecordFailed."""
    handle = Flaky(ValueError("year 0 is out of range for 13912345678"), failures=99)
    outcome = outcome_of(handle, record(0))
    assert isinstance(outcome, RecordFailed)
    assert (handle.calls, outcome.error_class, "failed 3 times" in outcome.reason) == (
        RECORD_ATTEMPTS,
        "ValueError",
        True,
    )


def test_a_passing_fault_clears_on_retry() -> None:
    """A handler that fails once and then works delivers the record."""
    handle = Flaky(RuntimeError("transient"), failures=1)
    assert (Delivered(), 2) == (outcome_of(handle, record(0)), handle.calls)


def test_data_errors_are_not_retried() -> None:
    """A DataError is the record's verdict at once."""
    handle = Flaky(DataError("xmdm", "bad"), failures=99)
    outcome = outcome_of(handle, record(0))
    assert (type(outcome), handle.calls) == (DataError, 1)


@pytest.mark.parametrize("error", [RetriableError("utility down"), KafkaConnectionError("broker gone")])
def test_failures_of_the_world_outside_the_record_propagate(error: Exception) -> None:
    """RetriableError and Kafka's errors are the stage's to handle: they propagate unretried."""
    handle = Flaky(error, failures=99)
    with pytest.raises(type(error)):
        outcome_of(handle, record(0))
    assert handle.calls == 1


def test_one_bad_record_does_not_stop_the_others() -> None:
    """each_record yields a RecordFailed for the poisoned record and delivers the rest."""

    def handle(item: ConsumerRecord) -> Delivered:
        if item.offset == 1:
            raise OverflowError("Python int too large to convert to C long")
        return Delivered()

    outcomes = list(each_record([record(0), record(1), record(2)], handle))
    assert [type(o).__name__ for o in outcomes] == ["Delivered", "RecordFailed", "Delivered"]


def test_a_record_failure_crosses_a_process_boundary_intact() -> None:
    """Worker processes pickle outcomes: class, field and reason survive."""
    failure = RecordFailed("KeyError", "KeyError: 'xmdm' (failed 3 times)")
    copy = pickle.loads(pickle.dumps(failure))  # noqa: S301 - our own bytes
    assert (type(copy), copy.error_class, copy.reason, copy.field) == (RecordFailed, "KeyError", failure.reason, "")


def test_the_dead_letter_names_the_original_class_and_masks_personal_data() -> None:
    """Headers say ValueError (not RecordFailed) and the phone number in the message is masked."""
    failure = RecordFailed("ValueError", "ValueError: bad phone 13912345678 (failed 3 times)")
    letter = dead_letter(record(7, b"original"), failure, stage="router", topic="dlq", now=NOW)
    context = error_context(letter.headers)
    assert (context["class"], "13912345678" in context["message"], letter.value) == ("ValueError", False, b"original")
