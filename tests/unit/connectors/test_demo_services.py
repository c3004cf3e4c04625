"""The demo's power utility and telecom operator: configuration only, and a line in the summary."""

from pathlib import Path

from connectors.demo.services import linked_line, service_areas
from connectors.demo.summary import UtilityFigures
from routing.service_areas import load_service_areas

SHIPPED = Path(__file__).resolve().parents[3] / "deploy" / "config" / "service-areas.yaml"


def test_the_demo_areas_add_power_and_telecom_in_zhifu_and_keep_the_rest(tmp_path: Path) -> None:
    """芝罘区 gets yantai-power and yantai-telecom; every shipped utility still serves what it did."""
    demo = load_service_areas(service_areas(SHIPPED, tmp_path / "work"))
    shipped = load_service_areas(SHIPPED)
    assert (demo.utility_for("370602", "POWER"), demo.utility_for("370602", "TELECOM")) == (
        "yantai-power",
        "yantai-telecom",
    )
    assert demo.utility_for("370611", "POWER") is None
    assert demo.utilities() == shipped.utilities() | {"yantai-power", "yantai-telecom"}


def test_the_summary_line_names_each_linked_service_with_its_deliveries() -> None:
    """供电 and 通信 with delivered/expected; a utility without a row counts 0/0."""
    row = UtilityFigures("yantai-power", 4, 4, 0, 0, 0, 0, 0, ())
    assert linked_line([row]) == (
        "linked services (水电气暖信): 供电 yantai-power 4/4 tasks, 通信 yantai-telecom 0/0 tasks delivered."
    )
