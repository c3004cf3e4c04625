"""``ubridge run`` over child processes (issue 17 item 3): one endpoint, restarts, drain, death with the parent."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from connectors.broker.kafka_install import free_port
from tests.support import running_utility, utility_config, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UTILITY = "yantai-water"
STAGES = {"normaliser-gonggai", "router", f"sink-{UTILITY}"}


@contextmanager
def _running_tree(
    tmp_path: Path, kafka_bootstrap: str, unique_prefix: str, **sections: Any
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``ubridge run`` over two children: the normaliser, the router, a sink and the stages ``sections`` add."""
    with running_utility(UTILITY) as (_, url):
        port = free_port()
        document = {
            "kafka": {"bootstrap": kafka_bootstrap, "topic_prefix": unique_prefix},
            "observability": {"log_format": "json", "metrics_port": port},
            "routing": {"service_areas": str(ROOT / "tests" / "data" / "service-areas-yantai-water.yaml")},
            "utilities": [utility_config(UTILITY, url)],
            "processes": {"count": 2},
            **sections,
        }
        config = tmp_path / "ubridge.yaml"
        config.write_text(yaml.safe_dump(document), encoding="utf-8")
        command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(config)]
        with (tmp_path / "ubridge.log").open("ab") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())
        try:
            yield process, f"http://127.0.0.1:{port}"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def tree(tmp_path: Path, kafka_bootstrap: str, unique_prefix: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``ubridge run`` with two children sharing the normaliser, the router and a sink."""
    with _running_tree(tmp_path, kafka_bootstrap, unique_prefix) as running:
        yield running


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def _ready(base: str) -> dict[str, Any] | None:
    """The parent's /readyz body once it answers 200."""
    answer = _get(f"{base}/readyz")
    return answer.json() if answer is not None and answer.status_code == 200 else None


def _children(base: str) -> dict[str, Any]:
    answer = _get(f"{base}/readyz")
    return {} if answer is None else dict(answer.json()["detail"]["children"])


def _samples(base: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    answer = _get(f"{base}/metrics")
    if answer is None:
        return {}
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == name
    }


def _child_pids(parent: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_two_children_answer_as_one_process(tree: tuple[subprocess.Popen[bytes], str]) -> None:
    """One /readyz names every stage of both children; one /metrics has every stage's series, summed."""
    process, base = tree
    wait_until(lambda: _ready(base) is not None, timeout_s=120, what="every stage of both children ready")
    ready = _ready(base)
    assert ready is not None
    assert set(ready["stages"]) == STAGES | {"kafka"}
    assert len(_child_pids(process.pid)) == 2
    up = _samples(base, "ubridge_stage_up")
    assert {dict(labels)["stage"]: value for labels, value in up.items()} == dict.fromkeys(STAGES, 1.0)
    assert _samples(base, "ubridge_kafka_up") == {(): 1.0}


def test_a_killed_child_is_started_again_and_a_sigterm_drains_both(tree: tuple[subprocess.Popen[bytes], str]) -> None:
    """SIGKILL of one child: the parent starts it again and counts it; SIGTERM to the parent: all exit, status 0."""
    process, base = tree
    wait_until(lambda: _ready(base) is not None, timeout_s=120, what="both children ready")
    victim, survivor = _child_pids(process.pid)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: _ready(base) is not None and len(_child_pids(process.pid)) == 2, timeout_s=120, what="again")
    restarts = _samples(base, "ubridge_child_restarts_total")
    assert (sum(restarts.values()), _alive(survivor), victim in _child_pids(process.pid)) == (1.0, True, False)
    children = _child_pids(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert [pid for pid in children if _alive(pid)] == []


def test_the_children_die_with_a_killed_parent(tree: tuple[subprocess.Popen[bytes], str]) -> None:
    """SIGKILL of ``ubridge run`` takes its children with it, as it took its threads: no orphan keeps running."""
    process, base = tree
    wait_until(lambda: len(_children(base)) == 2, timeout_s=120, what="the parent answering for two children")
    wait_until(lambda: len(_child_pids(process.pid)) == 2, timeout_s=60, what="two children")
    children = _child_pids(process.pid)
    process.kill()
    process.wait(timeout=30)
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout_s=30, what="the children gone")


def test_the_log_says_which_stages_each_child_runs(tree: tuple[subprocess.Popen[bytes], str], tmp_path: Path) -> None:
    """The parent's log names each group and its stages, every line JSON, so an operator sees the layout."""
    process, base = tree
    wait_until(lambda: _ready(base) is not None, timeout_s=120, what="both children ready")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    lines = [json.loads(line) for line in (tmp_path / "ubridge.log").read_text(encoding="utf-8").splitlines()]
    started = [line for line in lines if line["event"] == "children_started"]
    groups = started[0]["groups"]
    assert sorted(stage for stages in groups.values() for stage in stages) == sorted(STAGES)
    assert len(groups) == 2


def _nice(pid: int) -> int:
    """The nice value of ``pid`` (field 19 of /proc/<pid>/stat; the command name may hold spaces)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_background_stages_run_in_a_child_of_their_own_at_a_lower_priority(
    tmp_path: Path, kafka_bootstrap: str, unique_prefix: str
) -> None:
    """Two children: the ledger alone at nice +10, the delivery path at the parent's priority."""
    config_dir = ROOT / "deploy" / "config"
    ledger = {"calendar": str(config_dir / "calendar.yaml"), "policies": str(config_dir / "sla-policies.yaml")}
    with _running_tree(tmp_path, kafka_bootstrap, unique_prefix, ledger=ledger) as (process, base):
        wait_until(lambda: _ready(base) is not None, timeout_s=120, what="both children ready")
        niceness = {}
        for pid in _child_pids(process.pid):
            stages = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            named = sorted(s.decode() for s, flag in zip(stages[1:], stages, strict=False) if flag == b"--stage")
            niceness[",".join(named)] = _nice(pid) - _nice(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert niceness == {"ledger": 10, f"normaliser-gonggai,router,sink-{UTILITY}": 0}
