"""``ubridge tail <topic>``: any ubridge topic's records, decoded, as JSON lines (for operators).

Avro single-object records are decoded through the published schemas, raw topics print their JSON, dead
letters show their error context. Personal data is masked unless ``--unmasked`` is given.
"""

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.runtime.dlq import PREFIX, error_context
from routing.errors import DataError
from routing.privacy import mask_text
from schemas import MAGIC, Codec


def render(record: ConsumerRecord, codec: Codec, *, masked: bool) -> dict[str, Any]:
    """One record as a JSON-ready mapping: where it is, its key, its decoded value, its error context."""
    schema, value = _decode(record.value, codec)
    headers = record.headers or []
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="milliseconds"),
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
        "schema": schema,
        "value": value,
    }
    context = error_context(headers)
    if context:
        line["error"] = context
    other = {name: v.decode("utf-8", "replace") for name, v in headers if not name.startswith(PREFIX)}
    if other:
        line["headers"] = other
    return _mask(line) if masked else line


def _decode(value: bytes | None, codec: Codec) -> tuple[str | None, Any]:
    if value is None:
        return None, None
    # an Avro value in the codec's framing, or a single-object one it cannot place (reported as undecodable)
    if value[:2] == MAGIC or codec.schema_of(value) is not None:
        try:
            name, record = codec.decode(value)
        except DataError as exc:
            return "undecodable", {"error": str(exc), "base64": base64.b64encode(value).decode()}
        return f"ubridge.v1.{name}", record
    try:
        return "json", json.loads(value)
    except ValueError:
        return "bytes", base64.b64encode(value).decode()


def _mask(node: Any) -> Any:
    if isinstance(node, str):
        return mask_text(node)
    if isinstance(node, dict):
        return {k: _mask(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v) for v in node]
    return node


def follow(
    consumer: KafkaConsumer, topic: str, *, from_beginning: bool, idle_timeout_s: float | None
) -> Iterator[ConsumerRecord]:
    """Records of every partition of ``topic``, without joining a consumer group.

    Raises:
        LookupError: the topic does not exist.
    """
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        message = f"topic {topic} does not exist"
        raise LookupError(message)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    if from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        consumer.seek_to_end(*assigned)
    idle = 0.0
    while idle_timeout_s is None or idle < idle_timeout_s:
        batch = consumer.poll(timeout_ms=500)
        idle = 0.0 if batch else idle + 0.5
        for tp in sorted(batch, key=lambda t: t.partition):
            yield from batch[tp]


def dumps(line: dict[str, Any]) -> str:
    """A rendered record as one JSON line (times as ISO-8601)."""
    return json.dumps(line, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    message = f"cannot render {type(value).__name__}"
    raise TypeError(message)
