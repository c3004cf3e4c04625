"""A path type for configuration files: relative paths are resolved against the configuration file's folder.

``load_settings`` validates with ``context={"base_dir": <folder of the file>}``; without a context (settings
built in code) paths stay as given.
"""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or path.is_absolute():
        return path
    return Path(base) / path


ConfigPath = Annotated[Path, AfterValidator(_resolve)]
