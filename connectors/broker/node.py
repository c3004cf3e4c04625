"""One Kafka JVM of a local broker or cluster: launched detached from its caller, waited for, stopped.

A node lives in a *home* directory holding its ``server.properties``, its data, its logs and its console
output (``broker.out``); :func:`is_our_broker` tells it from a process that got its pid after it died.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import structlog

from connectors.broker.kafka_install import DEPLOY_DIR, BrokerError, render_properties

PROPERTIES_FILE: Final = "server.properties"
OUTPUT_FILE: Final = "broker.out"
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
# C1 only: the broker answers about a second sooner, and a laptop broker never needs the speed C2 buys later.
_JVM_OPTIONS: Final = ("-Xms128m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
_POLL_S: Final = 0.2
_REPORT_EVERY_S: Final = 10.0
_log = structlog.get_logger()


def configure_node(
    home: Path,
    settings: Mapping[str, str],
    *,
    java: str,
    libs: Path,
    cluster_id: str,
    format_args: Sequence[str] = (),
    what: str,
    report: Callable[[str], None],
) -> None:
    """Write the node's ``server.properties``; format its storage the first time (``what`` names it in messages).

    Raises:
        BrokerError: Kafka's storage tool refused to format it (its last line says why).
    """
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    (home / PROPERTIES_FILE).write_text(render_properties(settings), encoding="utf-8")
    if (data / "meta.properties").is_file():
        return
    report(f"formatting {what} in {data}")
    # Without meta.properties an earlier format did not finish; its leftovers would make this one fail.
    shutil.rmtree(data, ignore_errors=True)
    command = [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format", *format_args]
    command += ["-t", cluster_id, "-c", str(home / PROPERTIES_FILE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        last_line = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        msg = f"formatting {what} in {data} failed: {last_line[0]}"
        raise BrokerError(msg)


def launch(java: str, libs: Path, home: Path, *, heap: str = "512m") -> int:
    """Start the broker of ``home`` (its ``server.properties``) detached from the caller; its pid."""
    logging_options = [
        f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={home / 'logs'}",
        # Kafka shuts down in a JVM shutdown hook; log4j's own hook would close the log before it finishes.
        "-Dlog4j2.shutdownHookEnabled=false",
    ]
    command = [java, f"-Xmx{heap}", *_JVM_OPTIONS, *logging_options, "-cp", f"{libs}/*", "kafka.Kafka"]
    command.append(str(home / PROPERTIES_FILE))
    # sh puts java in the background and exits at once, so the broker is nobody's child: it outlives a
    # short-lived caller, and a long-lived one (pytest) has no zombie to reap when it ends.
    script = 'out=$1; shift; "$@" >"$out" 2>&1 </dev/null & echo $!'
    done = subprocess.run(  # noqa: S603
        ["/bin/sh", "-c", script, "sh", str(home / OUTPUT_FILE), *command],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    return int(done.stdout.strip())


def wait_until_answering(bootstrap: str, *, pid: int, home: Path, report: Callable[[str], None]) -> None:
    """Wait until the broker answers on ``bootstrap``.

    Raises:
        BrokerError: It exited, or did not answer within 60 s.
    """
    report(f"waiting for the broker to answer on {bootstrap}")
    logs = f"{home / 'logs' / 'server.log'} and {home / OUTPUT_FILE}"
    began = time.monotonic()
    next_report_s = _REPORT_EVERY_S
    while (waited_s := time.monotonic() - began) < START_TIMEOUT_S:
        if not is_our_broker(pid, home):
            msg = f"the broker exited while starting; see {logs}"
            raise BrokerError(msg)
        if _answers(bootstrap):
            return
        if waited_s >= next_report_s:
            report(f"still waiting for {bootstrap} ({waited_s:.0f} s)")
            next_report_s += _REPORT_EVERY_S
        time.sleep(_POLL_S)
    msg = f"the broker did not answer on {bootstrap} within {waited_s:.0f} s; see {logs}"
    raise BrokerError(msg)


def _answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError:
        # Nothing listens yet; checking first keeps kafka-python from logging a connection error per poll.
        return False
    # Imported here so that `status` and `stop`, which never talk Kafka, do not pay 0.3 s to import it.
    from kafka import KafkaAdminClient  # noqa: PLC0415
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()
    return True


def terminate(pid: int, home: Path) -> None:
    """Stop the broker: SIGTERM, then SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_for_exit(pid, home, STOP_TIMEOUT_S):
        return
    _log.warning("broker_killed", pid=pid, home=str(home), timeout_s=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_for_exit(pid, home, 5.0)


def _wait_for_exit(pid: int, home: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_our_broker(pid, home):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


def is_our_broker(pid: int, home: Path) -> bool:
    """Whether ``pid`` is the broker of ``home``, and not a process that got the pid after it died."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and _is_alive(pid)
    return os.fsencode(home / PROPERTIES_FILE) in command_line.split(b"\0")


def _is_alive(pid: int) -> bool:
    # Without /proc (macOS) the pid is all there is to go on.
    try:
        os.kill(pid, 0)
    except OSError as exc:
        # EPERM still means the pid exists, only that it belongs to another user.
        return isinstance(exc, PermissionError)
    return True
