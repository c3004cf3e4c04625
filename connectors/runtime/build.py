"""What this ubridge is: its version, as installed, for metrics and every log line."""

from importlib.metadata import PackageNotFoundError, version
from typing import Final


def _installed_version() -> str:
    try:
        return version("ubridge")
    except PackageNotFoundError:  # a source tree run without installing: say so rather than guess
        return "0+unknown"


VERSION: Final = _installed_version()
