"""The settings model of deploy/config/aishandong.yaml: the shipped file loads, a wrong one names file and key."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.aishandong.rules import load_application_rules

CONFIG = Path(__file__).parents[3] / "deploy" / "config"
RULES = load_application_rules(CONFIG / "aishandong.yaml")
SHARED = RULES.shared_materials


def test_shipped_rules_load() -> None:
    """deploy/config/aishandong.yaml loads: permits and drawings come from the approval system, 供暖 is heat."""
    assert dict(SHARED["CONNECTION"]) == {"PERMIT": "APPROVAL_SYSTEM", "DRAWING": "APPROVAL_SYSTEM"}
    assert RULES.vocabulary.service_names["供暖"] == "HEAT"
    assert RULES.vocabulary.applicant_types["法人"] == "ENTERPRISE"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "service_names: Field required"),
        (
            {"service_names": {"供暖": "WARMTH"}, "applicant_types": {"个人": "PERSON"}},
            "service_names.供暖: Value error, unknown service 'WARMTH'",
        ),
        ({"service_names": {"水": "WATER"}, "applicant_types": {"机关": "STATE"}}, "applicant_types.机关: Input"),
        (
            {"service_names": {"水": "WATER"}, "applicant_types": {"个人": "PERSON"}, "shared_materials": {"PAY": {}}},
            "shared_materials.PAY.[key]: Input",
        ),
        (
            {
                "service_names": {"水": "WATER"},
                "applicant_types": {"个人": "PERSON"},
                "shared_materials": {"CONNECTION": {"PHOTO": "APPROVAL_SYSTEM"}},
            },
            "shared_materials.CONNECTION.PHOTO.[key]: Input",
        ),
        (
            {"service_names": {"水": "WATER"}, "applicant_types": {"个人": "PERSON"}, "required_materials": {}},
            "required_materials: Extra inputs",
        ),
    ],
)
def test_bad_rules_name_the_file_and_key(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    """A wrong aishandong.yaml names the file and the key."""
    path = tmp_path / "aishandong.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"^aishandong\.yaml: ") as caught:
        load_application_rules(path)
    assert message in str(caught.value)
