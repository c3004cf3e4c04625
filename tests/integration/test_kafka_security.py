import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.app import App
from connectors.broker.local_kafka import BrokerInfo, start_broker, stop_broker
from connectors.broker.tls import issue_local_pki
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer
from connectors.runtime.kafka_access import KafkaAccessError, check_access
from connectors.settings import Settings
from simulators.approval import ApprovalSimulator
from tests.support import ROOT, running_utility, settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

UTILITY = "yantai-water"
ONE_UTILITY_AREAS = ROOT / "tests" / "data" / "service-areas-yantai-water.yaml"


class SecureBroker:
    """A broker whose clients must use SASL_SSL, with the password of its user ``ubridge``."""

    def __init__(self, home: Path) -> None:
        self.password = secrets.token_urlsafe(12)
        self.info: BrokerInfo = start_broker(home, port=0, sasl_users={"ubridge": self.password})
        assert self.info.ca_file is not None
        self.ca_file = self.info.ca_file

    def kafka(self, prefix: str, **security: Any) -> dict[str, Any]:
        """The ``kafka`` section of a configuration for this broker (security overridable)."""
        sasl = {"mechanism": "SCRAM-SHA-512", "username": "ubridge", "password": self.password}
        settings = {"protocol": "SASL_SSL", "ca_file": str(self.ca_file), "sasl": sasl, **security}
        return {"bootstrap": self.info.bootstrap, "topic_prefix": prefix, "security": settings}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A SASL_SSL broker of this module's own, beside the session's plaintext one."""
    home = tmp_path_factory.mktemp("secure-broker")
    broker = SecureBroker(home)
    yield broker
    stop_broker(home)


def secure_settings(broker: SecureBroker, prefix: str, **sections: Any) -> Settings:
    """A configuration on the secure broker."""
    settings = settings_for(broker.info.bootstrap, prefix, **sections)
    return settings.model_copy(update={"kafka": type(settings.kafka).model_validate(broker.kafka(prefix))})


def test_the_pipeline_runs_end_to_end_over_sasl_ssl(secure_broker: SecureBroker, unique_prefix: str) -> None:
    """Source, normaliser, router and sink over SCRAM on TLS: the utility gets its tasks, RECEIVED is readable."""
    upstream = ApprovalSimulator(seed=21)
    url = upstream.start()
    upstream.generate(80)
    try:
        with running_utility(UTILITY) as (sim, utility_url):
            source = {"base_url": url, "token": "approval-token", "page_size": 50, "poll_interval_s": 0.1}
            settings = secure_settings(
                secure_broker,
                unique_prefix,
                sources={"gonggai_interface": source},
                utilities=[utility_config(UTILITY, utility_url)],
            )
            stages = ["gonggai-interface", "normaliser-gonggai", "router", f"sink-{UTILITY}"]
            app = App(settings, only=stages, serve_metrics=False)
            started = time.monotonic()
            app.start()
            try:
                wait_until(lambda: sim.stats().unique >= 5, timeout_s=90, what="tasks over SASL_SSL")
            finally:
                app.stop()
                assert app.wait(timeout_s=20)
            assert not app.failed
            print(f"sasl_ssl end to end: {sim.stats().unique} tasks in {time.monotonic() - started:.1f} s")
    finally:
        upstream.stop()
    consumer = make_consumer(settings.kafka, group_id=None, consumer_timeout_ms=5000)
    try:
        consumer.subscribe([settings.topic("task_status")])
        statuses = list(consumer)
    finally:
        consumer.close()
    assert len(statuses) >= 5


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_sasl_mechanism_is_accepted(secure_broker: SecureBroker, unique_prefix: str, mechanism: str) -> None:
    """The three mechanisms a provincial cluster may use all pass the start-up check and create topics."""
    settings = secure_settings(secure_broker, unique_prefix)
    sasl = settings.kafka.security.sasl
    assert sasl is not None
    kafka = settings.kafka.model_copy(
        update={
            "security": settings.kafka.security.model_copy(
                update={"sasl": sasl.model_copy(update={"mechanism": mechanism})}
            )
        }
    )
    check_access(kafka)
    assert ensure_topics(kafka, [TopicSpec(f"{unique_prefix}{mechanism}", 1)]) == [f"{unique_prefix}{mechanism}"]


def test_a_wrong_password_fails_at_start_up_with_one_line(
    secure_broker: SecureBroker, unique_prefix: str, tmp_path: Path
) -> None:
    """`ubridge run` with a wrong password exits 2 naming the user and the mechanism, without a traceback."""
    kafka = secure_broker.kafka(unique_prefix)
    kafka["security"]["sasl"]["password"] = "${UBRIDGE_TEST_KAFKA_PASSWORD}"
    result = run_ubridge(tmp_path, kafka, env={"UBRIDGE_TEST_KAFKA_PASSWORD": "not-the-password"})
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ubridge:")]
    # kafka-python sees the broker's refusal, or only the connection it then closes: either way one line
    assert "user 'ubridge' with SCRAM-SHA-512" in line
    assert "invalid credentials" in line or "no login as" in line
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr + result.stdout


def test_an_untrusted_certificate_fails_at_start_up_with_one_line(
    secure_broker: SecureBroker, unique_prefix: str, tmp_path: Path
) -> None:
    """A CA file that did not sign the broker's certificate: exit 2, one line naming the broker and the CA file."""
    other = issue_local_pki(tmp_path / "other-ca")
    kafka = secure_broker.kafka(unique_prefix, ca_file=str(other.ca_file))
    result = run_ubridge(tmp_path, kafka)
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ubridge:")]
    assert f"the certificate of {secure_broker.info.bootstrap} is not trusted by {other.ca_file}" in line
    assert "Traceback" not in result.stderr


def test_the_check_lets_an_unreachable_broker_be_waited_out(secure_broker: SecureBroker, unique_prefix: str) -> None:
    """Nothing listening is an outage, not a configuration error: the check passes and the stages wait."""
    settings = secure_settings(secure_broker, unique_prefix)
    kafka = settings.kafka.model_copy(update={"bootstrap": "127.0.0.1:1"})
    check_access(kafka)
    with pytest.raises(KafkaAccessError):
        bad = settings.kafka.security.model_copy(update={"cert_file": Path("/nonexistent.pem"), "key_file": Path("/x")})
        check_access(settings.kafka.model_copy(update={"security": bad}))


def run_ubridge(
    tmp_path: Path, kafka: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ubridge run`` with this ``kafka`` section and one utility, as an operator would start it."""
    config = {
        "kafka": kafka,
        "observability": {"log_format": "json", "metrics_port": 0},
        "routing": {"service_areas": str(ONE_UTILITY_AREAS)},
        "utilities": [utility_config(UTILITY, "http://127.0.0.1:9")],
    }
    path = tmp_path / "ubridge.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    command = [sys.executable, "-m", "connectors.cli", "run", "--config", str(path)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})}
    )
