from collections.abc import Iterator

import httpx
import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from connectors.runtime.health import HealthServer
from connectors.runtime.metrics import Metrics


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


def test_a_request_that_fails_midway_is_one_log_event_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """A scraper hanging up mid-answer is logged as health_request_failed; nothing reaches stderr."""
    health = HealthServer(Metrics(CollectorRegistry()).registry, dict, dict, "127.0.0.1", 0)
    health.start()
    try:
        with structlog.testing.capture_logs() as logs:
            try:
                raise BrokenPipeError  # the state handle_error is called in
            except BrokenPipeError:
                health._server.handle_error(None, ("127.0.0.1", 50000))
    finally:
        health.stop()
    assert (capsys.readouterr().err, logs) == (
        "",
        [{"event": "health_request_failed", "client": "127.0.0.1", "error": "BrokenPipeError", "log_level": "warning"}],
    )
