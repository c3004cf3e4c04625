"""The ``hotline:`` section: validated with the bad key named; its stages and topics listed when configured."""

import pytest

from connectors.registry import stage_specs, topics
from connectors.settings import ConfigError, parse_settings

MINIMAL = {"routing": {"service_areas": "areas.yaml"}}
PUSH = {"port": 0, "secret": "hotline-secret-0123456789"}
PULL = {"base_url": "http://127.0.0.1:9", "token": "feed-token"}


def test_both_intakes_and_the_router_are_stages_with_their_topics() -> None:
    """push, pull (leased) and the router run when configured; the two hotline topics are created."""
    settings = parse_settings({**MINIMAL, "hotline": {"push": PUSH, "pull": PULL}})
    names = [spec.name for spec in stage_specs(settings)]
    assert {"hotline-push", "hotline-pull", "hotline-router"} <= set(names)
    created = {spec.name for spec in topics(settings)}
    assert {"ubridge.hotline.work-orders.v1", "ubridge.hotline.return-visits.v1"} <= created
    assert "ubridge.dlq.hotline-router.v1" in created and "ubridge.dlq.hotline-pull.v1" in created
    assert "ubridge.dlq.hotline-push.v1" not in created  # the intake answers 4xx instead


def test_without_the_section_nothing_of_the_hotline_runs() -> None:
    """No ``hotline:`` means no hotline stage and no work-order topic; return visits are the complaint loop's input."""
    settings = parse_settings(MINIMAL)
    assert not [spec.name for spec in stage_specs(settings) if spec.name.startswith("hotline")]
    assert [spec.name for spec in topics(settings) if "hotline" in spec.name] == ["ubridge.hotline.return-visits.v1"]


def test_route_false_keeps_the_orders_on_their_topic() -> None:
    """``route: false`` runs the intakes without the router."""
    settings = parse_settings({**MINIMAL, "hotline": {"pull": PULL, "route": False}})
    assert [spec.name for spec in stage_specs(settings) if spec.name.startswith("hotline")] == ["hotline-pull"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"push": {**PUSH, "secrte": "x"}}, r"hotline.push.secrte: Extra inputs are not permitted"),
        ({"push": {"port": 1}}, r"hotline.push.secret: Field required"),
        ({"push": {**PUSH, "secret": "short"}}, r"hotline.push.secret: .*at least 16 characters"),
        ({"pull": {"base_url": "http://x"}}, r"hotline.pull.token: Field required"),
        ({"pull": {**PULL, "page_size": 0}}, r"hotline.pull.page_size: "),
        ({"rout": True}, r"hotline.rout: Extra inputs are not permitted"),
    ],
)
def test_bad_keys_are_named(section: dict[str, object], message: str) -> None:
    """A misspelt, missing or out-of-range key of the section is refused naming its full path."""
    with pytest.raises(ConfigError, match=message):
        parse_settings({**MINIMAL, "hotline": section}, origin="ubridge.yaml")
