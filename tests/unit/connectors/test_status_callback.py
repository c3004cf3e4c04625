"""The status-callback intake handler: authentication, strict validation and the TaskStatus it produces."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from connectors.runtime.http_intake import HttpIntake, IntakeRequest
from connectors.runtime.metrics import Metrics
from connectors.status.callback import StatusCallbackHandler
from connectors.status.mapping import REPORT_FIELDS, STAGES, parse_status
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import wait_until

TOKENS = {"water-secret": "yantai-water", "gas-secret": "yantai-gas"}
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
CONTACTED = {"stage": "CONTACTED", "occurred_at": "2026-11-02T10:15:00+08:00"}


def handler() -> StatusCallbackHandler:
    return StatusCallbackHandler(tokens=TOKENS, topic="status", codec=Codec.default(), clock=lambda: NOW)


def request(
    body: Any = CONTACTED,
    *,
    path: str = "/v1/tasks/t-1/status",
    method: str = "POST",
    authorization: str | None = "Bearer water-secret",
    content_type: str | None = "application/json",
    raw: bytes | None = None,
) -> IntakeRequest:
    headers = {"authorization": authorization, "content-type": content_type}
    return IntakeRequest(
        method=method,
        path=path,
        query={},
        headers={name: value for name, value in headers.items() if value is not None},
        body=json.dumps(body, ensure_ascii=False).encode() if raw is None else raw,
    )


def expected(stage: str, occurred_at: datetime, **changes: Any) -> dict[str, Any]:
    status = {
        "task_id": "t-1",
        "utility_id": "yantai-water",
        "application_id": None,
        "stage": stage,
        "occurred_at": occurred_at,
        "reported_at": NOW,
        "pipe_length_m": None,
        "reason": None,
        "detail": None,
        "reporter": "callback",
        "task": None,
    }
    return status | changes


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (CONTACTED, expected("CONTACTED", datetime(2026, 11, 2, 2, 15, tzinfo=UTC))),
        (
            {"stage": "EXTERNAL_WORKS", "occurred_at": "2026-11-03T06:05:00Z", "pipe_length_m": 42, "detail": " 开工 "},
            expected("EXTERNAL_WORKS", datetime(2026, 11, 3, 6, 5, tzinfo=UTC), pipe_length_m=42.0, detail="开工"),
        ),
        (
            {"stage": "REJECTED", "occurred_at": "2026-11-04T09:00:00+08:00", "reason": "市政管网未覆盖"},
            expected("REJECTED", datetime(2026, 11, 4, 1, 0, tzinfo=UTC), reason="市政管网未覆盖"),
        ),
        (
            CONTACTED | {"utility_id": "yantai-water", "pipe_length_m": None},
            expected("CONTACTED", datetime(2026, 11, 2, 2, 15, tzinfo=UTC)),
        ),
    ],
    ids=["contacted", "external-works", "rejected", "own-utility-and-null"],
)
def test_accepted_report_becomes_one_task_status(body: dict[str, Any], status: dict[str, Any]) -> None:
    """A valid report is answered 202 with one Avro TaskStatus keyed by task id on the status topic."""
    response = handler().handle(request(body))
    assert (response.status, response.body) == (202, {"accepted": True, "task_id": "t-1"})
    [output] = response.outputs
    assert (output.topic, output.key) == ("status", b"t-1")
    assert dict(output.headers) == {"ubridge.source": b"status-callbacks", "ubridge.utility": b"yantai-water"}
    assert Codec.default().decode_as("TaskStatus", output.value) == status


def test_the_token_decides_the_utility() -> None:
    """The gas company's token reports as yantai-gas, whatever task it names."""
    response = handler().handle(request(authorization="Bearer gas-secret"))
    assert Codec.default().decode_as("TaskStatus", response.outputs[0].value)["utility_id"] == "yantai-gas"


def test_percent_encoded_task_id_is_decoded() -> None:
    """A task id percent-encoded in the path is the task id the record carries."""
    response = handler().handle(request(path="/v1/tasks/a%3A1/status"))
    assert (response.status, response.body["task_id"], response.outputs[0].key) == (202, "a:1", b"a:1")


def test_declared_charset_is_honoured() -> None:
    """A GBK body that says so is read as GBK."""
    body = json.dumps(CONTACTED | {"detail": "已联系建设单位"}, ensure_ascii=False).encode("gbk")
    response = handler().handle(request(raw=body, content_type="application/json; charset=GBK"))
    assert response.status == 202
    assert Codec.default().decode_as("TaskStatus", response.outputs[0].value)["detail"] == "已联系建设单位"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "Basic d2F0ZXItc2VjcmV0", "Bearer ", "water-secret"],
    ids=["missing", "unknown", "basic", "empty", "no-scheme"],
)
def test_missing_or_unknown_token_is_401(authorization: str | None) -> None:
    """Without a known bearer token the answer is 401 with WWW-Authenticate and nothing is produced."""
    response = handler().handle(request(authorization=authorization))
    assert (response.status, response.outputs, response.headers) == (401, (), (("WWW-Authenticate", "Bearer"),))


def test_report_for_another_utility_is_403() -> None:
    """A body naming another utility than the token's is refused with 403."""
    response = handler().handle(request(CONTACTED | {"utility_id": "yantai-gas"}))
    assert (response.status, response.body["field"], response.outputs) == (403, "utility_id", ())


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=klingon"],
    ids=["missing", "text", "form", "unknown-charset"],
)
def test_non_json_content_type_is_415(content_type: str | None) -> None:
    """Only application/json in a known charset is read."""
    response = handler().handle(request(content_type=content_type))
    assert (response.status, response.outputs) == (415, ())


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (b"{not json", "/v1/tasks/t-1/status", "not JSON"),
        (b"", "/v1/tasks/t-1/status", "not JSON"),
        (b"\xff\xfe", "/v1/tasks/t-1/status", "not valid utf-8"),
        (b"[1, 2]", "/v1/tasks/t-1/status", "JSON object"),
        (json.dumps(CONTACTED).encode(), "/v1/tasks/t%201/status", "task_id"),
        (json.dumps(CONTACTED).encode(), "/v1/tasks/-x/status", "task_id"),
        (json.dumps(CONTACTED).encode(), f"/v1/tasks/{'a' * 129}/status", "task_id"),
    ],
    ids=["bad-json", "empty", "bad-bytes", "array", "space-in-id", "leading-dash", "long-id"],
)
def test_malformed_request_is_400(raw: bytes, path: str, reason: str) -> None:
    """A body that is not a JSON object, or a malformed task id, is a 400 naming the problem."""
    response = handler().handle(request(raw=raw, path=path))
    assert (response.status, response.outputs) == (400, ())
    assert reason in response.body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"occurred_at": "2026-11-02T10:15:00+08:00"}, "stage"),
        (CONTACTED | {"stage": "DONE"}, "stage"),
        (CONTACTED | {"stage": "contacted"}, "stage"),
        (CONTACTED | {"stage": 3}, "stage"),
        ({"stage": "CONTACTED"}, "occurred_at"),
        (CONTACTED | {"occurred_at": "2026-11-02T10:15:00"}, "occurred_at"),
        (CONTACTED | {"occurred_at": "yesterday"}, "occurred_at"),
        (CONTACTED | {"occurred_at": 1793600000}, "occurred_at"),
        (CONTACTED | {"occurred_at": "0001-01-01T00:00:00+08:00"}, "occurred_at"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS"}, "pipe_length_m"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS", "pipe_length_m": 0}, "pipe_length_m"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS", "pipe_length_m": -5}, "pipe_length_m"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS", "pipe_length_m": "42"}, "pipe_length_m"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS", "pipe_length_m": True}, "pipe_length_m"),
        (CONTACTED | {"stage": "EXTERNAL_WORKS", "pipe_length_m": 1e9}, "pipe_length_m"),
        (CONTACTED | {"pipe_length_m": 42}, "pipe_length_m"),
        (CONTACTED | {"stage": "REJECTED"}, "reason"),
        (CONTACTED | {"stage": "REJECTED", "reason": "  "}, "reason"),
        (CONTACTED | {"reason": "no"}, "reason"),
        (CONTACTED | {"detail": ""}, "detail"),
        (CONTACTED | {"detail": ["a"]}, "detail"),
        (CONTACTED | {"detail": "x" * 2001}, "detail"),
        (CONTACTED | {"utility_id": 7}, "utility_id"),
        (CONTACTED | {"task_id": "t-2"}, "task_id"),
        (CONTACTED | {"occured_at": "2026-11-02T10:15:00+08:00"}, "occured_at"),
    ],
    ids=[
        "no-stage", "unknown-stage", "lower-case-stage", "numeric-stage", "no-time", "naive-time", "not-iso",
        "epoch", "year-1", "works-without-length", "zero-length", "negative-length", "string-length", "boolean-length",
        "huge-length", "length-without-works", "rejected-without-reason", "blank-reason", "reason-not-rejected",
        "empty-detail", "list-detail", "long-detail", "numeric-utility", "unknown-field-task-id", "misspelt-field",
    ],
)  # fmt: skip
def test_invalid_field_is_422_naming_it(body: dict[str, Any], field: str) -> None:
    """Each invalid, missing or unknown field is a 422 whose JSON names that field, and nothing is produced."""
    response = handler().handle(request(body))
    assert (response.status, response.body["field"], response.outputs) == (422, field, ())
    assert field in response.body["error"]


@pytest.mark.parametrize(
    "path",
    ["/", "/v1/tasks", "/v1/tasks/t-1", "/v1/tasks//status", "/v1/tasks/t-1/status/x", "/v1/tasks/a/b/status"],
)
def test_other_paths_are_404(path: str) -> None:
    """Only the status path and the OpenAPI document exist."""
    response = handler().handle(request(path=path))
    assert (response.status, response.outputs) == (404, ())


def test_empty_token_is_refused_at_start() -> None:
    """A blank token in the mapping is a configuration error, not a way in."""
    with pytest.raises(ValueError, match="empty"):
        StatusCallbackHandler(tokens={" ": "yantai-water"}, topic="status")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
_ZONES = [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=9, minutes=30))]
_REPORTS = st.fixed_dictionaries(
    {},
    optional={
        "stage": st.sampled_from([*STAGES, "DONE"]) | _JSON,
        "occurred_at": st.datetimes(timezones=st.none() | st.sampled_from(_ZONES)).map(datetime.isoformat) | _JSON,
        "pipe_length_m": st.floats(allow_nan=True) | _JSON,
        "reason": st.text(max_size=5) | _JSON,
        "detail": st.text(max_size=5) | _JSON,
        "utility_id": st.sampled_from(["yantai-water", "yantai-gas"]) | _JSON,
        "extra": _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=_REPORTS)
def test_any_json_body_gets_an_answer_never_an_exception(body: dict[str, Any]) -> None:
    """Whatever JSON object arrives, the handler answers 202 with a decodable record or a 4xx with none."""
    response = handler().handle(request(raw=json.dumps(body).encode()))
    if response.status == 202:
        [output] = response.outputs
        assert Codec.default().decode_as("TaskStatus", output.value)["stage"] == body["stage"]
    else:
        # json.dumps writes NaN and Infinity, which are not JSON: those bodies are refused as such (400).
        assert response.status in (403, 422) or "is not a JSON number" in response.body["error"]
        assert response.outputs == ()


class _Acknowledged:
    def get(self, timeout: float | None = None) -> None:
        """Kafka acknowledged at once."""


class RecordingProducer:
    """Stands in for KafkaProducer: every send is acknowledged at once and kept."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.lock = threading.Lock()

    def send(self, topic: str, *, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> _Acknowledged:
        with self.lock:
            self.sent.append((topic, key, value))
        return _Acknowledged()

    def close(self, timeout: float | None = None) -> None:
        pass


@pytest.fixture
def intake() -> Iterator[tuple[HttpIntake, RecordingProducer]]:
    """The handler served by a real HttpIntake whose producer records instead of writing to Kafka."""
    producer, stop = RecordingProducer(), threading.Event()
    server = HttpIntake(
        StatusCallbackHandler(tokens=TOKENS, topic="status"),
        host="127.0.0.1",
        port=0,
        producer=producer,  # type: ignore[arg-type]
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        max_body_bytes=65536,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield server, producer
    stop.set()
    thread.join(timeout=5)


def test_simulated_utility_callbacks_are_all_accepted(intake: tuple[HttpIntake, RecordingProducer]) -> None:
    """The utility simulator's callbacks fit the intake's contract: every status is accepted and recorded."""
    server, producer = intake
    simulator = UtilitySimulator("yantai-water", token="tasks-token", seed=5)
    url = simulator.start()
    try:
        simulator.set_progress(
            callback_url=f"http://127.0.0.1:{server.port}",
            callback_token="water-secret",
            hours_per_second=5000,
            external_works_rate=0.5,
            reject_rate=0.3,
        )
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer tasks-token"}) as client:
            for n in range(8):
                body = {"task_id": f"t-{n}", "utility_id": "yantai-water", "created_at": "2026-11-06T08:00:00Z"}
                client.post("/v1/tasks", json=body, headers={"Idempotency-Key": f"t-{n}"}).raise_for_status()
        wait_until(
            lambda: _finished(simulator, 8) and simulator.stats().callbacks_delivered == len(simulator.statuses()),
            timeout_s=15,
            what="every status of 8 tasks called back",
        )
        stats = simulator.stats()
    finally:
        simulator.stop()
    assert (stats.callback_failures, stats.callbacks_delivered) == (0, stats.statuses_reported)
    codec = Codec.default()
    recorded = [(key.decode(), codec.decode_as("TaskStatus", value)) for _, key, value in producer.sent]
    reported = [(s.task_id, s.stage, s.occurred_at, s.pipe_length_m, s.reason) for s in simulator.statuses()]
    assert [(key, r["stage"], r["occurred_at"], r["pipe_length_m"], r["reason"]) for key, r in recorded] == reported
    assert {r["reporter"] for _, r in recorded} == {"callback"}


def _finished(simulator: UtilitySimulator, tasks: int) -> bool:
    return sum(s.stage in ("CLOSED", "REJECTED") for s in simulator.statuses()) == tasks


def test_application_id_is_carried_onto_the_status() -> None:
    """A report naming its task's 爱山东 application id publishes it, so the app follows the application."""
    status = parse_status(
        {"stage": "CONTACTED", "occurred_at": "2026-11-25T10:00:00+08:00", "application_id": "AS20261125001000001"},
        task_id="t-1",
        utility_id="yantai-water",
        reporter="callback",
        reported_at=datetime(2026, 11, 25, 2, 1, tzinfo=UTC),
    )
    assert status["application_id"] == "AS20261125001000001"


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/tasks/t-1/status"), ("POST", "/openapi.json")])
def test_wrong_method_is_405(intake: tuple[HttpIntake, RecordingProducer], method: str, path: str) -> None:
    """A known path with the wrong method is a JSON 405 that names the right one."""
    server, _ = intake
    response = httpx.request(method, f"http://127.0.0.1:{server.port}{path}")
    assert response.status_code == 405
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert allowed == ({"POST"} if method == "GET" else {"GET", "HEAD"})
    assert response.json()["error"].startswith("use ")


def test_openapi_document_describes_the_endpoint(intake: tuple[HttpIntake, RecordingProducer]) -> None:
    """GET /openapi.json serves the generated document, whose stages are exactly the TaskStage values."""
    server, _ = intake
    document = httpx.get(f"http://127.0.0.1:{server.port}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/tasks/{task_id}/status"]["post"]
    assert {"202", "400", "401", "403", "413", "415", "422", "503"} <= set(operation["responses"])
    report = operation["requestBody"]["content"]["application/json"]["schema"]
    assert tuple(report["properties"]["stage"]["enum"]) == STAGES
    assert set(report["properties"]) == REPORT_FIELDS
