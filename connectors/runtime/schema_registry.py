"""Values in the schema registry's wire format, when ``kafka.value_encoding`` is ``registry``.

Every Avro value is then ``00 | schema id (4 bytes, big-endian) | Avro binary body``, the framing of Confluent's
and Apicurio's serdes, against any registry that serves the Confluent Schema Registry REST API. At start-up
each record's current schema is registered under its topic's subject (``<topic>-value``, TopicNameStrategy;
``<topic>-<full name>`` on the ledger changelog, which holds two record types), with the subject's
compatibility set to the configured level (BACKWARD), so the registry refuses an incompatible change before
anything is written. Decoding resolves a writer schema by id once and caches it; single-object values (written
before the switch) still decode.

Example:
    >>> codec = registry_codec(settings)  # at start-up; raises SchemaRegistryError when refused
    >>> Codec.install(codec)
"""

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from connectors.settings import SchemaRegistrySettings, Settings
from routing.errors import DataError, UbridgeError
from schemas import NAMESPACE, RECORDS, Codec, Writer, load_current

MAGIC: Final = b"\x00"
_HEADER_LEN: Final = 5
_MEDIA: Final = "application/vnd.schemaregistry.v1+json"
# topic field of TopicNames → the records its values hold
TOPIC_RECORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "project_events": ("ProjectEvent",),
    "projects": ("ProjectEvent",),
    "applications": ("ConnectionApplication",),
    "hotline_work_orders": ("HotlineWorkOrder",),
    "hotline_return_visits": ("ReturnVisit",),
    "applications_awaiting": ("ConnectionApplication",),
    "payments": ("Payment",),
    "permits": ("PermitApplication",),
    "permit_status": ("PermitStatus",),
    "surveys": ("SurveyProposal",),
    "survey_replies": ("SurveyReply",),
    "tasks": ("UtilityTask",),
    "task_status": ("TaskStatus",),
    "sla": ("SlaEvent",),
    # the ledger's entries, and the statuses it holds back, kept as their original bytes
    "ledger_changelog": ("TaskLedgerEntry", "TaskStatus"),
    # the orders' entries, and the visits and closes held for orders not opened yet
    "complaints_ledger": ("ComplaintLedgerEntry", "ReturnVisit", "ComplaintClose"),
    "complaints_escalations": ("Escalation",),
    "complaints_closes": ("ComplaintClose",),
}


class SchemaRegistryError(UbridgeError):
    """The registry refused a schema or could not be reached; the message is one line for the user."""


def frame(schema_id: int) -> bytes:
    """The 5 bytes that precede a body written with schema ``schema_id``."""
    return MAGIC + schema_id.to_bytes(4, "big")


def schema_id_of(data: bytes) -> int | None:
    """The schema id of a registry-framed value, or None when ``data`` is not in that framing."""
    if len(data) < _HEADER_LEN or data[:1] != MAGIC:
        return None
    return int.from_bytes(data[1:_HEADER_LEN], "big")


def subjects(topics: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Subject → records registered under it, for ``topics`` (field of TopicNames → its full topic names)."""
    plan: dict[str, tuple[str, ...]] = {}
    for field, records in TOPIC_RECORDS.items():
        for topic in topics.get(field, ()):
            if len(records) == 1:
                plan[f"{topic}-value"] = records
            else:
                # TopicNameStrategy allows one record type per topic; TopicRecordNameStrategy names each
                plan.update({f"{topic}-{NAMESPACE}.{name}": (name,) for name in records})
    return plan


def topic_names(settings: Settings) -> dict[str, list[str]]:
    """Each field of :data:`TOPIC_RECORDS` → the topics it names here; ``tasks``: every utility's own topic."""
    names = {field: [settings.topic(field)] for field in TOPIC_RECORDS}
    names["tasks"] = [settings.task_topic(utility.id) for utility in settings.utilities]
    return names


def short_name(schema: Mapping[str, Any]) -> str:
    """``UtilityTask`` for a schema named ``ubridge.v1.UtilityTask`` (by full name, or name and namespace)."""
    name = str(schema.get("name", ""))
    full = name if "." in name else f"{schema.get('namespace', '')}.{name}"
    return full.removeprefix(f"{NAMESPACE}.")


class RegistryClient:
    """The few calls of the Confluent Schema Registry REST API that ubridge makes."""

    def __init__(self, settings: SchemaRegistrySettings) -> None:
        auth = None
        if settings.username is not None and settings.password is not None:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        verify: Any = str(settings.ca_file) if settings.ca_file is not None else True
        self._url = settings.url.rstrip("/")
        self._http = httpx.Client(
            auth=auth, verify=verify, timeout=settings.timeout_s, headers={"Content-Type": _MEDIA, "Accept": _MEDIA}
        )

    def set_compatibility(self, subject: str, level: str) -> None:
        """Make the registry check every new version of ``subject`` at ``level``."""
        self._call("PUT", f"/config/{quote(subject, safe='')}", {"compatibility": level}, what=f"set {level} on")

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (or find it there) and return its id."""
        body = {"schema": json.dumps(schema, separators=(",", ":")), "schemaType": "AVRO"}
        answer = self._call("POST", f"/subjects/{quote(subject, safe='')}/versions", body, what="register under")
        return int(answer["id"])

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        """The schema with ``schema_id``, or None when the registry has none."""
        try:
            response = self._http.get(f"{self._url}/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            msg = f"schema registry {self._url} unreachable: {exc}"
            raise SchemaRegistryError(msg) from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.is_error:
            msg = f"schema registry {self._url} answered {response.status_code} for schema id {schema_id}"
            raise SchemaRegistryError(msg)
        schema: dict[str, Any] = json.loads(response.json()["schema"])
        return schema

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        subject = path.split("/")[2]
        try:
            response = self._http.request(method, self._url + path, json=body)
        except httpx.HTTPError as exc:
            msg = f"schema registry {self._url} unreachable: {exc}"
            raise SchemaRegistryError(msg) from exc
        if response.is_error:
            try:
                reason = str(response.json().get("message", response.text))
            except ValueError:
                reason = response.text
            msg = f"schema registry refused to {what} subject {subject} ({response.status_code}): {reason[:300]}"
            raise SchemaRegistryError(msg)
        answer: dict[str, Any] = response.json()
        return answer


class RegistryCodec(Codec):
    """:class:`Codec` writing the registry's framing with the ids registered at start-up."""

    content_type = b"avro/binary; encoding=schema-registry"

    def __init__(self, client: RegistryClient, ids: Mapping[str, int]) -> None:
        super().__init__()
        self._client = client
        self._ids = dict(ids)
        self._by_id: dict[int, Writer] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the registry client's connections (the process-wide codec lives as long as the process)."""
        self._client.close()

    def _prefix(self, name: str) -> bytes:
        return frame(self._ids[name])

    def _resolve(self, data: bytes) -> tuple[Writer, int]:
        schema_id = schema_id_of(data)
        if schema_id is None:
            return super()._resolve(data)
        with self._lock:
            found = self._by_id.get(schema_id)
        if found is None:
            schema = self._client.schema(schema_id)
            if schema is None:
                raise DataError("", f"unknown schema id {schema_id}")
            name = short_name(schema)
            if name not in RECORDS:
                raise DataError("", f"schema id {schema_id} is {name}, not a ubridge record")
            found = Writer.of(name, schema)
            with self._lock:
                self._by_id[schema_id] = found
        return found, _HEADER_LEN


def register(
    client: RegistryClient, plan: Mapping[str, tuple[str, ...]], schemas: Mapping[str, dict[str, Any]], level: str
) -> dict[str, int]:
    """Register every record of ``plan`` under its subject at ``level``; record name → schema id.

    Raises:
        SchemaRegistryError: the registry refused a schema (incompatible with a version it holds) or is down.
    """
    ids: dict[str, int] = {}
    for subject, records in plan.items():
        client.set_compatibility(subject, level)
        for name in records:
            # the same schema gets the same id under every subject; the first is the one written
            ids.setdefault(name, client.register(subject, schemas[name]))
    return ids


def codec_for(settings: Settings, schemas: Mapping[str, dict[str, Any]] | None = None) -> Codec:
    """The codec of the configured value encoding; with ``registry``, schemas registered first.

    Args:
        settings: The process's configuration.
        schemas: Record name → schema to register (the current ``.avsc`` files if None).

    Raises:
        SchemaRegistryError: the registry refused a schema or could not be reached.
    """
    registry = settings.schema_registry
    if settings.kafka.value_encoding != "registry" or registry is None:
        return Codec()
    client = RegistryClient(registry)
    plan = subjects(topic_names(settings))
    current = schemas if schemas is not None else {name: load_current(name) for name in RECORDS}
    try:
        ids = register(client, plan, current, registry.compatibility)
    except SchemaRegistryError:
        client.close()
        raise
    return RegistryCodec(client, ids)
