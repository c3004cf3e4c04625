from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.router.project_table import ProjectTableWriter
from connectors.runtime.interface import Delivered
from routing.errors import DataError
from routing.gonggai import normalise
from schemas import Codec
from simulators.approval import ApprovalSimulator

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CODEC = Codec.default()


def record(value: bytes) -> ConsumerRecord:
    return ConsumerRecord("events", 0, -1, 1, 0, 0, b"k", value, [], None, 0, 0, 0)


def event_bytes(*, retraction: bool = False) -> tuple[str, bytes]:
    raw = ApprovalSimulator(seed=2).generate(1)[0]
    event = normalise(raw, source="gonggai-interface", ingested_at=NOW)
    event["retraction"] = retraction
    return event["project_code"], Codec.default().encode("ProjectEvent", dict(event))


def writer() -> ProjectTableWriter:
    return ProjectTableWriter(input_topic="events", table_topic="projects", codec=Codec.default())


def test_each_event_is_copied_keyed_by_project_without_its_contact() -> None:
    """A project event lands on the compacted table keyed by its project code, the same but for its contact."""
    code, value = event_bytes()
    (outcome,) = writer().process([record(value)])
    assert isinstance(outcome, Delivered)
    (output,) = outcome.outputs
    assert (output.topic, output.key) == ("projects", code.encode())
    event, kept = CODEC.decode_as("ProjectEvent", value), CODEC.decode_as("ProjectEvent", output.value)
    assert event["contact_mobile"] is not None
    assert (kept["contact_name"], kept["contact_mobile"]) == (None, None)
    assert kept == {**event, "contact_name": None, "contact_mobile": None}


def test_a_retraction_does_not_replace_the_project() -> None:
    """A withdrawn record is left out (counted as filtered), keeping what was shared before."""
    _, value = event_bytes(retraction=True)
    assert list(writer().process([record(value)])) == [Delivered(filtered_reason="retraction")]


def test_a_record_of_another_type_is_a_data_error() -> None:
    """Bytes that are not a ProjectEvent are dead-lettered."""
    (outcome,) = writer().process([record(b"not avro")])
    assert isinstance(outcome, DataError)


class Stored:
    """The project table as an earlier version left it: fixed contents per partition."""

    def __init__(self, values: dict[int, dict[bytes, bytes]]) -> None:
        self.values = values

    def read(self, partitions: Sequence[int]) -> dict[int, dict[bytes, bytes]]:
        """What is stored for ``partitions``."""
        return {p: dict(self.values.get(p, {})) for p in partitions}


def test_records_written_with_a_contact_are_written_again_without_it() -> None:
    """On assignment the table's records holding a contact are found; the next tick writes them stripped."""
    code, value = event_bytes()
    stripped = writer().process([record(value)])
    clean = cast(Delivered, next(stripped)).outputs[0].value
    table = ProjectTableWriter(
        input_topic="events",
        table_topic="projects",
        codec=CODEC,
        reader=Stored({1: {code.encode(): value, b"clean": clean}}),
    )
    table.on_assigned([TopicPartition("events", 1)])
    (rewritten,) = table.tick(NOW)
    assert (rewritten.topic, rewritten.key, rewritten.partition, rewritten.value) == (
        "projects",
        code.encode(),
        1,
        clean,
    )
    assert table.tick(NOW) == []


def test_a_newer_event_is_never_overwritten_by_the_scrub() -> None:
    """An event of the project processed before the tick replaces the pending rewrite; revoked ones are dropped."""
    code, value = event_bytes()
    table = ProjectTableWriter(
        input_topic="events", table_topic="projects", codec=CODEC, reader=Stored({0: {code.encode(): value}, 2: {}})
    )
    table.on_assigned([TopicPartition("events", 0)])
    list(table.process([record(value)]))
    assert table.tick(NOW) == []
    table.on_assigned([TopicPartition("events", 0)])
    table.on_revoked([TopicPartition("events", 0)])
    assert table.tick(NOW) == []
