"""Joining the national data-sharing tables (``SPGL_*``, DESIGN §4.1) into canonical project events.

A utility's query account sees five tables, each read incrementally by ``lsh``. One approval fact, "item
X of project P was granted", is spread over three of them: the handling detail (``SPGL_XMSPSXBLXXXXB``:
``blzt``, ``blsj``) names its item instance (``SPGL_XMSPSXBLXXB``: stage, contact), which names its
project (``SPGL_XMJBXXB``: name, site, builder); the project's result documents (``SPGL_XMSPSXPFWJXXB``)
and attachments (``SPGL_XMQTFJXXB``) travel alongside. :class:`SpglJoiner` turns that stream of rows into
:class:`JoinedRecord` objects, one per handling detail, as soon as its parents are known:

* a detail whose parents have not arrived yet (they are pushed later, or sit beyond this read) is
  **held**; when the held rows exceed ``max_held`` the oldest comes back as a :class:`JoinFailure` so the
  caller dead-letters it ("parent row never arrived");
* rows are **upserts** on ``(xzqhdm, table, dfsjzj)``: a later row with the same key replaces the earlier
  one, and a detail re-sent unchanged yields nothing;
* ``sjyxbs=0`` **withdraws** a row: a withdrawn detail, or the last detail of a withdrawn item instance or
  project, yields a record marked withdrawn, which :func:`joined_to_event` maps to a retraction.

Held rows survive restarts through :meth:`SpglJoiner.to_state` / :meth:`SpglJoiner.from_state`; what was
known before (projects, instances, documents) is rebuilt by :meth:`SpglJoiner.remember` from the rows the
reader already passed. Rows are plain dicts of JSON values (numbers, strings, ISO-8601 times, ``None``).

Example:
    >>> joiner = SpglJoiner(max_held=100)
    >>> joiner.add(DETAILS, detail_row)          # its item instance is not known yet: held
    []
    >>> joiner.add(ITEMS, item_row); joiner.add(PROJECTS, project_row)
    [JoinedRecord(...)]
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ItemStatus, ProjectEvent

PROJECTS: Final = "SPGL_XMJBXXB"
ITEMS: Final = "SPGL_XMSPSXBLXXB"
DETAILS: Final = "SPGL_XMSPSXBLXXXXB"
APPROVALS: Final = "SPGL_XMSPSXPFWJXXB"
ATTACHMENTS: Final = "SPGL_XMQTFJXXB"
TABLES: Final = (PROJECTS, ITEMS, APPROVALS, ATTACHMENTS, DETAILS)  # the order a reader should apply them
DEFAULT_MAX_HELD: Final = 256
NEVER_ARRIVED: Final = "parent row never arrived"

Row = dict[str, Any]
_STATE_VERSION: Final = 1
_PROJECT_FIELDS: Final = ("xmdm", "xmmc", "jsdd", "jsddxzqh", "jsdw", "jsdwdm", "jsxz", "ztze", "ydmj", "jzmj")
_ITEM_FIELDS: Final = ("spsxbm", "spsxmc", "dybzspjdxh", "lxr", "lxrsjh")
_DETAIL_FIELDS: Final = ("spsxslbm", "blzt", "blsj")
_ORIGIN: Final = {
    **dict.fromkeys(_PROJECT_FIELDS, PROJECTS),
    **dict.fromkeys(_ITEM_FIELDS, ITEMS),
    **dict.fromkeys((*_DETAIL_FIELDS, "sjyxbs"), DETAILS),
}
_APPROVAL_COLUMNS: Final = {"wjbh": "pfwh", "wjmc": "pfwjbt", "xzdz": "fjdz", "sha256": "fjzy", "wjlx": "pfwjbt"}
_ATTACHMENT_COLUMNS: Final = {"wjbh": "fjbh", "wjmc": "fjmc", "xzdz": "fjdz", "sha256": "fjzy", "wjlx": "fjlx"}


@dataclass(frozen=True)
class JoinedRecord:
    """One handling detail with its item instance, project and the project's documents at that moment.

    ``withdrawn_by`` names the table whose ``sjyxbs=0`` row withdrew this record (the detail's own table,
    its item instance's or its project's), with the reason in ``withdrawn_reason``.
    """

    record_id: str
    project: Row
    instance: Row
    detail: Row
    approvals: tuple[Row, ...] = ()
    attachments: tuple[Row, ...] = ()
    withdrawn_by: str | None = None
    withdrawn_reason: str | None = None

    @property
    def project_code(self) -> str:
        """The project code (``xmdm``) as the source wrote it."""
        return str(self.project.get("xmdm") or "")

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object written to the raw topic."""
        return {
            "record_id": self.record_id,
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_reason": self.withdrawn_reason,
            PROJECTS: self.project,
            ITEMS: self.instance,
            DETAILS: self.detail,
            APPROVALS: list(self.approvals),
            ATTACHMENTS: list(self.attachments),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "JoinedRecord":
        """Read back :meth:`to_json`; a wrong shape is a :class:`DataError` naming the key."""
        rows = {name: _mapping(doc, name) for name in (PROJECTS, ITEMS, DETAILS)}
        documents = {name: _mapping_list(doc, name) for name in (APPROVALS, ATTACHMENTS)}
        record_id = doc.get("record_id")
        if not isinstance(record_id, str) or not record_id:
            raise DataError("record_id", "joined record lacks its record_id")
        return cls(
            record_id=record_id,
            project=rows[PROJECTS],
            instance=rows[ITEMS],
            detail=rows[DETAILS],
            approvals=documents[APPROVALS],
            attachments=documents[ATTACHMENTS],
            withdrawn_by=_optional_text(doc, "withdrawn_by"),
            withdrawn_reason=_optional_text(doc, "withdrawn_reason"),
        )


@dataclass(frozen=True)
class JoinFailure:
    """A row that cannot be joined: the caller dead-letters ``row`` with ``error``."""

    table: str
    row: Row
    error: DataError


JoinOutcome = JoinedRecord | JoinFailure


def upsert_key(table: str, row: Mapping[str, Any]) -> str:
    """The identity a row is upserted on: ``xzqhdm|table|dfsjzj``."""
    return f"{row.get('xzqhdm')}|{table}|{row.get('dfsjzj')}"


class SpglJoiner:
    """Joins rows of the five tables, fed table by table in ``lsh`` order (parents first within a read).

    Args:
        max_held: How many details may wait for their parents; beyond it the oldest is failed.
    """

    def __init__(self, *, max_held: int = DEFAULT_MAX_HELD) -> None:
        if max_held < 1:
            message = "max_held must be at least 1"
            raise ValueError(message)
        self.max_held = max_held
        self._projects: dict[str, Row] = {}  # xmdm → latest row
        self._instances: dict[str, Row] = {}  # spsxslbm → latest row
        self._project_instances: dict[str, set[str]] = {}  # xmdm → spsxslbm
        self._documents: dict[str, dict[str, dict[str, Row]]] = {APPROVALS: {}, ATTACHMENTS: {}}  # table→xmdm→key
        self._latest: dict[str, Row] = {}  # spsxslbm → last detail joined
        self._digests: dict[str, int] = {}  # upsert key of a detail → digest of its content
        self._held: dict[str, Row] = {}  # held details in arrival order, by upsert key and lsh

    @property
    def held_count(self) -> int:
        """How many details wait for their parents."""
        return len(self._held)

    def add(self, table: str, row: Row) -> list[JoinOutcome]:
        """Apply one new row; return the records it completed and any row it failed, in order."""
        fault = _check_common(table, row)
        if fault is not None:
            return [JoinFailure(table, row, fault)]
        if table == DETAILS:
            return self._add_detail(row)
        try:
            withdrawn = self._apply_parent(table, row)
        except DataError as exc:
            return [JoinFailure(table, row, exc)]
        outcomes: list[JoinOutcome] = [self._withdraw(detail, table, row) for detail in withdrawn]
        return outcomes + self._release()

    def remember(self, table: str, row: Row) -> None:
        """Apply a row read before a restart: learn from it, emit nothing, hold nothing."""
        if _check_common(table, row) is not None:
            return
        if table != DETAILS:
            try:
                self._apply_parent(table, row)
            except DataError:
                return
            return
        key = upsert_key(table, row)
        if _held_key(key, row) in self._held:
            return
        self._digests[key] = _digest(row)
        if isinstance(row.get("spsxslbm"), str):
            self._latest[row["spsxslbm"]] = row

    def to_state(self) -> dict[str, Any]:
        """The held rows as a JSON-serialisable object (what else the joiner knew is rebuilt by remember)."""
        return {"version": _STATE_VERSION, "held": list(self._held.values())}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, *, max_held: int = DEFAULT_MAX_HELD) -> "SpglJoiner":
        """A joiner holding the rows of :meth:`to_state` (``None``: an empty one).

        Raises:
            ValueError: If ``state`` is not what :meth:`to_state` returns.
        """
        joiner = cls(max_held=max_held)
        if state is None:
            return joiner
        held = state.get("held")
        if state.get("version") != _STATE_VERSION or not isinstance(held, list):
            message = f"joiner state must be version {_STATE_VERSION} with a 'held' list"
            raise ValueError(message)
        for row in held:
            if not isinstance(row, dict):
                message = "joiner state: every held row must be an object"
                raise ValueError(message)
            key = upsert_key(DETAILS, row)
            joiner._held[_held_key(key, row)] = row
            joiner._digests[key] = _digest(row)
        return joiner

    def _apply_parent(self, table: str, row: Row) -> list[Row]:
        """Store a parent or document row; return the last details it withdraws."""
        withdrawn = row.get("sjyxbs") == 0
        if table == PROJECTS:
            code = _link(row, "xmdm", table)
            self._projects[code] = row
            instances = self._project_instances.get(code, set())
            return [self._latest[i] for i in sorted(instances) if withdrawn and i in self._latest]
        if table == ITEMS:
            code, project = _link(row, "spsxslbm", table), _link(row, "xmdm", table)
            self._instances[code] = row
            self._project_instances.setdefault(project, set()).add(code)
            return [self._latest[code]] if withdrawn and code in self._latest else []
        if table in self._documents:
            documents = self._documents[table].setdefault(_link(row, "xmdm", table), {})
            documents.pop(upsert_key(table, row), None)
            if not withdrawn:
                documents[upsert_key(table, row)] = row
            return []
        raise DataError("", f"unknown table {table!r}; expected one of {', '.join(TABLES)}")

    def _add_detail(self, row: Row) -> list[JoinOutcome]:
        if not isinstance(row.get("spsxslbm"), str) or not row["spsxslbm"]:
            return [JoinFailure(DETAILS, row, DataError(f"{DETAILS}.spsxslbm", "item instance code is missing"))]
        key, digest = upsert_key(DETAILS, row), _digest(row)
        if self._digests.get(key) == digest:
            return []  # the same row pushed again: an upsert that changes nothing
        self._digests[key] = digest
        joined = self._join(row)
        if joined is not None:
            return [joined]
        self._held[_held_key(key, row)] = row
        if len(self._held) <= self.max_held:
            return []
        oldest = next(iter(self._held))
        return [self._fail(self._held.pop(oldest))]

    def _join(self, detail: Row) -> JoinedRecord | None:
        instance = self._instances.get(detail["spsxslbm"])
        project = None if instance is None else self._projects.get(instance["xmdm"])
        if instance is None or project is None:
            return None
        self._latest[detail["spsxslbm"]] = detail
        withdrawn_by, reason = None, None
        for table, row in ((DETAILS, detail), (ITEMS, instance), (PROJECTS, project)):
            if row.get("sjyxbs") == 0:
                withdrawn_by, reason = table, row.get("sjwxyy")
                break
        return JoinedRecord(
            record_id=f"{detail['xzqhdm']}:{DETAILS}:{detail['dfsjzj']}:{detail['lsh']}",
            project=project,
            instance=instance,
            detail=detail,
            approvals=self._project_documents(APPROVALS, project["xmdm"], instance.get("dybzspjdxh")),
            attachments=self._project_documents(ATTACHMENTS, project["xmdm"], instance.get("dybzspjdxh")),
            withdrawn_by=withdrawn_by,
            withdrawn_reason=reason,
        )

    def _project_documents(self, table: str, code: str, stage: object) -> tuple[Row, ...]:
        """The project's valid documents issued up to ``stage``, so a backlog read later joins as it happened."""
        rows = [row for row in self._documents[table].get(code, {}).values() if self._issued_by(row, stage)]
        return tuple(sorted(rows, key=lambda row: int(row["lsh"])))

    def _issued_by(self, document: Row, stage: object) -> bool:
        instance = self._instances.get(str(document.get("spsxslbm")))
        issued_at = None if instance is None else instance.get("dybzspjdxh")
        if not isinstance(issued_at, int) or not isinstance(stage, int):
            return True  # cannot tell: better one document too many than a missing permit
        return issued_at <= stage

    def _withdraw(self, detail: Row, table: str, parent: Row) -> JoinOutcome:
        joined = self._join(detail)
        if joined is None:  # cannot happen: a detail was joined before, so its parents are known
            return self._fail(detail)
        record_id = f"{parent['xzqhdm']}:{table}:{parent['dfsjzj']}:{parent['lsh']}>{detail['dfsjzj']}"
        reason = parent.get("sjwxyy")
        return replace(
            joined,
            record_id=record_id,
            withdrawn_by=table,
            withdrawn_reason=reason if isinstance(reason, str) else None,
        )

    def _release(self) -> list[JoinOutcome]:
        released: list[JoinOutcome] = []
        for key, row in list(self._held.items()):
            joined = self._join(row)
            if joined is not None:
                del self._held[key]
                released.append(joined)
        return released

    def _fail(self, detail: Row) -> JoinFailure:
        code = detail["spsxslbm"]
        instance = self._instances.get(code)
        if instance is None:
            field, missing = f"{DETAILS}.spsxslbm", f"no {ITEMS} row with spsxslbm {code}"
        else:
            field, missing = f"{ITEMS}.xmdm", f"no {PROJECTS} row with xmdm {instance['xmdm']}"
        reason = f"{NEVER_ARRIVED}: {missing} while {self.max_held} later rows were held (lsh {detail['lsh']})"
        return JoinFailure(DETAILS, detail, DataError(field, reason))


def joined_to_event(
    joined: JoinedRecord | Mapping[str, Any],
    *,
    source: str,
    ingested_at: datetime,
    status_codes: Mapping[int, ItemStatus] | None = None,
) -> ProjectEvent:
    """Map and validate one joined record (or its JSON) into a canonical ProjectEvent.

    Stage comes from ``dybzspjdxh``, item status from ``blzt`` through ``status_codes``, builder from the
    project, contact from the item instance, documents from the result documents (``PERMIT``/``APPROVAL``)
    and attachments (``DRAWING``/``OTHER``) with ``sha256:`` digests. A withdrawn record is a retraction.
    The SPGL tables carry no utility demand, so ``demands`` is empty (unknown).

    Raises:
        DataError: For a missing or invalid field; ``field`` is ``<TABLE>.<column>``.
        ValueError: If ``ingested_at`` is naive.
    """
    record = joined if isinstance(joined, JoinedRecord) else JoinedRecord.from_json(joined)
    documents = [*_documents(record.approvals, APPROVALS), *_documents(record.attachments, ATTACHMENTS)]
    flat: dict[str, Any] = {"seq": record.record_id}
    for fields, row in ((_PROJECT_FIELDS, record.project), (_ITEM_FIELDS, record.instance)):
        flat |= {name: row.get(name) for name in fields}
    flat |= {name: record.detail.get(name) for name in _DETAIL_FIELDS}
    flat["sjyxbs"] = 0 if record.withdrawn_by is not None or record.detail.get("sjyxbs") == 0 else 1
    flat["fjxx"] = [document for _, _, document in documents]
    try:
        return normalise(flat, source=source, ingested_at=ingested_at, status_codes=status_codes)
    except DataError as exc:
        raise _spgl_error(exc, documents) from exc


def _documents(rows: tuple[Row, ...], table: str) -> list[tuple[str, Row, dict[str, Any]]]:
    out = []
    for row in rows:
        if table == APPROVALS:
            title = row.get("pfwjbt")
            kind = "PERMIT" if isinstance(title, str) and "许可" in title else "APPROVAL"
            number, url = row.get("pfwh"), row.get("fjdz")
        else:
            kind = "DRAWING" if "图" in str(row.get("fjlx") or "") else "OTHER"
            title, number, url = row.get("fjmc"), row.get("fjbh"), row.get("fjdz")
        document = {"wjlx": kind, "wjbh": number, "wjmc": title, "xzdz": url, "sha256": row.get("fjzy")}
        out.append((table, row, document))
    return out


def _spgl_error(exc: DataError, documents: list[tuple[str, Row, dict[str, Any]]]) -> DataError:
    """Rename a field of the flattened record to the SPGL table and column it came from."""
    parts = exc.field.split(".")
    if parts[0] == "fjxx" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(documents):  # noqa: PLR2004
        table, row, _ = documents[int(parts[1])]
        columns = _APPROVAL_COLUMNS if table == APPROVALS else _ATTACHMENT_COLUMNS
        return DataError(f"{table}.{columns.get(parts[2], parts[2])}", f"{exc.reason} (lsh {row.get('lsh')})")
    origin = _ORIGIN.get(parts[0])
    if origin is None:
        return exc
    return DataError(f"{origin}.{exc.field}", exc.reason)


def _check_common(table: str, row: Mapping[str, Any]) -> DataError | None:
    lsh = row.get("lsh")
    if not isinstance(lsh, int) or isinstance(lsh, bool):
        return DataError(f"{table}.lsh", "serial number lsh must be an integer")
    for name in ("dfsjzj", "xzqhdm"):
        if not isinstance(row.get(name), str) or not row[name]:
            return DataError(f"{table}.{name}", f"{name} is required but missing or empty (lsh {lsh})")
    if row.get("sjyxbs") not in (0, 1, None):
        return DataError(f"{table}.sjyxbs", f"sjyxbs must be 0 (withdrawn) or 1 (valid) (lsh {lsh})")
    return None


def _link(row: Mapping[str, Any], name: str, table: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        path = f"{table}.{name}"
        raise DataError(path, f"{name} is required to join the row but missing (lsh {row.get('lsh')})")
    return value.strip()


def _held_key(key: str, row: Mapping[str, Any]) -> str:
    return f"{key}#{row.get('lsh')}"


def _digest(row: Mapping[str, Any]) -> int:
    # Digests live only in memory (rebuilt by remember after a restart), so the process's hash will do.
    return hash(tuple(sorted((name, value) for name, value in row.items() if name != "lsh")))


def _mapping(doc: Mapping[str, Any], name: str) -> Row:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise DataError(name, f"joined record lacks the {name} row")
    return value


def _mapping_list(doc: Mapping[str, Any], name: str) -> tuple[Row, ...]:
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise DataError(name, f"joined record's {name} must be a list of rows")
    return tuple(value)


def _optional_text(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) else None
