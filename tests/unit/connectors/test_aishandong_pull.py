from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.aishandong.pull_source import AishandongPullSource
from connectors.runtime.dlq import error_context
from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.interface import SourceBatch
from connectors.settings import AishandongPullSettings
from schemas import Codec
from simulators.aishandong import ApplicationFeed, make_applications


@pytest.fixture
def feed() -> Iterator[tuple[ApplicationFeed, str]]:
    simulator = ApplicationFeed(token="feed-token")
    url = simulator.start()
    yield simulator, url
    simulator.stop()


def poll(url: str, cursor: str | None, token: str = "feed-token") -> SourceBatch:
    settings = AishandongPullSettings(base_url=url, token=SecretStr(token), page_size=3)
    source = AishandongPullSource(settings, topic="apps", dlq_topic="dlq")
    try:
        return source.poll(cursor)
    finally:
        source.close()


def apps(n: int) -> list[dict[str, Any]]:
    return make_applications(n, 3, ("370602", "371502"))


def test_pages_become_avro_applications_keyed_by_id(feed: tuple[ApplicationFeed, str]) -> None:
    """Each valid application on the feed becomes a ConnectionApplication on the topic, paged by cursor."""
    simulator, url = feed
    published = apps(5)
    simulator.add(published)
    first = poll(url, None)
    second = poll(url, first.cursor)
    records = [*first.records, *second.records]
    assert (first.cursor, first.has_more, second.cursor, second.has_more) == ("3", True, "5", False)
    assert [r.key for r in records] == [a["sqbh"].encode() for a in published]
    assert {Codec.default().decode(r.value)[0] for r in records} == {"ConnectionApplication"}


def test_an_invalid_application_is_dead_lettered_with_its_reason(feed: tuple[ApplicationFeed, str]) -> None:
    """A bad application goes to the dead-letter topic as received, masked reason and feed position attached."""
    simulator, url = feed
    bad = {**apps(1)[0], "lxdh": "12345"}
    simulator.add([bad])
    (record,) = poll(url, None).records
    context = error_context(record.headers)
    assert (record.topic, context["field"], context["offset"]) == ("dlq", "lxdh", "1")


def test_a_wrong_token_is_retried_not_skipped(feed: tuple[ApplicationFeed, str]) -> None:
    """401 is a RetriableError: the cursor stays where it was."""
    _, url = feed
    with pytest.raises(RetriableError, match="answered 401"):
        poll(url, None, token="wrong")


def test_unreachable_gateway_is_backpressure_or_retriable() -> None:
    """A gateway that is down raises a retriable error, never a crash."""
    with pytest.raises(RetriableError) as caught:
        poll("http://127.0.0.1:9", None)
    assert not isinstance(caught.value, BackpressureError)
