"""The default REST adapter's request body: a UtilityTask as JSON, times as ISO-8601 UTC strings."""

import json
from datetime import datetime
from typing import Any

from routing.records import UtilityTask


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = f"cannot encode {type(value).__name__} as JSON"
    raise TypeError(message)


def task_body(task: UtilityTask) -> bytes:
    """The JSON body POSTed to a utility's ``/v1/tasks``."""
    return json.dumps(task, ensure_ascii=False, default=_default, separators=(",", ":")).encode()
