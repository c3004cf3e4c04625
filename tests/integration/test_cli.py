import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from connectors.cli import main
from connectors.runtime.dlq import dead_letter
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.settings import KafkaSettings
from routing.errors import DataError
from schemas import Codec
from tests.support import NOW, YANTAI_WATER_AREAS, make_task, read_topic

pytestmark = pytest.mark.integration


def test_tail_prints_decoded_records_masked(
    kafka_bootstrap: str, unique_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tail prints an Avro task decoded, raw JSON as JSON and a dead letter with its error, masking phones."""
    topic = f"{unique_prefix}mixed"
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    ensure_topics(kafka, [TopicSpec(topic, 1)])
    producer = make_producer(kafka)
    task = make_task("yantai-water", 1)
    producer.send(topic, key=b"p", value=Codec.default().encode("UtilityTask", dict(task)))
    producer.send(topic, key=b"p", value=b'{"lxrsjh": "13912345678"}')
    producer.flush()
    raw = read_topic(kafka_bootstrap, topic)[1]
    letter = dead_letter(raw, DataError("xmdm", "malformed"), stage="normaliser-gonggai", topic=topic, now=NOW)
    producer.send(letter.topic, key=letter.key, value=letter.value, headers=list(letter.headers))
    producer.flush()
    producer.close()

    code = main(["tail", topic, "--bootstrap", kafka_bootstrap, "--from-beginning", "--max", "3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["schema"] for line in lines] == ["ubridge.v1.UtilityTask", "json", "json"]
    assert lines[0]["value"]["task_id"] == "yantai-water-00001"
    assert lines[0]["value"]["contact_mobile"] == "139****5678"
    assert lines[1]["value"] == {"lxrsjh": "139****5678"}
    assert (lines[2]["error"]["stage"], lines[2]["error"]["field"]) == ("normaliser-gonggai", "xmdm")


def test_tail_of_a_missing_topic_says_so(kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A topic that does not exist is an error message and exit code 2, not a hang."""
    assert main(["tail", "no-such-topic-here", "--bootstrap", kafka_bootstrap, "--max", "1"]) == 2
    assert "no-such-topic-here does not exist" in capsys.readouterr().err


def test_config_check_lists_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file is reported valid with the stages it would run."""
    path = tmp_path / "ubridge.yaml"
    utility = {"id": "yantai-water", "endpoint": "http://w/v1/tasks", "auth": {"type": "bearer", "token": "x"}}
    document = {
        "observability": {"metrics_port": 0},
        "routing": {"service_areas": str(YANTAI_WATER_AREAS)},
        "utilities": [utility],
    }
    path.write_text(yaml.safe_dump(document))
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  stage normaliser-gonggai",
        "  stage router",
        "  stage sink-yantai-water",
    ]


def test_run_with_a_bad_config_names_the_key(tmp_path: Path) -> None:
    """`ubridge run` on a bad file exits 2 naming the file and the key, with no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text("routing: {service_areas: a.yaml}\nkafka: {partitons: 3}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}: kafka.partitons: Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_an_unknown_stage_lists_the_configured_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asking for a stage the configuration does not define is refused with the list of stages."""
    path = tmp_path / "ubridge.yaml"
    utility = {"id": "yantai-water", "endpoint": "http://w/v1/tasks", "auth": {"type": "bearer", "token": "x"}}
    document = {
        "observability": {"metrics_port": 0},
        "routing": {"service_areas": str(YANTAI_WATER_AREAS)},
        "utilities": [utility],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert main(["run", "--config", str(path), "--stage", "sink-nowhere"]) == 2
    expected = "unknown stage(s) sink-nowhere; configured: normaliser-gonggai, router, sink-yantai-water"
    assert expected in capsys.readouterr().err
