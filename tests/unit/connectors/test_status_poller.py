"""The status poller: a utility's change feed → TaskStatus records, dead letters, retriable failures."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.runtime.dlq import error_context
from connectors.runtime.errors import BackpressureError, RetriableError
from connectors.runtime.interface import Output, Source
from connectors.settings import StatusPollSettings
from connectors.status.poller import StatusPoller, stage_name
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import wait_until

NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
UTILITY = "jinan-heat"
Handler = Callable[[httpx.Request], httpx.Response]


def poller(handler: Handler, *, base_url: str = "http://heat.test/api/", page_size: int = 50) -> StatusPoller:
    return StatusPoller(
        StatusPollSettings(base_url=base_url, page_size=page_size),
        utility_id=UTILITY,
        token=SecretStr("heat-token"),
        topic="status",
        dlq_topic="dlq",
        codec=Codec.default(),
        transport=httpx.MockTransport(handler),
        clock=lambda: NOW,
    )


def page(statuses: list[Any], next_cursor: Any = 2, *, has_more: bool = False) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"statuses": statuses, "next_cursor": next_cursor, "has_more": has_more})

    return answer


def entry(seq: int, task_id: str = "t-1", **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "task_id": task_id, "stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"} | fields


def decoded(output: Output) -> dict[str, Any]:
    return Codec.default().decode_as("TaskStatus", output.value)


def test_poller_is_a_source_named_after_its_utility() -> None:
    """The poller satisfies the Source protocol under the name status-poll-<utility>."""
    source: Source = poller(page([]))
    assert source.name == stage_name(UTILITY) == "status-poll-jinan-heat"


def test_request_carries_cursor_limit_and_bearer_token() -> None:
    """Each poll GETs /v1/task-status under the base URL with the cursor, page size and bearer token."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return page([], next_cursor=0)(request)

    source = poller(handler, page_size=17)
    source.poll(None)
    source.poll("41")
    assert [str(r.url) for r in seen] == [
        "http://heat.test/api/v1/task-status?cursor=0&limit=17",
        "http://heat.test/api/v1/task-status?cursor=41&limit=17",
    ]
    assert {r.headers["Authorization"] for r in seen} == {"Bearer heat-token"}


def test_entries_become_task_statuses_keyed_by_task_id() -> None:
    """Every entry is one TaskStatus (reporter poll, the polled utility) keyed by its task id, in order."""
    entries = [
        entry(7, "t-1"),
        entry(8, "t-2", stage="EXTERNAL_WORKS", pipe_length_m=42.5, detail="外线开工"),
        entry(9, "t-1", stage="REJECTED", reason="管网未覆盖", occurred_at="2026-11-03T01:00:00Z"),
    ]
    batch = poller(page(entries, next_cursor=9, has_more=True)).poll("6")
    assert (batch.cursor, batch.has_more) == ("9", True)
    assert [(o.topic, o.key) for o in batch.records] == [("status", b"t-1"), ("status", b"t-2"), ("status", b"t-1")]
    assert decoded(batch.records[1]) == {
        "task_id": "t-2",
        "utility_id": UTILITY,
        "application_id": None,
        "stage": "EXTERNAL_WORKS",
        "occurred_at": datetime(2026, 11, 2, 2, 15, tzinfo=UTC),
        "reported_at": NOW,
        "pipe_length_m": 42.5,
        "reason": None,
        "detail": "外线开工",
        "reporter": "poll",
        "task": None,
    }
    assert [decoded(o)["stage"] for o in batch.records] == ["CONTACTED", "EXTERNAL_WORKS", "REJECTED"]
    assert decoded(batch.records[2])["reason"] == "管网未覆盖"


def test_malformed_entries_are_dead_lettered_not_dropped() -> None:
    """Entries that cannot be mapped go, as received, to the DLQ with error headers; good ones still map."""
    bad_stage = entry(11, "t-2", stage="DONE")
    bad_utility = entry(13, "t-4", utility_id="yantai-water")
    entries = [entry(10), bad_stage, "garbage", bad_utility, entry(14, "t 5"), entry(15, "t-6")]
    batch = poller(page(entries, next_cursor=15)).poll("9")
    assert [(o.topic, o.key) for o in batch.records] == [
        ("status", b"t-1"),
        ("dlq", b"t-2"),
        ("dlq", None),
        ("dlq", b"t-4"),
        ("dlq", b"t 5"),
        ("status", b"t-6"),
    ]
    letters = [o for o in batch.records if o.topic == "dlq"]
    assert [json.loads(o.value) for o in letters] == [bad_stage, "garbage", bad_utility, entry(14, "t 5")]
    contexts = [error_context(o.headers) for o in letters]
    assert [(c["field"], c["seq"]) for c in contexts] == [
        ("stage", "11"),
        ("", ""),
        ("utility_id", "13"),
        ("task_id", "14"),
    ]
    assert contexts[0] == {
        "stage": "status-poll-jinan-heat",
        "class": "DataError",
        "field": "stage",
        "message": contexts[0]["message"],
        "source": "http://heat.test/api/v1/task-status",
        "cursor": "9",
        "seq": "11",
        "failed_at": "2026-11-02T03:00:00.000+00:00",
    }
    assert "must be one of" in contexts[0]["message"]
    assert dict(letters[0].headers)["ubridge.source"] == b"status-poll-jinan-heat"


def test_empty_page_keeps_the_cursor() -> None:
    """A page with nothing new returns no records and the cursor it was asked from."""
    batch = poller(page([], next_cursor=3)).poll("3")
    assert (batch.records, batch.cursor, batch.has_more) == ([], "3", False)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_s"),
    [(503, "7", 7.0), (429, "0.5", 0.5), (429, "Mon, 02 Nov 2026 03:00:30 GMT", 30.0), (503, None, 1.0)],
    ids=["503-seconds", "429-fraction", "429-http-date", "503-absent"],
)
def test_backpressure_honours_retry_after(status: int, retry_after: str | None, expected_s: float) -> None:
    """429 and 503 raise BackpressureError with Retry-After in seconds (delta or HTTP date)."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    source = poller(lambda request: httpx.Response(status, headers=headers))
    with pytest.raises(BackpressureError) as caught:
        source.poll("0")
    assert caught.value.retry_after_s == expected_s


@pytest.mark.parametrize("status", [500, 502, 401, 404])
def test_other_failures_are_retriable(status: int) -> None:
    """Any other non-2xx answer is retriable (the stage backs off), not a crash and not a data error."""
    source = poller(lambda request: httpx.Response(status, text="down"))
    with pytest.raises(RetriableError, match=str(status)) as caught:
        source.poll("0")
    assert not isinstance(caught.value, BackpressureError)


def test_transport_failure_is_retriable() -> None:
    """A connection failure is a RetriableError chained to the transport error."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetriableError, match="unreachable") as caught:
        poller(refuse).poll("0")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>busy</html>",
        b"[]",
        b'{"next_cursor": 3}',
        b'{"statuses": {}, "next_cursor": 3}',
        b'{"statuses": []}',
        b'{"statuses": [], "next_cursor": -1}',
        b'{"statuses": [], "next_cursor": true}',
        b'{"statuses": [], "next_cursor": "abc"}',
    ],
    ids=["html", "array", "no-statuses", "statuses-object", "no-cursor", "negative", "boolean", "text"],
)
def test_malformed_page_is_retriable_and_moves_nothing(body: bytes) -> None:
    """A page that is not the documented JSON raises RetriableError, so the cursor never moves past it."""
    source = poller(lambda request: httpx.Response(200, content=body))
    with pytest.raises(RetriableError):
        source.poll("0")


def test_polls_the_simulator_feed_to_the_end() -> None:
    """Paging through the real simulator's feed yields every reported status exactly once, in order."""
    simulator = UtilitySimulator(UTILITY, token="heat-token", seed=3)
    url = simulator.start()
    try:
        simulator.set_progress(hours_per_second=5000, reject_rate=0.2, external_works_rate=0.5)
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer heat-token"}) as client:
            for n in range(6):
                body = {"task_id": f"t-{n}", "utility_id": UTILITY, "created_at": "2026-11-02T01:07:00Z"}
                client.post("/v1/tasks", json=body, headers={"Idempotency-Key": f"t-{n}"}).raise_for_status()
        terminal = ("CLOSED", "REJECTED")
        wait_until(lambda: sum(s.stage in terminal for s in simulator.statuses()) == 6, timeout_s=15, what="6 ends")
        source = StatusPoller(
            StatusPollSettings(base_url=url, page_size=4),
            utility_id=UTILITY,
            token=SecretStr("heat-token"),
            topic="status",
            dlq_topic="dlq",
        )
        records: list[Output] = []
        cursor: str | None = None
        for _ in range(100):
            batch = source.poll(cursor)
            records += batch.records
            cursor = batch.cursor
            if not batch.has_more:
                break
        source.close()
    finally:
        simulator.stop()
    assert {o.topic for o in records} == {"status"}
    expected = [(s.task_id, s.stage, s.occurred_at, s.pipe_length_m, s.reason) for s in simulator.statuses()]
    actual = [(o.key.decode() if o.key else None, *_fields(decoded(o))) for o in records]
    assert actual == expected
    assert cursor == str(len(expected))


def _fields(status: dict[str, Any]) -> tuple[Any, ...]:
    return status["stage"], status["occurred_at"], status["pipe_length_m"], status["reason"]
