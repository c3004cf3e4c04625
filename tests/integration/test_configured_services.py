"""A configured service beyond water, gas and heat on the real broker: a POWER task routed and delivered."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from connectors.app import App
from connectors.runtime.kafka import make_producer
from routing.gonggai import normalise
from schemas import Codec
from simulators.utility import UtilitySimulator
from tests.support import settings_for, utility_config, wait_until

pytestmark = pytest.mark.integration

POWER = "yantai-power"


def test_a_project_needing_power_reaches_the_power_utility(
    kafka_bootstrap: str, unique_prefix: str, tmp_path: Path
) -> None:
    """A 工改 event demanding 供电 is routed to yantai-power and its system receives a POWER task (E- reference)."""
    areas = tmp_path / "service-areas.yaml"
    rows = [{"utility": POWER, "region_prefix": "3706", "services": ["POWER"]}]
    areas.write_text(yaml.safe_dump({"version": "t", "areas": rows}), encoding="utf-8")
    sim = UtilitySimulator(POWER, token=f"token-{POWER}")
    url = sim.start()
    try:
        settings = settings_for(
            kafka_bootstrap,
            unique_prefix,
            routing={"service_areas": str(areas)},
            utilities=[utility_config(POWER, url)],
        )
        raw = {
            "seq": 1,
            "xmdm": "2026-370602-47-01-000777",
            "xmmc": "幸福里四期",
            "jsdd": "芝罘区幸福南路20号",
            "jsddxzqh": "370602",
            "jsdw": "烟台市幸福置业有限公司",
            "dybzspjdxh": 2,
            "blzt": 11,
            "blsj": "2026-11-25 10:31:00",
            "xqxx": [{"fwlx": "供电"}],
        }
        event = normalise(raw, source="gonggai-interface", ingested_at=datetime.now(UTC))
        app = App(settings, only=["router", f"sink-{POWER}"], serve_metrics=False)
        app.start()
        try:
            producer = make_producer(settings.kafka)
            producer.send(
                settings.topic("project_events"),
                key=event["project_code"].encode(),
                value=Codec.default().encode("ProjectEvent", event),
            )  # type: ignore[union-attr]
            producer.flush()
            producer.close()
            wait_until(lambda: len(sim.tasks()) == 1, timeout_s=60, what="the power utility's task")
        finally:
            app.stop()
            stopped = app.wait(timeout_s=30)  # its status publisher too, which a bare stop left running
        assert stopped
        (task,) = sim.tasks()
        assert (task.body["service"], task.body["utility_id"], task.utility_ref[:2]) == ("POWER", POWER, "E-")
    finally:
        sim.stop()
