"""Revisions of a task as its utility receives them (DESIGN §5, §8; contract in deploy/UTILITY-CONTRACT.md).

A task id names one piece of work for one utility for its whole life; what ubridge knows about it changes
(the stage-2 grant brings the drawings, a retraction cancels it). Each content the utility is sent is a
*revision*: 1 for the first, one more for each change. A record on the task topic whose content equals the
revision last delivered is a repeat (a replay, a reprocessed event) and gets no new number. The
``Idempotency-Key`` of a revision is ``<task id>:<revision>``, so a repeat reuses its key with the very same
body, and a change never reuses one.

"Content" leaves out what only says when ubridge handled the record (``created_at``, ``ingested_at``) and
the revision number itself: two routings of one event are one revision. The revision also remembers the
task-topic offset it was delivered from: reading the task topic again (a sink's offsets reset, a rebalance
before a commit) meets records at or below it, which were delivered already, so renumbering never happens.

>>> first = next_revision(None, "aaaa")
>>> first, next_revision(first, "aaaa"), next_revision(first, "bbbb")
(Revision(number=1, digest='aaaa', offset=-1), None, Revision(number=2, digest='bbbb', offset=-1))
"""

import hashlib
import json
from datetime import datetime
from typing import Final, NamedTuple

import orjson

from routing.records import UtilityTask

VOLATILE_FIELDS: Final = frozenset({"created_at", "ingested_at", "revision"})
# The fields of UtilityTask v5, when stored digests began to outlive schema changes. A field added since enters
# the digest only when it says something (not null, not empty): a task stored before the field existed decodes
# with its default, and must not look changed to a sink that upgraded.
DIGESTED_AS_OF_V5: Final = frozenset(
    {
        *("task_id", "kind", "action", "utility_id", "service", "demand", "project_code", "project_name"),
        *("region_code", "site_address", "builder_name", "builder_uscc", "contact_name", "contact_mobile"),
        *("project_nature", "floor_area_m2", "land_area_m2", "trigger_stage", "documents", "missing_materials"),
        *("application_id", "source", "source_event_id", "occurred_at", "contact_due", "contact_due_note"),
        *("flags", "application_filed_at", "application_kind", "permit_granted_at", "materials_to_fetch"),
        *("dropped_materials", "user_category"),
    }
)
_DIGEST_LENGTH: Final = 32
_ORJSON_OPTIONS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
# orjson writes a float below 1e-4 as 1e-5 or 0.00001 where the standard library writes 1e-05: either mark
# sends the content to the standard library (a text that merely contains one only costs the slower path)
_FLOAT_FORMS_APART: Final = (b"e-", b"0.0000")


class Revision(NamedTuple):
    """The revision of a task last delivered (or refused), the digest of its content, and its record's offset."""

    number: int
    digest: str
    offset: int = -1


def already_delivered(last: Revision | None, offset: int) -> bool:
    """Whether the task record at ``offset`` is one the last revision already covers (read again)."""
    return last is not None and offset <= last.offset


def content_digest(task: UtilityTask) -> str:
    """The digest of what a task says, leaving out :data:`VOLATILE_FIELDS` (32 hex characters)."""
    content = {
        name: value
        for name, value in task.items()
        if name not in VOLATILE_FIELDS and (name in DIGESTED_AS_OF_V5 or value not in (None, []))
    }
    return hashlib.sha256(_canonical_json(content)).hexdigest()[:_DIGEST_LENGTH]


def next_revision(last: Revision | None, digest: str, offset: int = -1) -> Revision | None:
    """The revision a task with content ``digest`` (from the record at ``offset``) becomes; None: a repeat."""
    if last is None:
        return Revision(1, digest, offset)
    if last.digest == digest:
        return None
    return Revision(last.number + 1, digest, offset)


def idempotency_key(task_id: str, revision: int) -> str:
    """The ``Idempotency-Key`` of one revision of a task."""
    return f"{task_id}:{revision}"


def encode_revision(revision: Revision) -> bytes:
    """A revision as stored on the sink's compacted revision topic."""
    stored = {"revision": revision.number, "digest": revision.digest, "offset": revision.offset}
    return json.dumps(stored, separators=(",", ":")).encode()


def decode_revision(value: bytes) -> Revision:
    """Read what :func:`encode_revision` wrote.

    Raises:
        ValueError: not a stored revision.
    """
    stored = json.loads(value)
    if not isinstance(stored, dict):
        stored = {}
    number, digest, offset = stored.get("revision"), stored.get("digest"), stored.get("offset", -1)
    if not isinstance(number, int) or number < 1 or not isinstance(digest, str) or not isinstance(offset, int):
        msg = f"not a stored revision: {value[:80]!r}"
        raise ValueError(msg)
    return Revision(number, digest, offset)


def _canonical_json(content: dict[str, object]) -> bytes:
    """The digested text: the standard library's sorted, compact, unescaped JSON, the form stored digests have.

    orjson writes the same bytes faster (the sink digests every task it reads: 14 → 7 µs a digest), except for what
    it refuses (an integer beyond 64 bits, a key that is not a string, a lone surrogate) and tiny floats; those
    take the standard library's path, so a digest never depends on which library wrote it. The one difference
    left is NaN or infinity, which orjson writes ``null``: the normalisers refuse both, so no task carries one.
    """
    try:
        text = orjson.dumps(content, default=_instant, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        pass
    else:
        if not any(mark in text for mark in _FLOAT_FORMS_APART):
            return text
    return json.dumps(content, sort_keys=True, ensure_ascii=False, default=_instant, separators=(",", ":")).encode()


def _instant(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"cannot encode {type(value).__name__}"
    raise TypeError(msg)
