"""The vendor-aware normaliser: picks the mapping by source, skips records already in the default format."""

import json
from pathlib import Path
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import SecretStr

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.gonggai.webhook import WEBHOOK_PATH, GonggaiWebhook
from connectors.runtime.http_intake import IntakeRequest
from connectors.runtime.interface import Delivered
from routing.errors import DataError
from routing.gonggai import DEFAULT_STATUS_CODES
from routing.mapping import load_mapping
from schemas import Codec
from simulators.approval.generator import EventGenerator
from simulators.approval.push import sign, to_vendor

MAPPINGS = Path(__file__).parents[3] / "deploy" / "config" / "mappings"
CODEC = Codec.default()
INGESTED = b"2026-11-25T02:31:00.000+00:00"


def record(value: Any, headers: list[tuple[str, bytes]], offset: int = 0) -> ConsumerRecord:
    body = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return ConsumerRecord("raw", 0, -1, offset, 0, 0, None, body, headers, None, 0, 0, 0)


def normaliser() -> GonggaiNormaliser:
    return GonggaiNormaliser(
        input_topic="raw",
        output_topic="events",
        status_codes=DEFAULT_STATUS_CODES,
        codec=CODEC,
        mappings={
            "gonggai-yantai": load_mapping(MAPPINGS / "vendor-yantai.yaml"),
            "gonggai-liaocheng": load_mapping(MAPPINGS / "vendor-liaocheng.yaml"),
            "gonggai-interface": load_mapping(MAPPINGS / "default.yaml"),
        },
    )


def reference() -> GonggaiNormaliser:
    return GonggaiNormaliser(input_topic="raw", output_topic="events", status_codes=DEFAULT_STATUS_CODES, codec=CODEC)


def decoded(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Delivered), outcome
    return CODEC.decode(outcome.outputs[0].value)[1]


def test_vendor_records_are_mapped_by_their_source() -> None:
    """A Yantai and a Liaocheng record give the same event as the default record they render."""
    events = EventGenerator(seed=9).generate(30)
    for source, vendor in (("gonggai-yantai", "yantai"), ("gonggai-liaocheng", "liaocheng")):
        headers = [("ubridge.source", source.encode()), ("ubridge.ingested_at", INGESTED)]
        vendor_records = [record(to_vendor(e, vendor), headers, i) for i, e in enumerate(events)]
        default_records = [record(e, headers, i) for i, e in enumerate(events)]
        got = [decoded(o) for o in normaliser().process(vendor_records)]
        expected = [decoded(o) for o in reference().process(default_records)]
        assert got == expected
        assert [o.outputs[0].key for o in normaliser().process(vendor_records)] == [  # type: ignore[union-attr]
            e["xmdm"].encode() for e in events
        ]


def test_default_format_records_are_not_mapped_again() -> None:
    """A record the webhook already mapped (ubridge.format: default) is normalised as it is."""
    event = EventGenerator(seed=9).generate(1)[0]
    webhook = GonggaiWebhook(
        name="gonggai-yantai",
        secret=SecretStr("s" * 16),
        mapping=load_mapping(MAPPINGS / "vendor-yantai.yaml"),
        raw_topic="raw",
        clock=lambda: 1_795_573_860.0,
    )
    body = json.dumps(to_vendor(event, "yantai")).encode()
    headers = {"x-ubridge-timestamp": "1795573860", "x-ubridge-signature": sign("s" * 16, 1795573860, body)}
    output = webhook.handle(IntakeRequest("POST", WEBHOOK_PATH, {}, headers, body)).outputs[0]
    (outcome,) = normaliser().process([record(output.value, list(output.headers))])
    assert decoded(outcome)["project_code"] == event["xmdm"]
    assert decoded(outcome)["source"] == "gonggai-yantai"
    vendor_default = [("ubridge.source", b"gonggai-yantai"), ("ubridge.vendor", b"default")]
    (outcome,) = normaliser().process([record(event, vendor_default)])
    assert decoded(outcome)["project_code"] == event["xmdm"]


def test_sources_without_a_mapping_are_the_default_format() -> None:
    """A source with no mapping, or the identity mapping, is normalised exactly as with no mappings at all."""
    events = EventGenerator(seed=10).generate(20, invalid_rate=0.3)
    for source in (b"gonggai-interface", b"unmapped"):
        records = [record(e, [("ubridge.source", source), ("ubridge.ingested_at", INGESTED)]) for e in events]
        got = list(normaliser().process(records))
        expected = list(reference().process(records))
        assert [type(o) for o in got] == [type(o) for o in expected]
        assert [decoded(o) for o in got if isinstance(o, Delivered)] == [
            decoded(o) for o in expected if isinstance(o, Delivered)
        ]
        assert [(o.field, o.reason) for o in got if isinstance(o, DataError)] == [
            (o.field, o.reason) for o in expected if isinstance(o, DataError)
        ]


def test_faults_are_data_errors_at_the_vendor_path() -> None:
    """Mapping and validation faults of a vendor record are DataErrors naming the vendor's path."""
    event = to_vendor(EventGenerator(seed=9).generate(1)[0], "liaocheng")
    headers = [("ubridge.source", b"gonggai-liaocheng")]
    bad_status = json.loads(json.dumps(event))
    bad_status["approval"]["办理记录"][0]["状态"] = "作废"
    bad_region = json.loads(json.dumps(event))
    bad_region["project"]["行政区划"] = "379999"
    records = [record(bad_status, headers), record(bad_region, headers), record(b"\xff", headers), record([1], headers)]
    outcomes = list(normaliser().process(records))
    assert all(isinstance(o, DataError) for o in outcomes)
    assert [o.field for o in outcomes] == ["approval.办理记录[0].状态", "project.行政区划", "", ""]  # type: ignore[union-attr]


def test_bad_ingestion_header_is_a_data_error() -> None:
    """An ingestion time that is not ISO-8601 with a zone is a DataError on the header."""
    event = EventGenerator(seed=9).generate(1)[0]
    for stamp in (b"yesterday", b"2026-11-25T02:31:00"):
        (outcome,) = normaliser().process([record(event, [("ubridge.ingested_at", stamp)])])
        assert isinstance(outcome, DataError)
        assert outcome.field == "ubridge.ingested_at"
