"""What the utilities' JSON intakes share: who calls, the body, and a refusal that keeps the body as a dead letter."""

from datetime import UTC, datetime

import pytest

from connectors.runtime.dlq import error_context
from connectors.runtime.http_intake import IntakeRequest, IntakeResponse
from connectors.runtime.utility_intake import UtilityJsonHandler

NOW = datetime(2026, 12, 5, 8, tzinfo=UTC)
HANDLER = UtilityJsonHandler(
    stage="permit-intake", tokens={"water-token": "yantai-water"}, dlq_topic="dlq", clock=lambda: NOW
)
JSON = {"authorization": "Bearer water-token", "content-type": "application/json; charset=utf-8"}


def request(body: bytes, *, method: str = "POST", headers: dict[str, str] | None = None) -> IntakeRequest:
    """A request to the intake."""
    return IntakeRequest(method, "/v1/permits", {}, JSON if headers is None else headers, body)


def test_the_caller_and_its_body_with_its_own_utility_id_taken_out() -> None:
    """The token names the utility; a utility_id naming the same one is taken out of the body."""
    assert HANDLER.read(request(b'{"utility_id": "yantai-water", "route": "r"}')) == ("yantai-water", {"route": "r"})


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (request(b"{}", method="GET"), 405),
        (request(b"{}", headers={**JSON, "authorization": "Bearer nope"}), 401),
        (request(b"{}", headers={**JSON, "authorization": "Basic water-token"}), 401),
        (request(b"{}", headers={**JSON, "content-type": "text/plain"}), 415),
        (request(b'{"utility_id": "yantai-gas"}'), 403),
    ],
)
def test_a_request_not_from_a_known_utility_or_not_json_is_refused(sent: IntakeRequest, status: int) -> None:
    """Wrong method, unknown token, other scheme, other content type, another utility's body: refused."""
    answer = HANDLER.read(sent)
    assert isinstance(answer, IntakeResponse)
    assert answer.status == status


@pytest.mark.parametrize(("body", "status"), [(b"[1]", 400), (b"\xff{", 400), (b'{"a": ', 400)])
def test_a_body_that_is_not_one_json_object_is_refused_and_kept_as_a_dead_letter(body: bytes, status: int) -> None:
    """The 4xx carries the body, as it came, to the dead-letter topic with the reason."""
    answer = HANDLER.read(request(body))
    assert isinstance(answer, IntakeResponse)
    assert answer.status == status
    (letter,) = answer.outputs
    assert (letter.topic, letter.key, letter.value) == ("dlq", b"yantai-water", body)
    assert error_context(letter.headers)["stage"] == "permit-intake"


def test_an_empty_token_is_refused_at_start_up() -> None:
    """A blank token would let anyone in: the handler refuses to be built."""
    with pytest.raises(ValueError, match="must not be empty"):
        UtilityJsonHandler(stage="s", tokens={" ": "u"}, dlq_topic="d", clock=lambda: NOW)


def test_a_body_in_its_declared_charset_is_read_and_an_unknown_charset_is_refused() -> None:
    """GBK declared: read as GBK; an unknown charset: 415, and the body is kept as a dead letter."""
    body = '{"route": "花园路 经三路口"}'.encode("gbk")
    gbk = request(body, headers={**JSON, "content-type": "application/json; charset=GBK"})
    assert HANDLER.read(gbk) == ("yantai-water", {"route": "花园路 经三路口"})
    unknown = HANDLER.read(request(body, headers={**JSON, "content-type": "application/json; charset=x-nope"}))
    assert isinstance(unknown, IntakeResponse)
    assert (unknown.status, unknown.outputs[0].value) == (415, body)
    assert isinstance(HANDLER.read(request(body)), IntakeResponse)  # GBK bytes sent as UTF-8: not valid
