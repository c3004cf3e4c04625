import json

from connectors.runtime.interface import Output
from connectors.runtime.record_headers import AVRO, CONTENT_TYPE, FINGERPRINT, JSON, SCHEMA, described, value_headers
from schemas import Codec, fingerprint, history
from tests.support import make_task


def test_avro_values_name_their_schema_and_fingerprint() -> None:
    """A task says it is ubridge.v1.UtilityTask, single-object Avro, with the fingerprint of its header."""
    codec = Codec.default()
    value = codec.encode("UtilityTask", dict(make_task("yantai-water", 1)))
    headers = dict(value_headers(value, codec))
    assert headers == {CONTENT_TYPE: AVRO, SCHEMA: b"ubridge.v1.UtilityTask", FINGERPRINT: value[2:10].hex().encode()}


def test_a_value_written_with_an_earlier_schema_names_that_version() -> None:
    """The fingerprint header is the writer's: a record of an older version says so."""
    codec = Codec.default()
    version, old = history("UtilityTask")[0]
    value = b"\xc3\x01" + fingerprint(old) + b"\x00"
    headers = dict(value_headers(value, codec))
    assert version == 1 and headers[SCHEMA] == b"ubridge.v1.UtilityTask"
    assert headers[FINGERPRINT] == fingerprint(old).hex().encode()


def test_json_values_tombstones_and_other_bytes() -> None:
    """JSON says so; a tombstone and bytes that are neither carry nothing that would mislead."""
    codec = Codec.default()
    assert value_headers(json.dumps({"cursor": "7"}).encode(), codec) == ((CONTENT_TYPE, JSON),)
    assert value_headers(None, codec) == ()
    assert value_headers(b"\xc3\x01" + b"\x00" * 8, codec) == ()  # an unknown fingerprint is not claimed
    assert value_headers(b"plain text", codec) == ()


def test_described_keeps_what_the_producer_said_and_adds_to_the_rest() -> None:
    """A producer's own content-type wins; otherwise the headers are appended after the existing ones."""
    codec = Codec.default()
    mine = Output("t", b"k", b"{}", ((CONTENT_TYPE, b"application/x-custom"),))
    assert described(mine, codec) is mine
    added = described(Output("t", b"k", b"{}", (("ubridge.source", b"s"),)), codec)
    assert added.headers == (("ubridge.source", b"s"), (CONTENT_TYPE, JSON))
