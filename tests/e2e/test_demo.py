import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-8][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{5}[0-9Xx](?![0-9A-Za-z])")


def test_demo_delivers_every_task_exactly_once(tmp_path: Path, kafka_bootstrap: str) -> None:
    """`ubridge demo --exit` replays traffic with faults and exits 0 with every task delivered exactly once."""
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    command = [sys.executable, "-m", "connectors.cli", "demo", "--events", "200", "--rate", "400", "--exit",
               "--timeout-s", "120", "--metrics-port", "0", "--workdir", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=420, check=False)
    assert result.returncode == 0, _failure(result, tmp_path)
    assert "every expected task reached its utility exactly once" in result.stdout
    headings = ("Stages (records)", "Deliveries per utility", "SLA per utility", "aishandong-gateway", "ledger")
    for heading in (*headings, "12345 complaints", "complaints"):
        assert heading in result.stdout
    log = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert '"event": "complaint_answer_sent"' in log, _failure(result, tmp_path)
    assert '"event": "task_delivered"' in log
    assert '"event": "record_dead_lettered"' in log
    assert MOBILE.search(log) is None, "a mobile number reached the log unmasked"
    assert ID_NUMBER.search(log) is None, "an ID number reached the log unmasked"
    assert "爱山东 applications:" in result.stdout
    assert "爱山东 payments:" in result.stdout and "each posted once and receipted" in result.stdout
    linked = r"供电 yantai-power ([1-9][0-9]*)/\1 tasks, 通信 yantai-telecom ([1-9][0-9]*)/\2 tasks delivered"
    assert re.search(linked, result.stdout), "the power utility and the telecom operator got no tasks"
    assert "supervision:   http://127.0.0.1:" in result.stdout
    assert '"event": "supervision_serving"' in log
    loop = r"12345 loop: (\d+)/\1 orders answered to the platform, \1 visited, ([1-9]\d*) unsatisfied went on the"
    loop += r" 清零 ledger, \2 answered again and cleared \(销号\)"
    assert re.search(loop, " ".join(result.stdout.split())), _failure(result, tmp_path)
    permits = r"external-works permits: ([1-9]\d*) applications filed through ubridge \(0 refused\), ([1-9]\d*) permits"
    permits += r" to [1-9] departments at once \(并联审批\): (\d+) granted, (\d+) refused, [1-9]\d* asked for more"
    permits += r" \(补正\), \d+ 告知承诺, \2 decided within the departments' working days"
    found = re.search(permits, " ".join(result.stdout.split()))
    assert found is not None, _failure(result, tmp_path)
    assert int(found[3]) + int(found[4]) == int(found[2]), "a permit filed was never decided, or its utility not told"
    joint = r"joint surveys \(联合踏勘\): ([1-9]\d*) proposed for \d+ tasks of [2-9] utilities, \1 agreed"
    assert re.search(joint, " ".join(result.stdout.split())), _failure(result, tmp_path)


def test_demo_delivers_everything_on_a_clock_in_2027(tmp_path: Path) -> None:
    """On a wall clock set to 2027-01-05 (no official holiday data) the demo still delivers every task once."""
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP"}  # a broker of its own
    command = [sys.executable, "-m", "tests.e2e.fake_clock", "2027-01-05T10:00:00+08:00", "demo", "--events", "200",
               "--rate", "400", "--exit", "--timeout-s", "120", "--metrics-port", "0",
               "--workdir", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=420, check=False)
    assert result.returncode == 0, _failure(result, tmp_path)
    assert "every expected task reached its utility exactly once" in result.stdout
    assert "holiday notice: provisional calendar" in " ".join(result.stdout.split())  # rich wraps the caption
    answered = r"12345 loop: (\d+)/\1 orders answered to the platform"  # none dispatched after the demo's "now"
    assert re.search(answered, " ".join(result.stdout.split())), _failure(result, tmp_path)
    log = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert '"last_official_day": "2026-12-31"' in log
    assert '"timestamp": "2027-01-' in log


def _failure(result: subprocess.CompletedProcess[str], workdir: Path) -> str:
    """The demo's summary and its last warnings, so a failure on CI can be read without the work directory."""
    log = workdir / "demo.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    warnings = [line[:400] for line in lines if '"level": "warning"' in line or '"level": "error"' in line]
    return "\n".join([result.stdout[-6000:], result.stderr[-3000:], *warnings[-40:]])
