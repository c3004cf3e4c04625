import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.broker.local_kafka import STATE_FILE, broker_status, start_broker, stop_broker


def write_state(home: Path, pid: int) -> None:
    """Leave a state file in ``home`` as a broker with ``pid`` would."""
    home.mkdir(parents=True, exist_ok=True)
    state = {"pid": pid, "port": 9092, "controller_port": 9093}
    (home / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")


def test_stale_state_counts_as_stopped(tmp_path: Path) -> None:
    """A state file left by a broker that died is reported as stopped, and stop just removes it."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    write_state(tmp_path, int(finished.stdout))
    assert broker_status(tmp_path) is None
    assert not stop_broker(tmp_path)
    assert not (tmp_path / STATE_FILE).exists()


def test_reused_pid_is_not_our_broker(tmp_path: Path) -> None:
    """A live process that is not this home's broker is neither reported nor killed."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_state(tmp_path, stranger.pid)
        assert broker_status(tmp_path) is None
        assert not stop_broker(tmp_path)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_corrupt_state_counts_as_stopped(tmp_path: Path) -> None:
    """A state file that is not the JSON we write means no broker."""
    (tmp_path / STATE_FILE).write_text("{not json", encoding="utf-8")
    assert broker_status(tmp_path) is None


def test_no_state_is_stopped(tmp_path: Path) -> None:
    """A home that never ran a broker, or does not exist, has none to report or stop."""
    assert broker_status(tmp_path / "never") is None
    assert not stop_broker(tmp_path / "never")


def test_an_authorizer_without_sasl_users_is_refused(tmp_path: Path) -> None:
    """Without SASL every client would be ANONYMOUS, the broker's own super user: refused before anything starts."""
    with pytest.raises(ValueError, match="an authorizer needs SASL users"):
        start_broker(tmp_path / "home", port=0, super_users=["ubridge"])
