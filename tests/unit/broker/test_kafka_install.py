import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.broker import kafka_install
from connectors.broker.kafka_install import (
    BrokerError,
    PrerequisiteError,
    choose_ports,
    ensure_kafka,
    free_port,
    java_problem,
    kafka_cache,
    new_cluster_id,
    parse_java_major,
    port_is_free,
    render_properties,
    server_properties,
)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "17.0.1" 2021-10-19', 17),
        ("sh: 1: java: not found", None),
        ('openjdk version "" 2021-10-19', None),
    ],
)
def test_parse_java_major(output: str, expected: int | None) -> None:
    """The major version comes out of every `java -version` layout in use, or None from anything else."""
    assert expected == parse_java_major(output)


@given(major=st.integers(9, 99), minor=st.integers(0, 99), patch=st.integers(0, 999))
def test_parse_java_major_modern_scheme(major: int, minor: int, patch: int) -> None:
    """From Java 9 on the first number is the major version, whatever follows it."""
    assert major == parse_java_major(f'openjdk version "{major}.{minor}.{patch}" 2025-01-01')


def test_java_problem_accepts_17() -> None:
    """Java 17 is new enough."""
    assert java_problem('openjdk version "17.0.15" 2025-04-15') is None


@pytest.mark.parametrize("output", [None, 'openjdk version "11.0.2" 2019-01-15', "garbage"])
def test_java_problem_says_what_to_install(output: str | None) -> None:
    """A missing, old or unreadable Java yields one line that names the package to install."""
    problem = java_problem(output)
    assert problem is not None
    assert "\n" not in problem
    assert problem.endswith("apt-get install openjdk-17-jre-headless")


def test_java_problem_names_the_old_version() -> None:
    """The message for an old Java says which version was found."""
    assert "(found Java 11)" in (java_problem('openjdk version "11.0.2"') or "")


def test_server_properties_single_node_kraft() -> None:
    """The broker is a single KRaft node on 127.0.0.1 whose internal topics need one replica."""
    settings = server_properties(port=9092, controller_port=9093, data_dir=Path("/data"))
    expected = {
        "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
        "controller.quorum.bootstrap.servers": "127.0.0.1:9093",
        "log.dirs": "/data",
        "num.partitions": "3",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.message.timestamp.after.max.ms": "9223372036854775807",
    }
    assert expected == {key: settings[key] for key in expected}
    assert "auto.create.topics.enable" not in settings


def test_render_properties_round_trips() -> None:
    """Every setting becomes one `key=value` line after a comment header."""
    settings = {"node.id": "1", "log.dirs": "/var/lib/kafka"}
    lines = render_properties(settings).splitlines()
    assert lines[0].startswith("#")
    assert settings == dict(line.split("=", 1) for line in lines[1:])


def test_choose_ports_prefers_the_default() -> None:
    """With no port asked for, a free default port is used, and the controller gets another one."""
    default = free_port()
    broker, controller = choose_ports(None, default=default)
    assert default == broker
    assert controller != broker


def test_choose_ports_falls_back_when_default_is_taken(busy_port: int) -> None:
    """When the default port is taken, another free port is chosen instead of failing."""
    broker, controller = choose_ports(None, default=busy_port)
    assert busy_port not in (broker, controller)
    assert port_is_free(broker)


def test_choose_ports_zero_means_any(busy_port: int) -> None:
    """Port 0 asks for any free port, never a taken one."""
    broker, controller = choose_ports(0, default=busy_port)
    assert busy_port not in (broker, controller)
    assert broker != controller


def test_choose_ports_refuses_a_taken_explicit_port(busy_port: int) -> None:
    """An explicitly requested port that is taken is an error naming the port."""
    with pytest.raises(BrokerError, match=str(busy_port)):
        choose_ports(busy_port)


def test_new_cluster_id_is_kafka_uuid() -> None:
    """Cluster ids are 16 random bytes as 22 URL-safe base64 characters, never starting with a dash."""
    ids = {new_cluster_id() for _ in range(200)}
    assert 200 == len(ids)
    for cluster_id in ids:
        assert 22 == len(cluster_id)
        assert not cluster_id.startswith("-")
        assert 16 == len(base64.urlsafe_b64decode(cluster_id + "=="))


def test_kafka_cache_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$UBRIDGE_CACHE replaces the default jar cache directory."""
    monkeypatch.setenv("UBRIDGE_CACHE", str(tmp_path))
    assert tmp_path == kafka_cache()


def test_kafka_cache_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $UBRIDGE_CACHE the jars are cached per Kafka version under ~/.cache/ubridge."""
    monkeypatch.delenv("UBRIDGE_CACHE", raising=False)
    assert Path.home() / ".cache" / "ubridge" / "kafka-4.1.1" == kafka_cache()


def fake_maven(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace Maven by a stub that writes one jar; return the list of directories it filled."""
    filled: list[Path] = []

    def fetch(mvn: str, libs: Path) -> None:
        (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"jar")
        filled.append(libs)

    monkeypatch.setattr(kafka_install, "find_maven", lambda: "mvn")
    monkeypatch.setattr(kafka_install, "fetch_kafka", fetch)
    return filled


def test_ensure_kafka_fetches_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first call fetches and writes the marker; later calls reuse the jars without Maven."""
    filled = fake_maven(monkeypatch)
    progress: list[str] = []
    first = ensure_kafka(tmp_path, progress.append)
    second = ensure_kafka(tmp_path, progress.append)
    assert [tmp_path / "libs"] == filled
    assert first == second
    assert 1 == len(progress)
    assert "kafka_2.13-4.1.1.jar" in (tmp_path / "complete").read_text(encoding="utf-8")


def test_ensure_kafka_redoes_a_half_finished_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Jars without the marker are thrown away and fetched again."""
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "truncated.jar").write_bytes(b"ja")
    filled = fake_maven(monkeypatch)
    libs = ensure_kafka(tmp_path, lambda _line: None)
    assert [libs] == filled
    assert ["kafka_2.13-4.1.1.jar"] == sorted(path.name for path in libs.iterdir())


def test_ensure_kafka_needs_maven_only_to_fetch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Maven a first fetch fails with a one-line hint, and nothing is left behind."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PrerequisiteError, match="apt-get install maven"):
        ensure_kafka(tmp_path / "cache", lambda _line: None)
    assert not (tmp_path / "cache").exists()


def test_the_authorizer_trusts_the_broker_itself_and_the_named_super_users_only() -> None:
    """StandardAuthorizer on; super users: the loopback listeners' ANONYMOUS (the broker itself) and those named."""
    assert kafka_install.authorizer_properties(["ubridge"]) == {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS;User:ubridge",
    }
