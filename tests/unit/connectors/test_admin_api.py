from collections.abc import Iterator

import httpx
import pytest
from fastapi import HTTPException
from kafka.errors import KafkaTimeoutError

from connectors.admin.api import _answer, admin_router
from connectors.admin.service import AdminService
from connectors.runtime.web_app import build_app
from connectors.runtime.web_server import WebServer
from tests.support import settings_for

TOKEN = "ops-token-0123456789abcdef"


@pytest.fixture
def unreachable() -> Iterator[str]:
    """The admin API on a free port, for an installation whose Kafka is never reached by these requests."""
    service = AdminService(settings_for("127.0.0.1:1", "t."), stale_after_s=15)
    server = WebServer(build_app([admin_router(service, {"ops": TOKEN})]), host="127.0.0.1", port=0, name="admin-api")
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
    service.close()


def test_a_kafka_that_does_not_answer_is_503_with_a_reason() -> None:
    """A Kafka error becomes 503 with Retry-After and a JSON reason, never a 500 or a traceback."""

    def unanswered() -> None:
        raise KafkaTimeoutError

    with pytest.raises(HTTPException) as raised:
        _answer(unanswered)
    error = raised.value
    assert (error.status_code, error.headers, error.detail) == (
        503,
        {"Retry-After": "5"},
        {"field": "kafka", "reason": "Kafka did not answer (KafkaTimeoutError); try again"},
    )


def test_a_request_without_the_token_is_refused_before_kafka_is_asked(unreachable: str) -> None:
    """401 with WWW-Authenticate, answered at once whatever the state of Kafka."""
    response = httpx.post(f"{unreachable}/admin/v1/stages/router/pause", timeout=5)
    assert (response.status_code, response.headers["WWW-Authenticate"]) == (401, "Bearer")


def test_a_replay_without_a_reason_is_refused_naming_the_field(unreachable: str) -> None:
    """The request models validate before anything is read: a replay needs a reason."""
    response = httpx.post(
        f"{unreachable}/admin/v1/stages/router/dead-letters/replay",
        json={"offsets": [1]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "reason"
