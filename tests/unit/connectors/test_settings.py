import re
from pathlib import Path
from typing import get_args

import pytest

from connectors.gonggai.normaliser import GonggaiNormaliser
from connectors.gonggai.spgl_normaliser import SpglNormaliser
from connectors.settings import ConfigError, ParallelStage, load_settings, parse_settings

MINIMAL = {"routing": {"service_areas": "areas.yaml"}}
UTILITY = {
    "id": "yantai-water",
    "endpoint": "http://w/v1/tasks",
    "auth": {"type": "bearer", "token": "s3cret"},
}


def test_minimal_configuration_takes_defaults() -> None:
    """Only routing is required; topics get their documented names."""
    settings = parse_settings(MINIMAL)
    assert settings.task_topic("yantai-water") == "ubridge.tasks.yantai-water.v1"
    assert settings.topic("tasks") == "ubridge.tasks.v1"  # the single topic of earlier releases, to migrate from
    assert settings.dlq_topic("router") == "ubridge.dlq.router.v1"


def test_the_task_topic_pattern_and_prefix_name_each_utility_topic() -> None:
    """A configured pattern and the prefix make every utility's task topic."""
    settings = parse_settings(
        {**MINIMAL, "kafka": {"topic_prefix": "t1."}, "topics": {"tasks_pattern": "city.{utility}.tasks"}}
    )
    assert settings.task_topic("yantai-gas") == "t1.city.yantai-gas.tasks"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("ubridge.tasks.v1", "needs {utility} once"),
        ("ubridge.tasks.{utility}/v1", "needs {utility} once"),
        ("ubridge.tasks.{stage}.v1", "only the field {utility} may appear"),
        ("ubridge.tasks.{}.v1", "only the field {utility} may appear"),
        ("ubridge.tasks.{utility", "only the field {utility} may appear"),
    ],
)
def test_a_task_topic_pattern_without_a_valid_utility_field_is_refused(pattern: str, why: str) -> None:
    """The pattern must name {utility} and nothing else, and make a legal topic name; the error names the key."""
    with pytest.raises(ConfigError, match=rf"^u.yaml: topics.tasks_pattern: Value error, {re.escape(why)}"):
        parse_settings({**MINIMAL, "topics": {"tasks_pattern": pattern}}, origin="u.yaml")


def test_a_utility_id_that_makes_an_overlong_topic_name_is_refused_naming_it() -> None:
    """Topic names stop at 249 characters: an id that would pass them is an error naming utilities[i].id."""
    long_prefix = {"topic_prefix": "p" * 190}
    utilities = [UTILITY, {**UTILITY, "id": "z" * 60, "auth": {"type": "bearer", "token": "other"}}]
    with pytest.raises(ConfigError, match=r"utilities\[1\]\.id 'z{60}' makes the task topic 'p{190}ubridge\.tasks\.z"):
        parse_settings({**MINIMAL, "kafka": long_prefix, "utilities": utilities}, origin="u.yaml")


def test_a_utility_id_that_is_no_topic_fragment_is_refused_naming_it() -> None:
    """Ids are lower-case letters, digits and dashes, so they always fit a topic name; others are refused."""
    with pytest.raises(ConfigError, match=r"^u.yaml: utilities\[0\]\.id: String should match pattern"):
        parse_settings({**MINIMAL, "utilities": [{**UTILITY, "id": "yantai water"}]}, origin="u.yaml")


def test_topic_prefix_applies_to_every_topic() -> None:
    """A prefix isolates a deployment's topics, dead letters included."""
    settings = parse_settings({**MINIMAL, "kafka": {"topic_prefix": "t1."}})
    assert (settings.topic("raw_gonggai"), settings.dlq_topic("router")) == (
        "t1.ubridge.raw.gonggai.v1",
        "t1.ubridge.dlq.router.v1",
    )


def test_misspelt_key_is_named_with_the_file() -> None:
    """An unknown key is an error naming the file and the full key path."""
    with pytest.raises(ConfigError, match=r"^ubridge.yaml: kafka.partitons: Extra inputs are not permitted$"):
        parse_settings({**MINIMAL, "kafka": {"partitons": 3}}, origin="ubridge.yaml")


def test_bad_list_item_names_its_index() -> None:
    """A bad utility id names utilities[1].id."""
    bad = {**UTILITY, "id": "Bad Id"}
    with pytest.raises(ConfigError, match=r"utilities\[1\]\.id"):
        parse_settings({**MINIMAL, "utilities": [UTILITY, bad]}, origin="u.yaml")


def test_duplicate_utility_ids_are_refused() -> None:
    """Two utilities with one id would share a consumer group; refuse it."""
    with pytest.raises(ConfigError, match="repeated: yantai-water"):
        parse_settings({**MINIMAL, "utilities": [UTILITY, UTILITY]})


def test_environment_references_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    """${NAME} takes the environment's value, so secrets stay out of the file."""
    monkeypatch.setenv("WATER_TOKEN", "from-env")
    settings = parse_settings(
        {**MINIMAL, "utilities": [{**UTILITY, "auth": {"type": "bearer", "token": "${WATER_TOKEN}"}}]}
    )
    assert settings.utilities[0].auth.token.get_secret_value() == "from-env"


def test_missing_environment_variable_names_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable is an error naming the key that refers to it."""
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    doc = {**MINIMAL, "utilities": [{**UTILITY, "auth": {"type": "bearer", "token": "${NOPE_TOKEN}"}}]}
    with pytest.raises(ConfigError, match=r"u.yaml: utilities\[0\]\.auth\.token: environment variable NOPE_TOKEN"):
        parse_settings(doc, origin="u.yaml")


def test_secrets_do_not_show_in_repr() -> None:
    """A token never appears when settings are printed or logged."""
    settings = parse_settings({**MINIMAL, "utilities": [UTILITY]})
    assert "s3cret" not in repr(settings)


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    """service_areas is found next to the configuration file."""
    path = tmp_path / "ubridge.yaml"
    path.write_text("routing:\n  service_areas: areas.yaml\n", encoding="utf-8")
    assert load_settings(path).routing.service_areas == tmp_path / "areas.yaml"


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    """A YAML syntax error is reported with the file's name."""
    path = tmp_path / "broken.yaml"
    path.write_text("routing: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_settings(path)


def test_top_level_must_be_a_mapping() -> None:
    """A list at the top is refused with a reason."""
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_settings(["routing"], origin="x.yaml")


def test_shipped_example_configuration_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/config/ubridge.example.yaml validates, and its relative paths resolve next to it."""
    path = Path(__file__).resolve().parents[3] / "deploy" / "config" / "ubridge.example.yaml"
    for name in re.findall(r"\$\{(\w+)\}", path.read_text(encoding="utf-8")):
        monkeypatch.setenv(name, f"secret-value-for-{name.lower()}")
    settings = load_settings(path)
    assert settings.ledger is not None
    assert settings.ledger.calendar == path.parent / "calendar.yaml"
    assert settings.ledger.calendar.exists()
    assert [u.id for u in settings.utilities][:2] == ["yantai-water", "yantai-gas"]


def test_stage_workers_default_to_none_and_are_read_per_stage() -> None:
    """Only the stages configured get workers; every other stage transforms in its own loop."""
    settings = parse_settings({**MINIMAL, "stages": {"normaliser-gonggai-spgl": {"workers": 2}}})
    configured = (settings.workers("normaliser-gonggai-spgl"), settings.workers("normaliser-gonggai"))
    assert (*configured, settings.workers("ledger")) == (2, 0, 0)


def test_workers_for_a_stage_that_cannot_have_them_names_the_key() -> None:
    """A stateful or I/O stage is not a key of ``stages``: the error names it and lists the allowed ones."""
    with pytest.raises(ConfigError, match=r"stages\.ledger\.\[key\]: Input should be 'normaliser-gonggai'"):
        parse_settings({**MINIMAL, "stages": {"ledger": {"workers": 2}}})


def test_the_router_keeps_state_and_gets_no_workers() -> None:
    """The router keeps the grants standing behind each task, so ``stages.router`` is refused by name."""
    with pytest.raises(ConfigError, match=r"stages\.router\.\[key\]: Input should be 'normaliser-gonggai'"):
        parse_settings({**MINIMAL, "stages": {"router": {"workers": 2}}})


def test_negative_workers_are_refused() -> None:
    """Workers is a count of processes, 0 or more."""
    match = r"stages\.normaliser-gonggai\.workers: Input should be greater than or equal to 0"
    with pytest.raises(ConfigError, match=match):
        parse_settings({**MINIMAL, "stages": {"normaliser-gonggai": {"workers": -1}}})


def test_parallel_stage_names_are_the_stages_own() -> None:
    """The configuration's stage names match the processors', so a rename cannot silently disable workers."""
    assert set(get_args(ParallelStage)) == {GonggaiNormaliser.stage, SpglNormaliser.stage}


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"protocol": "SASL_SSL"}, r"kafka\.security: .*sasl \(mechanism, username, password\) is required"),
        ({"sasl": {"username": "u", "password": "p"}}, r"kafka\.security: .*protocol PLAINTEXT does not use it"),
        ({"protocol": "SASL_PLAINTEXT", "ca_file": "ca.pem", "sasl": {"username": "u", "password": "p"}}, "need TLS"),
        ({"protocol": "SSL", "cert_file": "client.pem"}, "cert_file and key_file go together"),
        ({"protocol": "SASL_SSL", "sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}}, "mechanism"),
        ({"protocol": "TLS"}, r"kafka\.security\.protocol"),
    ],
)
def test_inconsistent_kafka_security_is_refused_by_name(security: dict[str, object], message: str) -> None:
    """A security section that could never connect is refused at start-up, naming kafka.security."""
    with pytest.raises(ConfigError, match=message):
        parse_settings({**MINIMAL, "kafka": {"security": security}})


def test_kafka_password_comes_from_the_environment_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``${KAFKA_PASSWORD}`` is read from the environment and never shown when the settings are printed."""
    monkeypatch.setenv("KAFKA_PASSWORD", "pa55-word")
    sasl = {"mechanism": "SCRAM-SHA-256", "username": "ubridge", "password": "${KAFKA_PASSWORD}"}
    settings = parse_settings({**MINIMAL, "kafka": {"security": {"protocol": "SASL_SSL", "sasl": sasl}}})
    assert settings.kafka.security.sasl is not None
    assert settings.kafka.security.sasl.password.get_secret_value() == "pa55-word"
    assert "pa55-word" not in repr(settings)


def test_admin_tokens_come_from_the_environment_and_must_be_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """admin.tokens takes ${NAME} like every secret; a short token is refused naming the key and the token."""
    monkeypatch.setenv("UBRIDGE_ADMIN_TOKEN", "a-long-enough-admin-token")
    settings = parse_settings({**MINIMAL, "admin": {"port": 8093, "tokens": {"ops": "${UBRIDGE_ADMIN_TOKEN}"}}})
    assert settings.admin is not None
    assert settings.admin.tokens["ops"].get_secret_value() == "a-long-enough-admin-token"
    with pytest.raises(ConfigError, match=r"admin\.tokens: .*at least 16 characters: ops"):
        parse_settings({**MINIMAL, "admin": {"tokens": {"ops": "short"}}}, origin="ubridge.yaml")
