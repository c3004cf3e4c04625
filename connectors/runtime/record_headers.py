"""Headers that say what a record is, so consumers outside ubridge (Java, Flink, Kafka Connect, kcat) can tell.

Every record ubridge writes carries ``content-type`` and, for Avro values, the writer schema's full name and
its CRC-64-AVRO fingerprint (the same 8 bytes as in the value's single-object header, as hex):

* ``content-type: avro/binary; encoding=single-object`` (the Avro specification's media type, and how the
  value is framed: ``C3 01`` + fingerprint + body), with ``ubridge.schema: ubridge.v1.UtilityTask`` and
  ``ubridge.schema.fingerprint: <16 hex digits>``;
* ``content-type: avro/binary; encoding=schema-registry`` when ``kafka.value_encoding`` is ``registry``
  (``00`` + 4-byte schema id + body), with the same two schema headers;
* ``content-type: application/json`` for the JSON values (raw events, cursors, revisions, grants).

Tombstones carry none: they have no value to describe.
"""

from functools import cache
from typing import Final

from connectors.runtime.interface import Headers, Output
from schemas import NAMESPACE, Codec

CONTENT_TYPE: Final = "content-type"
SCHEMA: Final = "ubridge.schema"
FINGERPRINT: Final = "ubridge.schema.fingerprint"
AVRO: Final = Codec.content_type
JSON: Final = b"application/json"


def value_headers(value: bytes | None, codec: Codec) -> Headers:
    """The headers describing ``value`` (none for a tombstone)."""
    if value is None:
        return ()
    writer = codec.writer_of(value)
    if writer is not None:
        return _avro_headers(codec.content_type, writer.name, writer.fingerprint)
    return ((CONTENT_TYPE, JSON),) if value[:1] in (b"{", b"[") else ()


@cache  # one entry per published schema version and framing; a stage writes each record's headers from it
def _avro_headers(content_type: bytes, name: str, fingerprint: str) -> Headers:
    return ((CONTENT_TYPE, content_type), (SCHEMA, f"{NAMESPACE}.{name}".encode()), (FINGERPRINT, fingerprint.encode()))


def described(output: Output, codec: Codec) -> Output:
    """``output`` with the headers of :func:`value_headers`, unless its producer set them already."""
    if any(name == CONTENT_TYPE for name, _ in output.headers):
        return output
    headers = value_headers(output.value, codec)
    if not headers:
        return output
    # built field by field: dataclasses.replace introspects the class on every call, and this runs per record
    return Output(output.topic, output.key, output.value, (*output.headers, *headers), output.partition)
