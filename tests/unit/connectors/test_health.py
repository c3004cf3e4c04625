import socket
from collections.abc import Iterator

import httpx
import pytest
import structlog.testing
from fastapi import APIRouter
from prometheus_client import CollectorRegistry

from connectors.runtime.health import HealthServer
from connectors.runtime.metrics import Metrics
from tests.unit.connectors.intake_support import assert_json_lines, json_logs


@pytest.fixture
def states() -> dict[str, dict[str, bool]]:
    return {"live": {"router": True}, "ready": {"router": False}}


@pytest.fixture
def server(states: dict[str, dict[str, bool]]) -> Iterator[str]:
    metrics = Metrics(CollectorRegistry())
    metrics.records_in.labels("router").inc(3)
    health = HealthServer(metrics.registry, lambda: states["live"], lambda: states["ready"], "127.0.0.1", 0)
    health.start()
    yield f"http://127.0.0.1:{health.port}"
    health.stop()


def test_metrics_are_exposed_in_prometheus_format(server: str) -> None:
    """/metrics serves the process's collectors as text."""
    body = httpx.get(f"{server}/metrics").text
    assert 'ubridge_records_in_total{stage="router"} 3.0' in body


def test_readiness_follows_the_stages(server: str, states: dict[str, dict[str, bool]]) -> None:
    """/readyz is 503 until every stage is ready, then 200."""
    assert httpx.get(f"{server}/readyz").status_code == 503
    states["ready"]["router"] = True
    response = httpx.get(f"{server}/readyz")
    assert (response.status_code, response.json()) == (200, {"ok": True, "stages": {"router": True}, "detail": {}})


def test_liveness_fails_when_a_stage_died(server: str, states: dict[str, dict[str, bool]]) -> None:
    """/healthz turns 503 when a stage has failed."""
    assert httpx.get(f"{server}/healthz").status_code == 200
    states["live"]["router"] = False
    assert httpx.get(f"{server}/healthz").status_code == 503


def test_unknown_path_is_404(server: str) -> None:
    """Anything else is not found."""
    assert httpx.get(f"{server}/").status_code == 404


def test_a_scraper_hanging_up_midway_leaves_no_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients that reset mid-answer or send garbage leave JSON log lines only, and the server serves on."""
    logs = json_logs(monkeypatch)
    metrics = Metrics(CollectorRegistry())
    for n in range(3000):  # a metrics page too long for one socket buffer
        metrics.records_in.labels(f"stage-{n}").inc()
    health = HealthServer(metrics.registry, dict, dict, "127.0.0.1", 0)
    health.start()
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", health.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        with socket.create_connection(("127.0.0.1", health.port)) as sock:
            sock.sendall(b"\x16\x03\x01garbage\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
        assert httpx.get(f"http://127.0.0.1:{health.port}/metrics").status_code == 200
    finally:
        health.stop()
    assert capsys.readouterr() == ("", "")
    assert_json_lines(logs.getvalue())
    assert "request_rejected" in logs.getvalue()


def test_health_speaks_http_1_1_with_keep_alive() -> None:
    """The health endpoint answers HTTP/1.1 and keeps the connection for the next scrape."""
    health = HealthServer(Metrics(CollectorRegistry()).registry, dict, dict, "127.0.0.1", 0)
    health.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{health.port}") as client:
            first, second = client.get("/metrics"), client.get("/healthz")
    finally:
        health.stop()
    assert (first.http_version, first.status_code, second.status_code) == ("HTTP/1.1", 200, 503)
    assert first.headers.get("connection") != "close"


def test_a_failing_check_is_a_json_500_with_an_error_id_logged_as_one_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug in a check answers 500 with an error id; its traceback is in one structured event, not on stderr."""

    def broken() -> dict[str, bool]:
        message = "the check itself is broken"
        raise RuntimeError(message)

    health = HealthServer(Metrics(CollectorRegistry()).registry, broken, dict, "127.0.0.1", 0)
    health.start()
    try:
        with structlog.testing.capture_logs() as logs:
            answer = httpx.get(f"http://127.0.0.1:{health.port}/healthz")
    finally:
        health.stop()
    body = answer.json()
    assert (answer.status_code, body["error"]) == (500, "internal error")
    assert "Traceback" not in answer.text and "broken" not in answer.text
    [event] = [e for e in logs if e["event"] == "request_crashed"]
    assert event["error_id"] == body["error_id"]
    assert isinstance(event["exc_info"], RuntimeError)
    assert capsys.readouterr() == ("", "")


def test_more_routers_are_served_beside_health_and_documented() -> None:
    """A router given to the health server (the admin API's way in) is served on its port and in its OpenAPI."""
    extra = APIRouter()

    @extra.get("/v1/admin/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    health = HealthServer(Metrics(CollectorRegistry()).registry, dict, dict, "127.0.0.1", 0, routers=[extra])
    health.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{health.port}") as client:
            answer, document = client.get("/v1/admin/ping"), client.get("/openapi.json").json()
            missing = client.get("/v1/admin/nope")
    finally:
        health.stop()
    assert answer.json() == {"pong": "yes"}
    assert {"/metrics", "/healthz", "/readyz", "/v1/admin/ping"} <= set(document["paths"])
    assert (missing.status_code, missing.json()) == (404, {"error": "no such resource: /v1/admin/nope"})
