import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

RULES = ROOT / "deploy" / "prometheus" / "ubridge-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "ubridge-rules.test.yml"
RUNBOOK = ROOT / "deploy" / "prometheus" / "README.md"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `apt-get install prometheus` (Debian) to get /usr/bin/promtool")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def test_rules_file_is_valid() -> None:
    """`promtool check rules` accepts the alert rules."""
    result = run("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes the alerts' unit tests."""
    result = run("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's runbook annotation points to an existing heading of the runbook."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    headings = {line.removeprefix("### ").strip().lower() for line in RUNBOOK.read_text().splitlines()}
    alerts = [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    links = {rule["alert"]: rule["annotations"]["runbook_url"] for rule in alerts}
    expected = {name: f"deploy/prometheus/README.md#{name.lower()}" for name in links}
    assert links == expected
    assert {name.lower() for name in links} <= headings
    assert all({"summary", "description"} <= rule["annotations"].keys() for rule in alerts)
