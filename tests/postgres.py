"""A throwaway PostgreSQL cluster for integration tests, from Debian's ``postgresql`` package.

``initdb`` and ``pg_ctl`` run as the ``postgres`` OS user when the tests run as root (the server refuses
root), in a fresh directory under /tmp, listening on a free port on 127.0.0.1 with trust authentication.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

INSTALL_HINT = "PostgreSQL server binaries not found: apt-get install -y postgresql"


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its SQLAlchemy URL and directory."""

    url: str
    home: Path
    bin_dir: Path


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise RuntimeError(INSTALL_HINT)
    return Path(candidates[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        message = "running as root but runuser is missing; cannot start PostgreSQL as the postgres user"
        raise RuntimeError(message)
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_cluster() -> Cluster:
    """Initialise and start a cluster; raises RuntimeError naming the fix when it cannot."""
    bin_dir = _bin_dir()
    home = Path(tempfile.mkdtemp(prefix="ubridge-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, user="postgres", group="postgres")
    data, port = home / "data", _free_port()
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -F"
    commands = [
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"],
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-o", options, "-w", "start"],
    ]
    try:
        for command in commands:
            subprocess.run(_as_postgres(command), check=True, capture_output=True, text=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        message = f"PostgreSQL failed to start: {exc.stderr or exc.stdout}"
        raise RuntimeError(message) from exc
    return Cluster(url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", home=home, bin_dir=bin_dir)


def stop_cluster(cluster: Cluster) -> None:
    """Stop the cluster and remove its directory."""
    command = [str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.home / "data"), "-m", "fast", "-w", "stop"]
    subprocess.run(_as_postgres(command), check=False, capture_output=True, timeout=60)
    shutil.rmtree(cluster.home, ignore_errors=True)


def fresh_database(url: str) -> str:
    """Create an empty database on the server of ``url``; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"
