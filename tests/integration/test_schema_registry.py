"""The registry value encoding against a real Apicurio Registry and a real broker, read back by Java."""

import copy
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
import yaml

from connectors.app import App
from connectors.cli import main
from connectors.registry import topics
from connectors.router.stage import ProjectRouter
from connectors.runtime.interface import Output
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.record_headers import described
from connectors.runtime.schema_registry import RegistryCodec, SchemaRegistryError, codec_for
from connectors.settings import Settings, parse_settings
from routing.gonggai import normalise
from routing.records import ProjectEvent
from schemas import RECORDS, Codec, load_current
from tests.schema_registry import consume_with_java
from tests.support import YANTAI_WATER_AREAS, make_task, read_topic, settings_for, utility_config, wait_until

PROJECT = "2026-370602-47-01-000123"


def granted_event(seq: int, stage: int) -> ProjectEvent:
    """A granted approval-system event of PROJECT (water, 芝罘区) at ``stage``."""
    fields: dict[str, Any] = {
        "seq": seq,
        "xmdm": PROJECT,
        "xmmc": "幸福里三期",
        "jsddxzqh": "370602",
        "jsdw": "烟台市幸福置业有限公司",
        "dybzspjdxh": stage,
        "spsxslbm": f"i-{seq}",
        "blzt": 11,
        "blsj": f"2026-11-2{stage} 10:00:00",
        "sjyxbs": 1,
        "xqxx": [{"fwlx": "供水"}],
    }
    return normalise(fields, source="gonggai-interface", ingested_at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC))


def registry_settings(bootstrap: str, registry: str, prefix: str) -> Settings:
    return parse_settings(
        {
            "routing": {"service_areas": "areas.yaml"},
            "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix, "value_encoding": "registry"},
            "schema_registry": {"url": f"{registry}/apis/ccompat/v7"},
            "utilities": [utility_config("yantai-water", "http://127.0.0.1:9")],
        }
    )


def registered(settings: Settings, schemas: dict[str, dict[str, Any]] | None = None) -> RegistryCodec:
    """Start-up's registration, returning the registry codec."""
    codec = codec_for(settings, schemas)
    assert isinstance(codec, RegistryCodec)
    return codec


def test_start_up_registers_every_subject_with_backward_compatibility(
    kafka_bootstrap: str, schema_registry_url: str, unique_prefix: str
) -> None:
    """Each record's subject exists after start-up and the registry holds it to BACKWARD."""
    registered(registry_settings(kafka_bootstrap, schema_registry_url, unique_prefix)).close()
    ccompat = f"{schema_registry_url}/apis/ccompat/v7"
    subjects = set(httpx.get(f"{ccompat}/subjects").json())
    expected = {
        f"{unique_prefix}ubridge.tasks.yantai-water.v1-value",
        f"{unique_prefix}ubridge.canonical.project-events.v1-value",
        f"{unique_prefix}ubridge.ledger.changelog.v1-ubridge.v1.TaskLedgerEntry",
        f"{unique_prefix}ubridge.ledger.changelog.v1-ubridge.v1.TaskStatus",
    }
    assert expected <= subjects
    for subject in expected:
        assert httpx.get(f"{ccompat}/config/{subject}").json()["compatibilityLevel"] == "BACKWARD"


def test_an_incompatible_schema_change_stops_start_up(
    kafka_bootstrap: str, schema_registry_url: str, unique_prefix: str
) -> None:
    """A new field without a default is refused by the registry, with the subject and its reason."""
    settings = registry_settings(kafka_bootstrap, schema_registry_url, unique_prefix)
    registered(settings).close()
    changed: dict[str, dict[str, Any]] = {name: load_current(name) for name in RECORDS}
    changed["UtilityTask"] = copy.deepcopy(changed["UtilityTask"])
    changed["UtilityTask"]["fields"].append({"name": "meter_serial", "type": "string"})
    subject = f"{unique_prefix}ubridge.tasks.yantai-water.v1-value".replace(".", r"\.")
    with pytest.raises(
        SchemaRegistryError, match=rf"refused to register under subject {subject} \(409\): .*meter_serial"
    ):
        codec_for(settings, changed)


def test_a_java_consumer_with_apicurios_deserializer_reads_ubridge_records(
    kafka_bootstrap: str,
    schema_registry_url: str,
    unique_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tasks written in the registry framing decode in Java to the same Avro data; `ubridge tail` reads them too."""
    settings = registry_settings(kafka_bootstrap, schema_registry_url, unique_prefix)
    codec = registered(settings)
    topic = settings.task_topic("yantai-water")
    ensure_topics(settings.kafka, [TopicSpec(topic, 1)])
    tasks = [dict(make_task("yantai-water", n)) for n in range(5)]
    producer = make_producer(settings.kafka)
    for task in tasks:
        output = described(Output(topic, task["project_code"].encode(), codec.encode("UtilityTask", task)), codec)
        producer.send(topic, key=output.key, value=output.value, headers=list(output.headers))
    producer.flush()
    producer.close()
    codec.close()
    path = tmp_path / "ubridge.yaml"
    document = {"routing": {"service_areas": "areas.yaml"}, "kafka": settings.kafka.model_dump(mode="json")}
    path.write_text(yaml.safe_dump({**document, "schema_registry": {"url": f"{schema_registry_url}/apis/ccompat/v7"}}))
    assert main(["tail", topic, "--config", str(path), "--from-beginning", "--max", str(len(tasks))]) == 0
    tailed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["schema"], line["value"]["task_id"]) for line in tailed] == [
        ("ubridge.v1.UtilityTask", task["task_id"]) for task in tasks
    ]
    started = time.monotonic()
    rows = consume_with_java(kafka_bootstrap, topic, schema_registry_url, len(tasks))
    print(f"java consumer read {len(rows)} records in {time.monotonic() - started:.1f} s")
    schema = fastavro.parse_schema(load_current("UtilityTask"))
    for (key, name, body), task in zip(rows, tasks, strict=True):
        out = io.StringIO()
        fastavro.json_writer(out, schema, [task])
        assert (key, name) == (task["project_code"], "ubridge.v1.UtilityTask")
        assert json.loads(body) == json.loads(out.getvalue())


def test_ubridge_run_refused_by_the_registry_says_why_in_one_line(
    kafka_bootstrap: str,
    schema_registry_url: str,
    unique_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A subject holding a schema ubridge's current one cannot read makes `ubridge run` exit 2 with the reason."""
    ccompat = f"{schema_registry_url}/apis/ccompat/v7"
    subject = f"{unique_prefix}ubridge.tasks.yantai-water.v1-value"
    older = {"type": "record", "name": "UtilityTask", "namespace": "ubridge.v1", "fields": []}
    answer = httpx.post(f"{ccompat}/subjects/{subject}/versions", json={"schema": json.dumps(older)})
    assert answer.status_code == httpx.codes.OK
    utility = {"id": "yantai-water", "endpoint": "http://w/v1/tasks", "auth": {"type": "bearer", "token": "t"}}
    document = {
        "kafka": {"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "value_encoding": "registry"},
        "schema_registry": {"url": ccompat},
        "observability": {"metrics_port": 0},
        "routing": {"service_areas": str(YANTAI_WATER_AREAS)},
        "utilities": [utility],
    }
    path = tmp_path / "ubridge.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ubridge: schema registry refused to register under subject {subject} (409): ")


def test_the_router_run_by_the_app_writes_tasks_java_reads(
    kafka_bootstrap: str, schema_registry_url: str, unique_prefix: str
) -> None:
    """`ubridge run` with the registry encoding: events written before the switch route to tasks Java decodes."""
    kafka = {"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix, "value_encoding": "registry"}
    settings = settings_for(
        kafka_bootstrap,
        unique_prefix,
        kafka=kafka,
        schema_registry={"url": f"{schema_registry_url}/apis/ccompat/v7"},
        utilities=[utility_config("yantai-water", "http://127.0.0.1:9")],
    )
    ensure_topics(settings.kafka, topics(settings))
    producer = make_producer(settings.kafka)
    single_object = Codec()  # events already on the topic when the encoding was switched
    for n, stage in enumerate((1, 2, 3)):
        value = single_object.encode("ProjectEvent", dict(granted_event(n, stage)))
        producer.send(settings.topic("project_events"), key=PROJECT.encode(), value=value)
    producer.flush()
    producer.close()
    app = App(settings, only=[ProjectRouter.stage], serve_metrics=False)
    try:
        app.start()
        codec = Codec.default()
        assert isinstance(codec, RegistryCodec)
        wait_until(
            lambda: len(read_topic(kafka_bootstrap, settings.task_topic("yantai-water"), timeout_s=2)) >= 1,
            timeout_s=60,
            what="tasks routed",
        )
    finally:
        app.stop()
        app.wait(timeout_s=30)
    records = read_topic(kafka_bootstrap, settings.task_topic("yantai-water"))
    assert {dict(r.headers)["content-type"] for r in records} == {b"avro/binary; encoding=schema-registry"}
    rows = consume_with_java(kafka_bootstrap, settings.task_topic("yantai-water"), schema_registry_url, len(records))
    schema = fastavro.parse_schema(load_current("UtilityTask"))
    expected = []
    for record in records:
        out = io.StringIO()
        fastavro.json_writer(out, schema, [codec.decode_as("UtilityTask", record.value)])
        expected.append((record.key.decode(), "ubridge.v1.UtilityTask", json.loads(out.getvalue())))
    codec.close()
    Codec.install(Codec())
    read = [(key, name, json.loads(body)) for key, name, body in rows]
    assert sorted(read, key=repr) == sorted(expected, key=repr)
