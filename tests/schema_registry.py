"""A real schema registry for integration tests: Apicurio Registry, built from Maven Central, in-memory storage.

Apicurio Registry 3.x cannot be assembled from what this machine's Maven mirror serves (its own modules
``apicurio-registry-schema-util-provider`` and ``-contracts-rules`` 3.3.3 are missing), nor 2.6.x (the same
provider module); 2.4.2.Final resolves once its JSON-schema validator (not on Central) is left out. Its
``/apis/ccompat/v7`` endpoint speaks the Confluent Schema Registry REST API. ``tests/java/apicurio-registry``
is a Quarkus build of ``apicurio-registry-app`` (a jar without a Jandex index, so it is indexed at build time);
``tests/java/registry-consumer`` is a Java consumer using Apicurio's own Avro deserializer. Both are built once
into ``~/.cache/ubridge/java/`` and reused.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

JAVA_DIR = Path(__file__).parent / "java"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ubridge" / "java"
_INDEX_APP = (
    "-Dquarkus.index-dependency.registry-app.group-id=io.apicurio",
    "-Dquarkus.index-dependency.registry-app.artifact-id=apicurio-registry-app",
)


def _digest(source: Path) -> str:
    files = sorted(p for p in source.rglob("*") if p.is_file())
    blob = b"".join(p.relative_to(source).as_posix().encode() + p.read_bytes() for p in files)
    return hashlib.sha256(blob).hexdigest()[:12]


def build(name: str, *goals: str) -> Path:
    """Build ``tests/java/<name>`` with Maven once per content; the build directory (with ``target/``)."""
    source = JAVA_DIR / name
    home = CACHE / f"{name}-{_digest(source)}"
    if (home / "complete").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source, home)
    mvn = shutil.which("mvn")
    if mvn is None:
        message = "Maven is required to build the test registry and consumer: apt-get install maven"
        raise RuntimeError(message)
    done = subprocess.run([mvn, "-B", "-q", *goals], cwd=home, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = f"mvn {' '.join(goals)} failed in {home}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        raise RuntimeError(message)
    (home / "complete").touch()
    return home


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_registry(log: Path) -> Iterator[str]:
    """Start Apicurio Registry on a free port; yields its base URL (``http://127.0.0.1:<port>``)."""
    home = build("apicurio-registry", "package", "-DskipTests", *_INDEX_APP)
    runner = next((home / "target").glob("*-runner.jar"))
    port = _free_port()
    env = {**os.environ, "HTTP_PORT": str(port)}
    command = ["java", "-Dquarkus.http.host=127.0.0.1", "-jar", str(runner)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/apis/ccompat/v7/subjects", timeout=2).status_code == httpx.codes.OK:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                message = f"Apicurio Registry did not start; see {log}"
                raise RuntimeError(message)
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def consume_with_java(bootstrap: str, topic: str, registry: str, count: int) -> list[tuple[str, str, str]]:
    """``count`` records of ``topic`` as Apicurio's Avro deserializer reads them: (key, schema name, Avro JSON)."""
    home = build("registry-consumer", "package", "dependency:copy-dependencies", "-DoutputDirectory=target/lib")
    classpath = f"{home / 'target' / 'classes'}:{home / 'target' / 'lib'}/*"
    done = subprocess.run(
        [
            "java",
            "-cp",
            classpath,
            "ubridge.check.Consume",
            bootstrap,
            topic,
            f"{registry}/apis/registry/v2",
            str(count),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        message = f"the Java consumer failed: {done.stderr[-3000:]}"
        raise RuntimeError(message)
    rows = [line.split("\t", 2) for line in done.stdout.splitlines() if line]
    return [(key, name, body) for key, name, body in rows]
