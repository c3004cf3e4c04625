"""Audit records: who did what to the installation, when and why (``ubridge.audit.v1``, kept forever)."""

import json
from datetime import UTC, datetime
from typing import Any

from routing.privacy import mask_text


def audit_value(action: str, *, by: str, reason: str | None, at: datetime, what: dict[str, Any]) -> bytes:
    """The JSON value of an audit record (``what`` names the stage, topics, offsets and counts concerned)."""
    masked = None if reason is None else mask_text(reason)  # the audit topic is kept forever
    record = {"action": action, "by": by, "at": at.astimezone(UTC).isoformat(), "reason": masked, "what": what}
    return json.dumps(record, ensure_ascii=False).encode()
