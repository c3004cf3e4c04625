"""Static checks of the image definition and the dashboard.

There is no Docker daemon here; the checks with real tools are in tests/integration/test_deploy_artefacts.py.
"""

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors.aishandong.settings import SHIPPED_RULES
from connectors.ledger.metrics import LedgerMetrics
from connectors.runtime.metrics import Metrics
from tests.support import ROOT

DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "container" / "Dockerfile.dockerignore"
DASHBOARD = ROOT / "deploy" / "grafana" / "ubridge-dashboard.json"
VENV_SITE_PACKAGES = Path("/opt/ubridge/lib/python3.11/site-packages")


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in joined.splitlines() if line.strip()
    ]


def stages(steps: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions grouped by build stage (each begins with FROM)."""
    grouped: list[list[tuple[str, str]]] = []
    for step in steps:
        if step[0] == "FROM":
            grouped.append([])
        grouped[-1].append(step)
    return grouped


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_image_is_built_in_named_stages_from_pinned_bases(steps: list[tuple[str, str]]) -> None:
    """At least a builder and a runtime stage, each `FROM image:tag AS name`, no `latest` and no untagged base."""
    bases = [args.split() for keyword, args in steps if keyword == "FROM"]
    assert len(bases) >= 2
    assert all(len(b) == 3 and b[1].upper() == "AS" for b in bases), bases
    images = [b[0] for b in bases]
    assert all(":" in image and not image.endswith(":latest") for image in images), images
    assert images[-1].startswith("python:3.11-slim")


def test_runtime_stage_runs_ubridge_as_a_non_root_user(steps: list[tuple[str, str]]) -> None:
    """The last stage switches to a numeric non-root USER and runs `ubridge run --config /etc/ubridge/ubridge.yaml`."""
    runtime = dict(stages(steps)[-1])
    user = runtime["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert json.loads(runtime["ENTRYPOINT"]) == ["ubridge"]
    assert json.loads(runtime["CMD"]) == ["run", "--config", "/etc/ubridge/ubridge.yaml"]
    assert any(
        args.startswith("--from=builder /opt/ubridge") for keyword, args in stages(steps)[-1] if keyword == "COPY"
    )


def test_healthcheck_asks_readyz_with_python(steps: list[tuple[str, str]]) -> None:
    """HEALTHCHECK runs Python (the slim image has no curl) against /readyz on the metrics port."""
    runtime = dict(stages(steps)[-1])
    options, _, command = runtime["HEALTHCHECK"].partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "/readyz" in argv[2] and "UBRIDGE_METRICS_PORT" in argv[2]
    assert "curl" not in runtime["HEALTHCHECK"] and "--start-period=" in options
    assert "UBRIDGE_METRICS_PORT=9464" in runtime["ENV"]


def test_shipped_config_lands_where_the_installed_package_looks(steps: list[tuple[str, str]]) -> None:
    """deploy/config is copied beside the installed packages, where SHIPPED_RULES resolves in /opt/ubridge."""
    copies = [args.split() for keyword, args in stages(steps)[0] if keyword == "COPY"]
    destination = next(Path(copy[-1]) for copy in copies if copy[:-1] == ["deploy/config/"])
    assert destination / SHIPPED_RULES.name == VENV_SITE_PACKAGES / SHIPPED_RULES.relative_to(ROOT)


def test_every_copied_path_exists_and_passes_the_dockerignore(steps: list[tuple[str, str]]) -> None:
    """What the builder copies from the context exists in the repository and is not excluded from the context."""
    patterns = [p for p in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if p and not p.startswith("#")]
    sources = [
        src for keyword, args in steps if keyword == "COPY" and "--from" not in args for src in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _included(source.rstrip("/"), patterns), source
    assert not _included(".venv", patterns)
    assert not _included("tests", patterns)


def _included(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!").rstrip("/")):
            included = negated
    return included


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def test_dashboard_uses_only_metrics_ubridge_exports() -> None:
    """Each metric name in a panel's query is one that ubridge registers (histogram suffixes included)."""
    registry = CollectorRegistry()
    Metrics(registry)
    LedgerMetrics(registry)
    exported = {sample_name for metric in registry.collect() for sample_name in _sample_names(metric.name, metric.type)}
    used = {name for expr in dashboard_exprs() for name in re.findall(r"\bubridge_[a-z_]+", expr)}
    assert used
    assert used <= exported, sorted(used - exported)


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return {name}


def test_dashboard_panels_are_complete() -> None:
    """Panels have unique ids, a title and a description; queries use no Grafana variables Prometheus cannot run."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = document["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    queried = [panel for panel in panels if panel["type"] != "row"]
    assert all(panel["title"] and panel["description"] and panel["targets"] for panel in queried)
    assert not [expr for expr in dashboard_exprs() if "$" in expr]
