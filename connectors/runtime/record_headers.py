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

from typing import Final

from connectors.runtime.interface import Headers, Output
from schemas import Codec

CONTENT_TYPE: Final = "content-type"
SCHEMA: Final = "ubridge.schema"
FINGERPRINT: Final = "ubridge.schema.fingerprint"
AVRO: Final = Codec.content_type
JSON: Final = b"application/json"


def value_headers(value: bytes | None, codec: Codec) -> Headers:
    """The headers describing ``value`` (none for a tombstone)."""
    if value is None:
        return ()
    name = codec.schema_of(value)
    fingerprint = codec.fingerprint_of(value)
    if name is not None and fingerprint is not None:
        return ((CONTENT_TYPE, codec.content_type), (SCHEMA, name.encode()), (FINGERPRINT, fingerprint.encode()))
    return ((CONTENT_TYPE, JSON),) if value[:1] in (b"{", b"[") else ()


def described(output: Output, codec: Codec) -> Output:
    """``output`` with the headers of :func:`value_headers`, unless its producer set them already."""
    if any(name == CONTENT_TYPE for name, _ in output.headers):
        return output
    headers = value_headers(output.value, codec)
    if not headers:
        return output
    # built field by field: dataclasses.replace introspects the class on every call, and this runs per record
    return Output(output.topic, output.key, output.value, (*output.headers, *headers), output.partition)
