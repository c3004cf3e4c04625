"""The demo's linked services beyond water, gas and heat (issue 18 item 3): a power utility and a telecom operator.

Both are configuration only, which is the point: two rows added to the shipped service areas for 芝罘区
(370602), so that a project there whose demand the approval system does not state reaches 供电 and 通信 too,
next to water, gas and heat ("水电气暖信等联动服务", 003). Their simulators start like any other utility's.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from connectors.demo.summary import UtilityFigures
from routing.services import shipped_services
from routing.yaml_files import read_yaml

LINKED: Final[tuple[dict[str, Any], ...]] = (
    {"utility": "yantai-power", "region_prefix": "370602", "services": ["POWER"]},
    {"utility": "yantai-telecom", "region_prefix": "370602", "services": ["TELECOM"]},
)


def service_areas(shipped: Path, workdir: Path) -> Path:
    """The shipped service areas with the power and telecom rows, written to ``workdir`` for the demo to run."""
    document = dict(read_yaml(shipped))
    document["version"] = f"{document['version']}+power-telecom"
    document["areas"] = [*document["areas"], *LINKED]
    path = workdir / "service-areas.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def linked_line(rows: Sequence[UtilityFigures]) -> str:
    """The summary's line on the linked services: tasks each of their utilities received, of those expected."""
    services = shipped_services()
    by_utility = {row.utility: row for row in rows}
    parts = []
    for area in LINKED:
        row = by_utility.get(area["utility"])
        got = f"{row.delivered}/{row.expected}" if row else "0/0"
        parts.append(f"{services.name(area['services'][0])} {area['utility']} {got} tasks")
    return "linked services (水电气暖信): " + ", ".join(parts) + " delivered."
