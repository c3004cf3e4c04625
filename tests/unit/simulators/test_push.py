"""The simulator's push client: signing, charsets, batches, and the vendors' formats."""

import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from routing.errors import DataError
from routing.gonggai import normalise
from routing.mapping import apply_mapping, load_mapping
from simulators.approval.generator import DEFECTS, EventGenerator, inject_defect
from simulators.approval.push import PUSH_PATH, VENDORS, push_events, sign, signed_headers, to_vendor
from tests.support import NOW

MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
FILES = {"default": "default.yaml", "yantai": "vendor-yantai.yaml", "liaocheng": "vendor-liaocheng.yaml"}
SECRET = "push-secret-0123456789"


@dataclass
class Captured:
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; 202 once exhausted


@pytest.fixture
def receiver() -> Iterator[tuple[str, Captured]]:
    """A local HTTP server that records every POST and answers the planned statuses."""
    captured = Captured()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            captured.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = captured.statuses.pop(0) if captured.statuses else 202
            events = json.loads(body.decode("gbk" if "GBK" in self.headers["Content-Type"] else "utf-8"))["events"]
            answer = {"accepted": len(events)} if status == 202 else {"error": "bad event", "field": "xmmc"}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{PUSH_PATH}", captured
    server.shutdown()
    server.server_close()


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The signature is sha256= and the hex HMAC-SHA256 of "<timestamp>." + body under the secret."""
    body = b'{"events": []}'
    expected = hmac.new(SECRET.encode(), b"1795573860." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1795573860, body) == f"sha256={expected}"
    assert sign(SECRET, 1795573861, body) != sign(SECRET, 1795573860, body)
    headers = signed_headers(SECRET, body, charset="gbk", timestamp=1795573860)
    assert headers == {
        "Content-Type": "application/json; charset=GBK",
        "X-Ubridge-Timestamp": "1795573860",
        "X-Ubridge-Signature": f"sha256={expected}",
    }


def test_push_sends_signed_gbk_batches(receiver: tuple[str, Captured]) -> None:
    """Events go out in batches, GBK-encoded with the charset declared, each batch signed over its bytes."""
    url, captured = receiver
    events = EventGenerator(seed=11).generate(120)
    results = push_events(url, SECRET, events, charset="gbk", batch=50, clock=lambda: 1795573860.7)
    assert [(r.status, r.events, r.body) for r in results] == [
        (202, 50, {"accepted": 50}),
        (202, 50, {"accepted": 50}),
        (202, 20, {"accepted": 20}),
    ]
    sent = []
    for headers, body in captured.requests:
        assert headers["content-type"] == "application/json; charset=GBK"
        assert headers["x-ubridge-timestamp"] == "1795573860"
        assert headers["x-ubridge-signature"] == sign(SECRET, 1795573860, body)
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")  # really GBK, not UTF-8 with a GBK label
        sent += json.loads(body.decode("gbk"))["events"]
    assert sent == events


def test_push_reports_refused_batches_and_goes_on(receiver: tuple[str, Captured]) -> None:
    """A refused batch is reported with the receiver's answer, and the next batch is still sent."""
    url, captured = receiver
    captured.statuses = [422]
    results = push_events(url, SECRET, EventGenerator(seed=2).generate(4), batch=2)
    assert [(r.status, r.body.get("field")) for r in results] == [(422, "xmmc"), (202, None)]
    assert all("charset=UTF-8" in headers["content-type"] for headers, _ in captured.requests)


def test_push_refuses_unknown_options() -> None:
    """An unknown charset, vendor or a batch below one is a ValueError before anything is sent."""
    events = EventGenerator(seed=2).generate(1)
    for options in ({"charset": "big5"}, {"vendor": "qingdao"}, {"batch": 0}):
        with pytest.raises(ValueError, match="charset must be one of"):
            push_events("http://127.0.0.1:9/", SECRET, events, **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown vendor"):
        to_vendor(events[0], "qingdao")


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_rendering_round_trips_through_the_shipped_mapping(vendor: str) -> None:
    """Rendering an event as a vendor and applying that vendor's shipped mapping gives the event back."""
    rules = load_mapping(MAPPINGS / FILES[vendor])
    for event in EventGenerator(seed=13).generate(300, unserved_rate=0.1):
        assert apply_mapping(rules, to_vendor(event, vendor)) == event


def test_vendor_formats_differ_in_names_and_nesting() -> None:
    """Yantai is flat camelCase with epoch millis and codes; Liaocheng is nested with Chinese keys."""
    event = next(e for e in EventGenerator(seed=13).generate(40) if e.get("xqxx") and e["blzt"] == 11)
    yantai = to_vendor(event, "yantai")
    assert yantai["projectCode"] == event["xmdm"]
    assert isinstance(yantai["handleTime"], int)
    assert yantai["statusCode"] == "09"
    assert {d["serviceCode"] for d in yantai["demands"]} <= {"WS", "GS", "HS"}
    liaocheng = to_vendor(event, "liaocheng")
    assert liaocheng["project"]["代码"] == event["xmdm"]
    assert liaocheng["approval"]["办理记录"][0]["状态"] == "办结"
    assert liaocheng["approval"]["办理记录"][0]["时间"] == event["blsj"].replace("-", "").replace(" ", "").replace(
        ":", ""
    )
    assert liaocheng["project"]["用地面积公顷"] == pytest.approx(event["ydmj"] / 10_000)
    assert "xmdm" not in yantai
    assert "xmdm" not in liaocheng


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("defect", DEFECTS)
def test_defective_events_stay_defective_in_every_format(vendor: str, defect: str) -> None:
    """An event with an injected defect is still refused after rendering and mapping."""
    rules = load_mapping(MAPPINGS / FILES[vendor])
    event = inject_defect(EventGenerator(seed=4).generate(1)[0], defect, random.Random(3))
    with pytest.raises(DataError):
        normalise(apply_mapping(rules, to_vendor(event, vendor)), source="t", ingested_at=NOW)


def test_to_vendor_leaves_the_event_untouched() -> None:
    """Rendering copies; the generator's event is not changed."""
    event = EventGenerator(seed=8).generate(1)[0]
    before = json.dumps(event, sort_keys=True)
    for vendor in VENDORS:
        rendered: Any = to_vendor(event, vendor)
        rendered.clear()
    assert json.dumps(event, sort_keys=True) == before
