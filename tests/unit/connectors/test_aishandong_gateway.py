"""The 爱山东 application gateway: signature, replays, charsets, validation, Avro output; fuzzed."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from connectors.aishandong.gateway import GATEWAY_PATH, AishandongGateway, build_gateway
from connectors.aishandong.settings import AishandongGatewaySettings
from connectors.runtime.http_intake import HttpIntake, IntakeRequest, IntakeResponse
from connectors.runtime.metrics import Metrics
from connectors.settings import KafkaSettings
from schemas import Codec
from simulators.aishandong import make_applications
from simulators.approval.push import sign

SECRET = "aishandong-secret-0123456789"
NOW = 1_795_573_860.0
TOPIC = "t.ubridge.canonical.applications.v1"
ID_NUMBER = "11010519491231002X"
MOBILE = "13912345678"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def gateway(clock: Clock | None = None, **options: Any) -> AishandongGateway:
    return AishandongGateway(secret=SecretStr(SECRET), topic=TOPIC, clock=clock or Clock(), **options)


def application(**changes: Any) -> dict[str, Any]:
    app: dict[str, Any] = {
        "sqbh": "AS2026112500001",
        "sqlx": "报装",
        "fwlx": ["供水", "供气"],
        "sqrlx": "个人",
        "sqrxm": "张伟",
        "sfzhm": ID_NUMBER,
        "lxdh": MOBILE,
        "xzqhdm": "370602",
        "dz": "芝罘区幸福南路18号",
        "sqsj": "2026-11-25 09:00:00",
    }
    app.update(changes)
    return app


def body_of(app: dict[str, Any], charset: str = "utf-8") -> bytes:
    return json.dumps(app, ensure_ascii=False).encode(charset)


def signed(
    body: bytes,
    *,
    timestamp: int = int(NOW),
    secret: str = SECRET,
    content_type: str = "application/json; charset=utf-8",
    path: str = GATEWAY_PATH,
    method: str = "POST",
) -> IntakeRequest:
    headers = {
        "content-type": content_type,
        "x-ubridge-timestamp": str(timestamp),
        "x-ubridge-signature": sign(secret, timestamp, body),
    }
    return IntakeRequest(method=method, path=path, query={}, headers=headers, body=body)


def assert_refused(response: IntakeResponse, status: int, reason: str) -> None:
    assert response.status == status, response.body
    assert reason in response.body["error"]
    assert not response.outputs


def test_valid_application_becomes_one_avro_record() -> None:
    """A signed application answers 202 and yields one ConnectionApplication keyed by application id."""
    response = gateway().handle(signed(body_of(application())))
    assert (response.status, response.body) == (202, {"accepted": 1, "application_id": "AS2026112500001"})
    (output,) = response.outputs
    assert (output.topic, output.key) == (TOPIC, b"AS2026112500001")
    name, record = Codec.default().decode(output.value)
    assert name == "ConnectionApplication"
    assert record["services"] == ["WATER", "GAS"] and record["applicant_id_number"] == ID_NUMBER
    headers = dict(output.headers)
    assert headers["ubridge.source"] == b"aishandong-gateway"
    assert headers["ubridge.ingested_at"] == b"2026-11-25T02:31:00.000+00:00"


def test_gbk_body_is_decoded_in_its_declared_charset() -> None:
    """A GBK body declared GBK (or GB2312) is read correctly."""
    for declared in ("GBK", "gb2312"):
        request = signed(body_of(application(), "gbk"), content_type=f"application/json; charset={declared}")
        response = gateway().handle(request)
        assert response.status == 202
        assert Codec.default().decode(response.outputs[0].value)[1]["applicant_name"] == "张伟"


def test_utf8_declared_gbk_garbles_or_fails_but_never_passes_silently() -> None:
    """UTF-8 bytes declared GBK are refused with 400 rather than stored garbled or accepted."""
    body = body_of(application(dz="芝罘区幸福南路18号"))
    response = gateway().handle(signed(body, content_type="application/json; charset=GBK"))
    assert response.status in {400, 422}
    assert not response.outputs


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "x-ubridge-timestamp must be"),
        ({"x-ubridge-timestamp": "yesterday"}, "x-ubridge-timestamp must be"),
        ({"x-ubridge-timestamp": str(int(NOW))}, "x-ubridge-signature must be sha256="),
        ({"x-ubridge-timestamp": str(int(NOW)), "x-ubridge-signature": "md5=abc"}, "x-ubridge-signature must be"),
    ],
)
def test_missing_or_malformed_signature_headers_are_401(headers: dict[str, str], reason: str) -> None:
    """Without a unix timestamp and a sha256= signature the request is refused."""
    request = IntakeRequest("POST", GATEWAY_PATH, {}, headers, body_of(application()))
    assert_refused(gateway().handle(request), 401, reason)


def test_wrong_signature_or_tampered_body_is_401() -> None:
    """Another secret, or other bytes than signed, are refused."""
    body = body_of(application())
    assert_refused(gateway().handle(signed(body, secret="another-secret-987654321")), 401, "signature does not match")
    good = signed(body)
    tampered = IntakeRequest("POST", GATEWAY_PATH, {}, good.headers, body.replace(b"370602", b"370611"))
    assert_refused(gateway().handle(tampered), 401, "signature does not match")


@pytest.mark.parametrize(("offset_s", "side"), [(-301, "old"), (301, "in the future")])
def test_timestamp_outside_the_window_is_a_replay(offset_s: int, side: str) -> None:
    """A timestamp more than 300 s from now is refused as a replay."""
    response = gateway().handle(signed(body_of(application()), timestamp=int(NOW) + offset_s))
    assert_refused(response, 401, "replay refused")
    assert side in response.body["error"]


def test_replayed_signature_is_401() -> None:
    """The same signed request twice is refused the second time."""
    handler = gateway()
    request = signed(body_of(application()))
    assert handler.handle(request).status == 202
    assert_refused(handler.handle(request), 401, "replayed request")


def test_full_replay_cache_is_429() -> None:
    """When the replay cache is full the sender is asked to slow down."""
    handler = gateway(replay_cache_max_entries=1)
    assert handler.handle(signed(body_of(application()))).status == 202
    response = handler.handle(signed(body_of(application(sqbh="AS2"))))
    assert response.status == 429 and not response.outputs
    assert ("Retry-After", "1") in response.headers


@pytest.mark.parametrize(
    ("content_type", "status", "reason"),
    [
        ("text/plain", 415, "is not application/json"),
        ("application/json; charset=latin-1", 415, "charset 'latin-1' is not supported"),
    ],
)
def test_wrong_content_type_or_charset_is_415(content_type: str, status: int, reason: str) -> None:
    """Only JSON in UTF-8 or the GB family is taken."""
    assert_refused(gateway().handle(signed(body_of(application()), content_type=content_type)), status, reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body must be one application"),
        (b'"x"', "body must be one application"),
        (b"\xff\xfe", "body is not valid"),
        (b"[" * 100_000 + b"]" * 100_000, "body nests deeper than 64 levels"),
    ],
)
def test_body_that_is_not_an_application_is_400(body: bytes, reason: str) -> None:
    """Malformed JSON, a non-object or undecodable bytes are refused with 400."""
    assert_refused(gateway().handle(signed(body)), 400, reason)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sfzhm": "110105194912310021"}, "sfzhm"),
        ({"lxdh": "1391234567"}, "lxdh"),
        ({"fwlx": "供水"}, "fwlx"),
        ({"sqsj": 20261125}, "sqsj"),
        ({"xzqhdm": "999999"}, "xzqhdm"),
    ],
)
def test_invalid_application_is_422_naming_the_field(changes: dict[str, Any], field: str) -> None:
    """Wrong types or values are refused with 422 and the gateway's field; the reason masks personal data."""
    response = gateway().handle(signed(body_of(application(**changes))))
    assert response.status == 422 and not response.outputs
    assert response.body["field"] == field
    text = json.dumps(response.body, ensure_ascii=False)
    assert "110105194912310021" not in text and "1391234567" not in text


def test_a_bad_material_link_is_dropped_and_the_application_accepted() -> None:
    """容缺受理 (000, 004): an unreadable material link is 202, and the record names the dropped link."""
    response = gateway().handle(signed(body_of(application(cl=[{"lx": "图纸", "mc": "x", "sha256": 5}]))))
    assert response.status == 202
    (record,) = [o for o in response.outputs if o.topic == TOPIC]
    app = Codec.default().decode_as("ConnectionApplication", record.value)
    assert (app["materials"], app["dropped_materials"]) == ([], ["cl.0.sha256: sha256 must be a string, got number"])


def test_a_refused_application_can_be_fixed_and_resent() -> None:
    """A 422 does not burn a signature: the corrected application, newly signed, is accepted."""
    handler = gateway()
    assert handler.handle(signed(body_of(application(lxdh="123")))).status == 422
    assert handler.handle(signed(body_of(application()))).status == 202


@pytest.mark.parametrize(("method", "path", "status"), [("POST", "/v1/other", 404), ("GET", GATEWAY_PATH, 405)])
def test_other_paths_and_methods_are_refused(method: str, path: str, status: int) -> None:
    """Only POST /v1/applications is served."""
    response = gateway().handle(signed(body_of(application()), method=method, path=path))
    assert response.status == status and not response.outputs


def test_simulated_applications_are_all_accepted() -> None:
    """Every simulated application, in UTF-8 and GBK, is accepted."""
    handler = gateway()
    for index, app in enumerate(make_applications(60, seed=9, regions=["370602", "370102", "371502"])):
        charset = "gbk" if index % 2 else "utf-8"
        request = signed(body_of(app, charset), content_type=f"application/json; charset={charset}")
        assert handler.handle(request).status == 202, app


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
_FIELD_VALUES = st.one_of(
    _JSON,
    st.sampled_from(["报装", "报修", "个人", "企业", ID_NUMBER, MOBILE, "370602", "2026-11-25 09:00:00", "供水"]),
    st.lists(st.sampled_from(["供水", "供气", "供热", "供电", 3]), max_size=4),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        _JSON.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(list(application())), _FIELD_VALUES, max_size=10).map(
            lambda changes: body_of(application(**changes))
        ),
    ),
    charset=st.sampled_from(["utf-8", "gbk", "gb18030", "latin-1"]),
    sign_it=st.booleans(),
)
def test_fuzzed_bodies_never_5xx_and_never_output_unless_202(raw: bytes, charset: str, sign_it: bool) -> None:
    """Arbitrary bodies and field values get a 2xx or 4xx answer; only a 202 carries a record."""
    request = signed(raw, content_type=f"application/json; charset={charset}")
    if not sign_it:
        request = IntakeRequest(
            "POST", GATEWAY_PATH, {}, {**request.headers, "x-ubridge-signature": "sha256=" + "0" * 64}, raw
        )
    response = gateway().handle(request)
    assert 200 <= response.status < 500
    assert bool(response.outputs) == (response.status == 202)
    json.dumps(response.body, ensure_ascii=False).encode()  # the answer is always sendable
    if response.status == 202:
        Codec.default().decode(response.outputs[0].value)


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    """Stands in for KafkaProducer: records sends, or fails them while ``failing`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.failing = False

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> FakeFuture:
        if self.failing:
            return FakeFuture(KafkaTimeoutError("no broker"))
        self.sent.append((topic, key, value))
        return FakeFuture(None)

    def close(self, timeout: float | None = None) -> None:
        """Nothing to close."""


@pytest.fixture
def running() -> Iterator[tuple[HttpIntake, FakeProducer, str]]:
    """The gateway built by build_gateway on a free port, writing to a fake producer."""
    producer = FakeProducer()
    stop = threading.Event()
    intake = build_gateway(
        AishandongGatewaySettings(secret=SecretStr(SECRET), port=0, max_body_bytes=2048),
        kafka=KafkaSettings(),
        topic=TOPIC,
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        producer=producer,  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=intake.run, daemon=True)
    thread.start()
    yield intake, producer, f"http://127.0.0.1:{intake.port}{GATEWAY_PATH}"
    stop.set()
    thread.join(timeout=5)


def post(url: str, body: bytes) -> httpx.Response:
    stamp = int(time.time())
    headers = {
        "content-type": "application/json; charset=utf-8",
        "x-ubridge-timestamp": str(stamp),
        "x-ubridge-signature": sign(SECRET, stamp, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=5)


def test_oversized_body_is_413_and_nothing_is_sent(running: tuple[HttpIntake, FakeProducer, str]) -> None:
    """A body over max_body_bytes is refused by the intake before it is read."""
    _, producer, url = running
    response = post(url, body_of(application(bz="备注" * 2000)))
    assert response.status_code == 413 and producer.sent == []


def test_kafka_refusal_is_503_and_the_same_request_may_be_resent(
    running: tuple[HttpIntake, FakeProducer, str],
) -> None:
    """When Kafka does not take the record the sender gets 503, and its unchanged retry is accepted."""
    _, producer, url = running
    body = body_of(application())
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "x-ubridge-timestamp": str(stamp),
        "x-ubridge-signature": sign(SECRET, stamp, body),
    }
    producer.failing = True
    first = httpx.post(url, content=body, headers=headers, timeout=5)
    assert first.status_code == 503 and first.headers["retry-after"] == "5"
    producer.failing = False
    second = httpx.post(url, content=body, headers=headers, timeout=5)
    assert second.status_code == 202
    assert [(topic, key) for topic, key, _ in producer.sent] == [(TOPIC, b"AS2026112500001")]


def test_settings_defaults_and_validation() -> None:
    """Port 8092 and 256 KiB by default; a weak secret or an unknown key is refused."""
    config = AishandongGatewaySettings(secret=SecretStr(SECRET))
    assert (config.name, config.port, config.max_body_bytes, config.replay_window_s) == (
        "aishandong-gateway",
        8092,
        262_144,
        300,
    )
    with pytest.raises(ValidationError, match="at least 16 characters"):
        AishandongGatewaySettings(secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="Extra inputs"):
        AishandongGatewaySettings(secret=SecretStr(SECRET), mapping="x.yaml")  # type: ignore[call-arg]
