"""Reading the YAML data files routing works from (service areas, policies, calendar, mappings, materials)."""

from pathlib import Path
from typing import Any

import yaml


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
