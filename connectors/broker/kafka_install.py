"""Everything the local broker needs before it can start: a JDK, the Kafka jars, a ``server.properties``.

The jars come from Maven Central once (DESIGN §10), into a cache shared by every broker home; a marker file
written after a complete copy tells a finished download from a half-finished one. The checks are pure
functions over ``java -version`` output so they can be tested without a JDK.

Errors, each with a one-line message meant for the user::

    UbridgeError                  (routing.errors)
     └── BrokerError              the broker could not be fetched, started or stopped
          └── PrerequisiteError   a JDK 17+ or Maven is missing; the message says what to install
"""

import base64
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import structlog

from connectors.broker.tls import LocalPki
from routing.errors import UbridgeError

KAFKA_VERSION: Final = "4.1.1"
MIN_JAVA: Final = 17
DEFAULT_PORT: Final = 9092
DEPLOY_DIR: Final = Path(__file__).resolve().parents[2] / "deploy" / "local"

_MARKER: Final = "complete"
_JAVA_HINT: Final = "apt-get install openjdk-17-jre-headless"
_log = structlog.get_logger()


class BrokerError(UbridgeError):
    """The local broker could not be started, stopped or found; the message is one line for the user."""


class PrerequisiteError(BrokerError):
    """A tool the local broker needs (JDK, Maven) is missing; the message says what to install."""


def parse_java_major(version_output: str) -> int | None:
    """The major Java version in ``java -version`` output, or None when there is none.

    Args:
        version_output: What ``java -version`` printed, e.g. ``openjdk version "17.0.15" 2025-04-15``.

    Returns:
        17 for ``"17.0.15"``, 21 for ``"21-ea"``, 8 for the legacy ``"1.8.0_392"`` scheme.
    """
    _, found, rest = version_output.partition('version "')
    if not found:
        return None
    parts = rest.split('"', 1)[0].replace("-", ".").replace("_", ".").split(".")
    numbers = [int(part) for part in parts[:2] if part.isdigit()]
    if not numbers:
        return None
    # Java 8 and older report "1.<major>"; from 9 on the major comes first.
    return numbers[1] if numbers[0] == 1 and len(numbers) > 1 else numbers[0]


def java_problem(version_output: str | None) -> str | None:
    """Why this Java cannot run the broker, or None when it can; ``None`` output means no ``java`` at all."""
    required = f"Java {MIN_JAVA} or newer is required to run the local Kafka broker"
    if version_output is None:
        return f"{required}: {_JAVA_HINT}"
    major = parse_java_major(version_output)
    if major is None:
        return f"{required} but `java -version` did not say which version it is: {_JAVA_HINT}"
    if major < MIN_JAVA:
        return f"{required} (found Java {major}): {_JAVA_HINT}"
    return None


def find_java() -> str:
    """Path of a ``java`` that can run Kafka, preferring ``$JAVA_HOME``.

    Raises:
        PrerequisiteError: No JDK, or one older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    home_java = Path(java_home, "bin", "java") if java_home else None
    java = str(home_java) if home_java and home_java.is_file() else shutil.which("java")
    if java is None:
        raise PrerequisiteError(java_problem(None))
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)  # noqa: S603
    problem = java_problem(done.stderr + done.stdout)
    if problem is not None:
        raise PrerequisiteError(problem)
    return java


def kafka_cache() -> Path:
    """Where the Kafka jars are cached: ``$UBRIDGE_CACHE``, else ``~/.cache/ubridge/kafka-<version>``."""
    override = os.environ.get("UBRIDGE_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "ubridge" / f"kafka-{KAFKA_VERSION}"


def find_maven() -> str:
    """Path of ``mvn``.

    Raises:
        PrerequisiteError: Maven is not installed.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        msg = f"Maven is required to fetch Apache Kafka {KAFKA_VERSION} once: apt-get install maven"
        raise PrerequisiteError(msg)
    return mvn


def fetch_kafka(mvn: str, libs: Path) -> None:
    """Copy Kafka and its runtime dependencies from Maven Central into ``libs`` (needs the network once).

    Raises:
        BrokerError: Maven failed, e.g. offline on the very first start.
    """
    pom = DEPLOY_DIR / "pom.xml"
    if not pom.is_file():
        msg = f"{pom} is missing; the local broker runs from a source checkout of ubridge"
        raise BrokerError(msg)
    goal = ["-B", "-f", str(pom), "dependency:copy-dependencies"]
    goal += ["-DincludeScope=runtime", f"-DoutputDirectory={libs}"]
    done = subprocess.run([mvn, "-q", *goal], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        msg = f"Maven could not fetch Apache Kafka {KAFKA_VERSION}; to see why, run: mvn {' '.join(goal)}"
        raise BrokerError(msg)


def ensure_kafka(cache: Path, progress: Callable[[str], None]) -> Path:
    """The directory of Kafka jars under ``cache``, fetching them unless a complete copy is already there."""
    libs = cache / "libs"
    marker = cache / _MARKER
    if marker.is_file():
        return libs
    mvn = find_maven()
    progress(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {cache} (only once)")
    # Whatever a half-finished copy left behind may be truncated, so start from nothing.
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    fetch_kafka(mvn, libs)
    jars = sorted(path.name for path in libs.glob("*.jar"))
    marker.write_text("\n".join(jars) + "\n", encoding="utf-8")
    _log.info("kafka_fetched", version=KAFKA_VERSION, cache=str(cache), jars=len(jars))
    return libs


def new_cluster_id() -> str:
    """A random KRaft cluster id in Kafka's own form: a UUID as 22 characters of URL-safe base64."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Kafka's own generator skips ids starting with "-" because command lines take them for options.
        if not cluster_id.startswith("-"):
            return cluster_id


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVM binds its listeners: connections of a broker just stopped, still in TIME_WAIT, do not
        # keep a restarted one from its port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that the kernel says is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def choose_ports(port: int | None, *, default: int = DEFAULT_PORT) -> tuple[int, int]:
    """The broker and controller ports to listen on.

    Args:
        port: None for ``default`` or, when that is taken, any free port; 0 for any free port; else exactly
            this port.
        default: The port tried first when ``port`` is None.

    Returns:
        ``(broker_port, controller_port)``, two different free ports.

    Raises:
        BrokerError: ``port`` was given explicitly and is taken.
    """
    if port is None:
        broker = default if port_is_free(default) else free_port()
    elif port == 0:
        broker = free_port()
    elif port_is_free(port):
        broker = port
    else:
        msg = f"port {port} on 127.0.0.1 is already in use; pick another with --port"
        raise BrokerError(msg)
    controller = free_port()
    while controller == broker:
        controller = free_port()
    return broker, controller


_SCRAM_MODULE: Final = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_MODULE: Final = "org.apache.kafka.common.security.plain.PlainLoginModule"


def server_properties(*, port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """The settings of a single-node KRaft broker on 127.0.0.1 sized for a laptop (DESIGN §10)."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Kafka 4 refuses records stamped over an hour ahead of the broker's clock; the demo and tests run
        # ubridge on a clock set in years the calendar must handle (2027, 2028) against this real-time broker.
        "log.message.timestamp.after.max.ms": str(2**63 - 1),
    }


def secure_properties(
    *, port: int, internal_port: int, controller_port: int, pki: LocalPki, users: Mapping[str, str]
) -> dict[str, str]:
    """Overrides of :func:`server_properties` for a SASL_SSL client listener (the SCRAM users are added at format).

    The broker talks to itself over a PLAINTEXT listener on 127.0.0.1, which the local tooling also uses to
    see whether the broker answers.
    """
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},"
        f"CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{_SCRAM_MODULE} required;",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": f"{_PLAIN_MODULE} required {plain_users};",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca_file),
        # a client certificate is checked when one is sent (mutual TLS), not required: SASL names the client
        "ssl.client.auth": "requested",
    }


def authorizer_properties(super_users: Sequence[str]) -> dict[str, str]:
    """The KRaft ``StandardAuthorizer``: clients need ACLs, but for ``super_users`` and the broker itself.

    The broker reaches itself and its controller over PLAINTEXT on 127.0.0.1, as ``User:ANONYMOUS``, which must
    therefore be a super user too: on this laptop broker, a client of those loopback listeners is trusted.
    """
    principals = ["User:ANONYMOUS", *(f"User:{user}" for user in super_users)]
    return {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": ";".join(principals),
    }


def render_properties(settings: Mapping[str, str]) -> str:
    """``settings`` as the text of a Java properties file."""
    lines = ["# Written by `ubridge broker start` on every start; edits here are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"
