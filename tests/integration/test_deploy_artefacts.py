"""The deployable artefacts checked with real tools.

Helm, a Kubernetes schema validator, systemd-analyze, and a real Prometheus running every dashboard query
against a running ubridge.

The tools come from ``deploy/local/install-test-deps.sh`` (``make test`` runs it): helm built from its Go
module and kubernetes-validate (which ships the Kubernetes JSON schemas, so nothing is downloaded at test time)
in ``~/.cache/ubridge/bin``; Prometheus and systemd from Debian's packages.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.registry import stage_specs
from connectors.settings import load_settings
from tests.support import ROOT

pytestmark = pytest.mark.integration

TOOLS = Path.home() / ".cache" / "ubridge" / "bin"
CHART = ROOT / "deploy" / "helm" / "ubridge"
CONFIG = ROOT / "deploy" / "config"
SYSTEMD = ROOT / "deploy" / "systemd"
DASHBOARD = ROOT / "deploy" / "grafana" / "ubridge-dashboard.json"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CHART_FILES = {
    "service-areas.yaml": CONFIG / "service-areas.yaml",
    "calendar.yaml": CONFIG / "calendar.yaml",
    "sla-policies.yaml": CONFIG / "sla-policies.yaml",
    "vendor-mapping.yaml": CONFIG / "mappings" / "vendor-yantai.yaml",
    "complaints.yaml": CONFIG / "complaints.yaml",
    "satisfaction.yaml": CONFIG / "satisfaction.yaml",
}
QUERY_DEADLINE_S = 300.0


def tool(name: str) -> str:
    """A tool the install script provides, or a failure that says how to get it."""
    path = TOOLS / name if (TOOLS / name).exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `bash deploy/local/install-test-deps.sh` (make test does)")
    return str(path)


def run(*argv: str | Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=timeout_s, check=False)


def chart_secrets() -> dict[str, str]:
    """A value for each ${NAME} of the chart's default configuration (16+ characters, as the webhook's secret)."""
    config = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["config"]
    return {name: f"test-{name.lower()}-0123456789" for name in env_refs(config)}


def env_refs(document: Any) -> set[str]:
    """The ${NAME}s in a parsed YAML document's values (comments do not count)."""
    return set(ENV_REF.findall(json.dumps(document)))


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """`helm template` of the chart with the shipped example files and a value for every secret."""
    keys = {name: name.replace(".", "\\.") for name in CHART_FILES}  # a dot in a --set key must be escaped
    files = [f"--set-file=files.{keys[name]}={path}" for name, path in CHART_FILES.items()]
    secrets = [f"--set=secrets.{name}={value}" for name, value in chart_secrets().items()]
    result = run(tool("helm"), "template", "ubridge", CHART, *files, *secrets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def test_helm_lint_passes() -> None:
    """`helm lint --strict` accepts the chart with its default values."""
    result = run(tool("helm"), "lint", "--strict", CHART)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("image.tag=latest", "/image/tag"),
        ("config.observability.metrics_host=127.0.0.1", "/config/observability/metrics_host"),
        ("groups[0].stages=null", "/groups/0"),
        ("groups[0].name=Intake_Group", "/groups/0/name"),
    ],
)
def test_chart_refuses_values_that_cannot_work(setting: str, reason: str) -> None:
    """values.schema.json stops a latest tag, probes on loopback, a group without stages or a bad name."""
    result = run(tool("helm"), "template", "ubridge", CHART, f"--set={setting}")
    assert result.returncode != 0
    assert reason in result.stderr


def test_rendered_manifests_match_the_kubernetes_schemas(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    """kubernetes-validate --strict (Kubernetes 1.37 schemas) accepts every rendered manifest."""
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(rendered), encoding="utf-8")
    result = run(tool("kubernetes-validate"), "--strict", "--kubernetes-version", "1.37.0", manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(rendered)


def test_schema_validator_rejects_an_unknown_field(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    """The validator is live: a misspelt container field in a rendered Deployment is refused."""
    deployment = next(doc for doc in rendered if doc["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(yaml.safe_dump(deployment), encoding="utf-8")
    result = run(tool("kubernetes-validate"), "--strict", manifest)
    assert result.returncode != 0
    assert "livenesProbe" in result.stdout + result.stderr


def test_one_deployment_per_stage_group_with_probes_and_resources(rendered: list[dict[str, Any]]) -> None:
    """Each group is a Deployment running its stages, probed on /healthz and /readyz, with requests and limits."""
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    metrics_port = values["config"]["observability"]["metrics_port"]
    deployments = of_kind(rendered, "Deployment")
    assert sorted(deployments) == sorted(f"ubridge-{group['name']}" for group in values["groups"])
    for group in values["groups"]:
        pod = deployments[f"ubridge-{group['name']}"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        stages = [container["args"][i + 1] for i, arg in enumerate(container["args"]) if arg == "--stage"]
        assert container["args"][:3] == ["run", "--config", "/etc/ubridge/ubridge.yaml"]
        assert stages == group["stages"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["metrics"] == metrics_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["envFrom"] == [{"secretRef": {"name": "ubridge-secrets"}}]


def test_every_group_has_a_disruption_budget_and_its_intakes_a_service(rendered: list[dict[str, Any]]) -> None:
    """A PodDisruptionBudget selects each group's pods; a Service exposes the ports of groups that have intakes."""
    deployments = of_kind(rendered, "Deployment")
    budgets = of_kind(rendered, "PodDisruptionBudget")
    services = of_kind(rendered, "Service")
    assert budgets.keys() == deployments.keys()
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels
        intake_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]} - {
            "metrics"
        }
        if intake_ports:
            assert services[name]["spec"]["selector"] == labels
            assert {p["targetPort"] for p in services[name]["spec"]["ports"]} == intake_ports
        else:
            assert name not in services
    assert services, "no Service for the intakes and callbacks"


def test_configmap_is_a_valid_configuration_whose_stages_all_run(
    rendered: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap, mounted as /etc/ubridge, loads with the Secret's values; each stage runs in exactly one group."""
    (config_map,) = of_kind(rendered, "ConfigMap").values()
    (secret,) = of_kind(rendered, "Secret").values()
    for name, content in config_map["data"].items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    referenced = env_refs(yaml.safe_load(config_map["data"]["ubridge.yaml"]))
    assert referenced == secret["stringData"].keys()
    for name, value in secret["stringData"].items():
        monkeypatch.setenv(name, value)
    settings = load_settings(tmp_path / "ubridge.yaml")
    webhook = settings.sources.gonggai_webhook
    assert settings.ledger is not None and webhook is not None
    for path in (settings.routing.service_areas, settings.ledger.calendar, settings.ledger.policies, webhook.mapping):
        assert path.is_file(), path
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    grouped = [stage for group in values["groups"] for stage in group["stages"]]
    assert sorted(grouped) == sorted(spec.name for spec in stage_specs(settings))


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts an instance of ubridge@.service with no warning."""
    result = run(tool("systemd-analyze"), "verify", "--man=no", installed_unit(tmp_path) / "ubridge@pipeline.service")
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_systemd_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check is live: a misspelt directive in the unit is reported."""
    unit = installed_unit(tmp_path) / "ubridge@.service"
    unit.write_text(unit.read_text(encoding="utf-8").replace("Restart=on-failure", "Restart=on-failur"))
    result = run(tool("systemd-analyze"), "verify", "--man=no", unit.parent / "ubridge@pipeline.service")
    assert "on-failur" in result.stderr


def installed_unit(tmp_path: Path) -> Path:
    """The unit in a folder of its own, ExecStart pointing at this checkout's real `ubridge` (verify needs it)."""
    ubridge = Path(sys.executable).parent / "ubridge"
    assert ubridge.is_file()
    text = (SYSTEMD / "ubridge@.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/ubridge/bin/ubridge " in text
    (tmp_path / "ubridge@.service").write_text(text.replace("/opt/ubridge/bin/ubridge", str(ubridge)))
    return tmp_path


def test_systemd_examples_name_real_stages_and_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The env file examples give every ${NAME} of the example configuration and stages it defines."""
    secrets = dict(line.split("=", 1) for line in _settings_lines(SYSTEMD / "secrets.env.example"))
    example = CONFIG / "ubridge.example.yaml"
    assert secrets.keys() == env_refs(yaml.safe_load(example.read_text(encoding="utf-8")))
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    configured = {spec.name for spec in stage_specs(load_settings(example))}
    (stages_line,) = _settings_lines(SYSTEMD / "pipeline.env.example")
    words = stages_line.removeprefix("UBRIDGE_STAGES=").split()
    assert words[::2] == ["--stage"] * (len(words) // 2)
    assert set(words[1::2]) <= configured


def _settings_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ubridge_metrics(kafka_bootstrap: str, tmp_path: Path) -> Iterator[int]:
    """A running ubridge with traffic: `ubridge demo` (every stage, simulated parties with faults) on a free port."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap}
    command = [sys.executable, "-m", "connectors.cli", "demo", "--events", "100", "--rate", "100", "--timeout-s",
               "120", "--metrics-port", str(port), "--workdir", str(tmp_path / "demo")]  # fmt: skip
    with (tmp_path / "demo.out").open("w") as out:
        # A session of its own: the test may end mid-replay, before the demo handles SIGTERM, and its simulators'
        # child process must end with it.
        demo = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield port
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=60)


@pytest.fixture
def prometheus(ubridge_metrics: int, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus server scraping the ubridge process every second; yields its base URL."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "ubridge", "static_configs": [{"targets": [f"127.0.0.1:{ubridge_metrics}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    command = [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}", f"--web.listen-address={address}",
               f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn"]  # fmt: skip
    with (tmp_path / "prometheus.log").open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://{address}/-/ready", server)
        yield f"http://{address}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"prometheus did not become ready (exit code {server.poll()})")


def query(base: str, expr: str) -> dict[str, Any]:
    """The JSON answer of Prometheus's instant-query API; a bad query's 400 is returned, not raised."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
            result: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as exc:
        result = json.load(exc)
    return result


def test_every_dashboard_query_returns_series_from_a_running_ubridge(prometheus: str) -> None:
    """Each panel's PromQL runs on a real Prometheus scraping ubridge under traffic, without error, with series."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = {t["expr"]: panel["title"] for panel in document["panels"] for t in panel.get("targets", [])}
    pending = dict(exprs)
    deadline = time.monotonic() + QUERY_DEADLINE_S
    while pending and time.monotonic() < deadline:
        for expr, title in list(pending.items()):
            answer = query(prometheus, expr)
            assert answer["status"] == "success", f"{title}: {answer.get('error')}"
            if answer["data"]["result"]:
                del pending[expr]
        time.sleep(2)
    assert not pending, f"no series after {QUERY_DEADLINE_S} s for: {sorted(pending.values())}"
    assert len(exprs) >= 15
