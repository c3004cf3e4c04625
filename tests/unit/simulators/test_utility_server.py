"""The utility business-system simulator over HTTP: idempotency, refusals, faults and counters."""

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from simulators.utility import ReceivedTask, SimStats, UtilitySimulator

BEARER = "water-bearer"
UTILITY = "yantai-water"


def task(task_id: str = "t-1", **changes: Any) -> dict[str, Any]:
    """A task body as ubridge's sink sends it."""
    body = {
        "task_id": task_id,
        "utility_id": UTILITY,
        "kind": "PRE_INTERVENTION",
        "service": "WATER",
        "region_code": "370602",
        "created_at": "2026-11-02T01:07:00+00:00",
    }
    return body | changes


@pytest.fixture
def simulator() -> Iterator[UtilitySimulator]:
    """A running water-company simulator."""
    simulator = UtilitySimulator(UTILITY, token=BEARER, seed=11)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(simulator: UtilitySimulator) -> Iterator[httpx.Client]:
    """A client that authenticates with the right token."""
    with httpx.Client(base_url=simulator.start(), headers={"Authorization": f"Bearer {BEARER}"}, timeout=5) as client:
        yield client


def deliver(client: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    """POST a task with its id as Idempotency-Key unless another key is given."""
    return client.post("/v1/tasks", json=body, headers={"Idempotency-Key": key or body["task_id"]})


def test_first_delivery_creates_the_task(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """A new key is answered 201 with a reference and the task is stored as sent, stamped in UTC."""
    before = datetime.now(UTC)
    response = deliver(client, task())
    assert (response.status_code, response.json()) == (
        201,
        {"status": "created", "task_id": "t-1", "revision": 1, "utility_ref": "W-000001"},
    )
    [stored] = simulator.tasks()
    assert (stored.task_id, stored.body, stored.utility_ref) == ("t-1", task(), "W-000001")
    assert before <= stored.received_at <= datetime.now(UTC)
    assert stored.received_at.utcoffset() == timedelta(0)


def test_repeated_key_never_creates_a_second_task(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """The same key and body twice gives one task, a duplicate answer naming the revision, and repeats=1."""
    deliver(client, task())
    response = deliver(client, task())
    assert (response.status_code, response.json()) == (
        200,
        {"status": "duplicate", "task_id": "t-1", "revision": 1, "utility_ref": "W-000001"},
    )
    assert [stored.body for stored in simulator.tasks()] == [task()]
    assert simulator.stats() == SimStats(requests=2, unique=1, repeats=1)


def test_a_reused_key_with_another_body_is_422(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """IETF Idempotency-Key draft: a key seen before with a different body is refused and changes nothing."""
    deliver(client, task())
    response = deliver(client, task(created_at="2026-11-02T02:00:00+00:00"))
    assert (response.status_code, response.json()) == (
        422,
        {"error": "this Idempotency-Key was used with a different body"},
    )
    assert [stored.body for stored in simulator.tasks()] == [task()]
    assert simulator.stats() == SimStats(requests=2, unique=1, key_conflicts=1)


def test_revisions_update_and_cancel_the_task(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """Revision 2 replaces the task, a CANCEL revision 3 cancels it; revision 2's key with another body is 422."""
    deliver(client, task(revision=1), "t-1:1")
    updated = deliver(client, task(revision=2, documents=["drawing"]), "t-1:2")
    cancelled = deliver(client, task(revision=3, action="CANCEL"), "t-1:3")
    assert [(r.status_code, r.json()["status"]) for r in (updated, cancelled)] == [(200, "updated"), (200, "cancelled")]
    [stored] = simulator.tasks()
    assert (stored.revision, stored.body["action"], stored.utility_ref) == (3, "CANCEL", "W-000001")
    assert deliver(client, task(revision=2, note="late"), "t-1:2").status_code == 422
    assert simulator.stats() == SimStats(requests=4, unique=1, revisions=2, key_conflicts=1)


def test_an_older_revision_is_superseded(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """A revision not above the one held is acknowledged as superseded and changes nothing."""
    deliver(client, task(revision=3), "t-1:3")
    response = deliver(client, task(revision=2), "t-1:2")
    assert (response.status_code, response.json()["status"], response.json()["revision"]) == (200, "superseded", 3)
    assert simulator.tasks()[0].revision == 3
    assert simulator.stats() == SimStats(requests=2, unique=1, superseded=1)


def test_tasks_keep_arrival_order(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """Unique tasks are listed in arrival order with increasing references."""
    for task_id in ("c", "a", "b", "a"):
        deliver(client, task(task_id))
    assert [(t.task_id, t.utility_ref) for t in simulator.tasks()] == [
        ("c", "W-000001"),
        ("a", "W-000002"),
        ("b", "W-000003"),
    ]


def test_concurrent_duplicates_store_one_task(simulator: UtilitySimulator) -> None:
    """Twenty threads racing with one key leave exactly one task and nineteen repeats."""
    url, statuses = simulator.start(), []

    def post() -> None:
        response = httpx.post(
            f"{url}/v1/tasks",
            json=task("race"),
            headers={"Authorization": f"Bearer {BEARER}", "Idempotency-Key": "race"},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 19 + [201]
    assert simulator.stats() == SimStats(requests=20, unique=1, repeats=19)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_bad_token_is_401(simulator: UtilitySimulator, headers: dict[str, str]) -> None:
    """A missing or wrong token is refused and nothing is stored."""
    response = httpx.post(f"{simulator.start()}/v1/tasks", json=task(), headers=headers | {"Idempotency-Key": "t-1"})
    assert response.status_code == 401
    assert simulator.tasks() == []


@pytest.mark.parametrize(
    ("content", "key", "reason"),
    [
        (b'{"task_id": "t-1", "utility_id": "yantai-water"}', None, "Idempotency-Key"),
        (b"not json", "t-1", "JSON object"),
        (b"[1, 2]", "t-1", "JSON object"),
        (b'{"utility_id": "yantai-water"}', "t-1", "lacks task_id"),
        (b'{"task_id": "t-2", "utility_id": "yantai-water"}', "t-1", "is not <task_id>:<revision>"),
        (b'{"task_id": "t-1", "utility_id": "yantai-water", "revision": 2}', "t-1:1", "is not <task_id>:<revision>"),
        (b'{"task_id": "t-1", "utility_id": "yantai-water", "revision": 0}', "t-1:0", "positive integer"),
    ],
    ids=["no-key", "not-json", "not-object", "no-task-id", "key-mismatch", "revision-mismatch", "revision-zero"],
)
def test_malformed_requests_are_400(
    simulator: UtilitySimulator, client: httpx.Client, content: bytes, key: str | None, reason: str
) -> None:
    """Malformed deliveries are refused with a JSON error naming the problem, and not stored."""
    headers = {"Content-Type": "application/json"} | ({"Idempotency-Key": key} if key else {})
    response = client.post("/v1/tasks", content=content, headers=headers)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert simulator.tasks() == []


def test_task_for_another_utility_is_422(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """A task addressed to another utility is refused with 422 and counted as rejected."""
    response = deliver(client, task(utility_id="yantai-gas"))
    assert response.status_code == 422
    assert simulator.tasks() == []
    assert simulator.stats() == SimStats(requests=1, rejected=1)


@pytest.mark.parametrize(("status", "retry_after"), [(503, "1"), (429, "1"), (500, None)])
def test_injected_fault_stores_nothing(
    simulator: UtilitySimulator, client: httpx.Client, status: int, retry_after: str | None
) -> None:
    """An injected error precedes storage; 429 and 503 carry Retry-After."""
    simulator.set_faults(error_rate=1.0, error_status=status)
    response = deliver(client, task())
    assert (response.status_code, response.headers.get("Retry-After")) == (status, retry_after)
    assert simulator.tasks() == []
    assert simulator.stats() == SimStats(requests=1, faults_injected=1)


def test_outage_answers_503_with_the_configured_retry_after(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """During an outage every delivery is a 503 with Retry-After; afterwards deliveries succeed."""
    simulator.set_faults(outage_s=0.3, retry_after_s=2)
    responses = [deliver(client, task()) for _ in range(3)]
    assert [(r.status_code, r.headers["Retry-After"]) for r in responses] == [(503, "2")] * 3
    time.sleep(0.35)
    assert deliver(client, task()).status_code == 201
    assert simulator.stats() == SimStats(requests=4, unique=1, faults_injected=3)


def test_lost_acknowledgement_stores_then_fails(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """fail_after_store_rate stores the task but answers 503; the retry is then a duplicate."""
    simulator.set_faults(fail_after_store_rate=1.0)
    first = deliver(client, task())
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    assert [stored.task_id for stored in simulator.tasks()] == ["t-1"]
    retry = deliver(client, task())
    assert (retry.status_code, retry.json()["status"]) == (200, "duplicate")
    assert simulator.stats() == SimStats(requests=2, unique=1, repeats=1, faults_injected=1)


def test_error_rate_fails_about_that_share(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """With error_rate 0.25 roughly a quarter of distinct deliveries fail and are not stored."""
    simulator.set_faults(error_rate=0.25)
    created = sum(deliver(client, task(f"t-{n}")).status_code == 201 for n in range(200))
    stats = simulator.stats()
    assert 25 <= stats.faults_injected <= 75
    assert created == stats.unique == len(simulator.tasks()) == 200 - stats.faults_injected


def test_control_plane_lists_tasks_and_stats(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """GET /_sim/tasks and /_sim/stats report what the Python API reports."""
    deliver(client, task())
    deliver(client, task())
    [listed] = client.get("/_sim/tasks").json()["tasks"]
    [stored] = simulator.tasks()
    assert listed == {
        "task_id": "t-1",
        "received_at": stored.received_at.isoformat(),
        "utility_ref": "W-000001",
        "revision": 1,
        "body": task(),
    }
    assert client.get("/_sim/stats").json() == {
        "requests": 2,
        "unique": 1,
        "repeats": 1,
        "faults_injected": 0,
        "rejected": 0,
        "revisions": 0,
        "superseded": 0,
        "key_conflicts": 0,
    }


def test_control_plane_sets_faults(client: httpx.Client) -> None:
    """POST /_sim/faults accepts the set_faults names and answers 204; bad plans are 400."""
    assert client.post("/_sim/faults", json={"outage_s": 5, "retry_after_s": 0.5}).status_code == 204
    assert deliver(client, task()).headers["Retry-After"] == "0.5"
    assert client.post("/_sim/faults", json={}).status_code == 204
    assert deliver(client, task()).status_code == 201
    assert client.post("/_sim/faults", json={"fail_after_store_rate": -1}).status_code == 400


def test_received_task_is_frozen(simulator: UtilitySimulator, client: httpx.Client) -> None:
    """Returned tasks are immutable records and copies of the simulator's state."""
    deliver(client, task())
    [stored] = simulator.tasks()
    assert isinstance(stored, ReceivedTask)
    with pytest.raises(AttributeError):
        stored.utility_ref = "X"  # type: ignore[misc]
    stored.body["kind"] = "CONNECT"
    assert simulator.tasks()[0].body["kind"] == "PRE_INTERVENTION"


@pytest.mark.parametrize(("utility_id", "prefix"), [("liaocheng-gas", "G"), ("jinan-heat", "H"), ("acme", "U")])
def test_reference_prefix_follows_the_service(utility_id: str, prefix: str) -> None:
    """Gas, heat and other utilities number their references with their own prefix."""
    simulator = UtilitySimulator(utility_id, token=BEARER)
    url = simulator.start()
    try:
        response = httpx.post(
            f"{url}/v1/tasks",
            json=task(utility_id=utility_id),
            headers={"Authorization": f"Bearer {BEARER}", "Idempotency-Key": "t-1"},
        )
    finally:
        simulator.stop()
    assert response.json()["utility_ref"] == f"{prefix}-000001"
