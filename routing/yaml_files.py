"""Reading the YAML data files routing works from (service areas, policies, calendar, mappings, materials)."""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """The parsed document.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid YAML (or not UTF-8); the message names the file.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        message = f"{path}: not valid YAML: {exc}"
        raise ValueError(message) from exc


def read_model(path: Path, model: type[M]) -> M:
    """The file validated as ``model``.

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not valid; one line per problem, naming the file and the key (``areas[2].utility``).
    """
    try:
        return model.model_validate(read_yaml(path))
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
            lines.append(f"{path}: {key or '<top>'}: {item['msg']}")
        raise ValueError("\n".join(lines)) from exc
