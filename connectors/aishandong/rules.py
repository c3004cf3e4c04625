"""The settings model of ``deploy/config/aishandong.yaml``: the form's words and the shared materials.

Validated with pydantic when a stage starts; an error names the file and the key, e.g.
``aishandong.yaml: service_names.供暖: Value error, unknown service 'HAET'; did you mean 'HEAT'?``.

Example:
    >>> rules = load_application_rules(Path("deploy/config/aishandong.yaml"))
    >>> rules.vocabulary.service_names["供暖"]
    'HEAT'
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from routing.aishandong import ApplicationRules, MaterialSource, Vocabulary
from routing.records import ApplicantType, ApplicationKind, Service
from routing.services import configured_service
from routing.yaml_files import read_yaml

MaterialKind = Literal["PERMIT", "APPROVAL", "DRAWING", "PROPERTY_CERTIFICATE", "ID_CARD", "BUSINESS_LICENSE", "OTHER"]
_Word = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^\S+$")]


class ApplicationRulesFile(BaseModel):
    """``aishandong.yaml``: every key is required but ``shared_materials`` (none: nothing to fetch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shared_materials: dict[ApplicationKind, dict[MaterialKind, MaterialSource]] = {}
    service_names: Annotated[dict[_Word, Annotated[Service, AfterValidator(configured_service)]], Field(min_length=1)]
    applicant_types: Annotated[dict[_Word, ApplicantType], Field(min_length=1)]


def load_application_rules(path: Path) -> ApplicationRules:
    """Read and validate an ``aishandong.yaml``.

    Raises:
        OSError: If the file cannot be read.
        ValueError: Naming the file and each bad key.
    """
    try:
        model = ApplicationRulesFile.model_validate(read_yaml(path))
    except ValidationError as exc:
        problems = [
            f"{path.name}: {'.'.join(str(part) for part in item['loc']) or '<top>'}: {item['msg']}"
            for item in exc.errors()
        ]
        raise ValueError("\n".join(problems)) from None
    vocabulary = Vocabulary(service_names=model.service_names, applicant_types=model.applicant_types)
    shared: dict[str, Mapping[str, MaterialSource]] = {
        str(kind): {str(material): source for material, source in materials.items()}
        for kind, materials in model.shared_materials.items()
    }
    return ApplicationRules(vocabulary=vocabulary, shared_materials=shared)
