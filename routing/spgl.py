"""Joining the national data-sharing tables (``SPGL_*``, DESIGN §4.1) into canonical project events.

A utility's query account sees five tables, each read incrementally by ``lsh``. One approval fact, "item
X of project P was granted", is spread over three of them: the handling detail (``SPGL_XMSPSXBLXXXXB``:
``blzt``, ``blsj``) names its item instance (``SPGL_XMSPSXBLXXB``: stage, contact), which names its
project (``SPGL_XMJBXXB``: name, site, builder); the project's result documents (``SPGL_XMSPSXPFWJXXB``)
and attachments (``SPGL_XMQTFJXXB``) travel alongside. :class:`SpglJoiner` turns that stream of rows into
:class:`JoinedRecord` objects, one per handling detail, as soon as its parents are known:

* a detail whose parents have not arrived yet (they are pushed later, or sit beyond this read) is
  **held**; when the held rows exceed ``max_held``, or one waited longer than ``max_held_age_s``, it comes
  back as a :class:`JoinFailure` so the caller dead-letters it ("parent row never arrived");
* parents are looked up by key in a :class:`ParentStore` when a detail needs them (the source's store reads
  the database through a bounded cache), so the joiner's memory does not grow with the tables;
* an item instance is read in its dialect (:mod:`routing.spgl_dialects`): keyed by ``xmdm`` with its stage,
  or by ``gcdm`` with the stage from the local approval-process tables (``SPGL_DFXMSPLC*``);
* rows are **upserts** on ``(xzqhdm, table, dfsjzj)``: a later row with the same key replaces the earlier
  one, and a detail re-sent unchanged yields nothing;
* ``sjyxbs=0`` **withdraws** a row: a withdrawn detail, or the last detail of a withdrawn item instance or
  project, yields a record marked withdrawn, which :func:`joined_to_event` maps to a retraction.

Held rows survive restarts through :meth:`SpglJoiner.to_state` / :meth:`SpglJoiner.from_state`. Rows are
plain dicts of JSON values (numbers, strings, ISO-8601 times, ``None``); a row whose ``lsh`` is NULL is
joined like any other and identified by a digest of its content.

Example:
    >>> joiner = SpglJoiner(max_held=100)
    >>> joiner.add(DETAILS, detail_row)          # its item instance is not known yet: held
    []
    >>> joiner.add(ITEMS, item_row); joiner.add(PROJECTS, project_row)
    [JoinedRecord(...)]
"""

import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, Final, Protocol

from routing.errors import DataError
from routing.gonggai import normalise
from routing.records import ItemStatus, ProjectEvent
from routing.spgl_dialects import Dialect, Dialects, load_dialects

PROJECTS: Final = "SPGL_XMJBXXB"
ITEMS: Final = "SPGL_XMSPSXBLXXB"
DETAILS: Final = "SPGL_XMSPSXBLXXXXB"
APPROVALS: Final = "SPGL_XMSPSXPFWJXXB"
ATTACHMENTS: Final = "SPGL_XMQTFJXXB"
TABLES: Final = (PROJECTS, ITEMS, APPROVALS, ATTACHMENTS, DETAILS)  # the order a reader should apply them
PROCESS_STAGES: Final = "SPGL_DFXMSPLCJDXXB"  # local approval-process stages → standard stage (GCDM dialect)
PROCESS_ITEMS: Final = "SPGL_DFXMSPLCJDSXXXB"  # items of each local stage
DEFAULT_MAX_HELD: Final = 256
NEVER_ARRIVED: Final = "parent row never arrived"

Row = dict[str, Any]
_STATE_VERSION: Final = 2
_DOCUMENT_LINKS: Final = 4096  # projects whose joined documents are kept for their next details
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


class ParentStore(Protocol):
    """What the joiner looks parents up in: the rows read so far, by the values of some of their columns."""

    def latest(self, table: str, where: Mapping[str, object]) -> Row | None:
        """The row of ``table`` with the highest ``lsh`` whose columns equal ``where``'s values."""

    def rows(self, table: str, where: Mapping[str, object]) -> list[Row]:
        """Every row of ``table`` whose columns equal ``where``'s values, in ``lsh`` order."""

    def put(self, table: str, row: Row) -> None:
        """A row was read (a store over the database itself only refreshes what it caches)."""


class MemoryStore:
    """Every row put, indexed by its text and integer values: the store for tests and small exchanges.

    The source uses a store over the database with a bounded cache instead, so that what the joiner
    knows does not grow with the tables.
    """

    def __init__(self) -> None:
        self._index: dict[tuple[str, str, object], list[Row]] = {}

    def put(self, table: str, row: Row) -> None:
        """Index ``row`` by each of its text and integer values."""
        for name, value in row.items():
            if isinstance(value, (str, int)):
                self._index.setdefault((table, name, value), []).append(row)

    def rows(self, table: str, where: Mapping[str, object]) -> list[Row]:
        """Rows matching ``where``, in ``lsh`` order."""
        (column, value), *rest = where.items()
        found = [r for r in self._index.get((table, column, value), []) if all(r.get(c) == v for c, v in rest)]
        return sorted(found, key=lsh_order)

    def latest(self, table: str, where: Mapping[str, object]) -> Row | None:
        """The last row matching ``where``."""
        found = self.rows(table, where)
        return found[-1] if found else None


@dataclass(frozen=True)
class _Missing:
    """The parent a held detail waits for: no row of ``table`` with ``column`` = ``value``."""

    table: str
    column: str
    value: str


@dataclass
class _Held:
    row: Row
    since: float
    missing: _Missing | None  # None: not yet looked up (restored from a cursor)


class SpglJoiner:
    """Joins rows of the ``SPGL_*`` tables, fed table by table (parents first within a read).

    Parents are looked up in ``store`` by key when a detail needs them, so the joiner itself keeps only
    the held details. Each item instance is joined in its own dialect (``dialects``: ``XMDM`` or ``GCDM``).

    Args:
        store: Where parents are looked up; rows fed are put into it (default: a :class:`MemoryStore`).
        dialects: The dialects item rows are read in (default: ``deploy/config/spgl-dialects.yaml``).
        max_held: How many details may wait for their parents; beyond it the oldest is failed.
        max_held_age_s: How long a detail may wait (``None``: without limit); :meth:`expire` fails older ones.
        clock: Seconds since the epoch, for the age of held rows.
    """

    def __init__(
        self,
        *,
        store: ParentStore | None = None,
        dialects: Dialects | None = None,
        max_held: int = DEFAULT_MAX_HELD,
        max_held_age_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_held < 1:
            message = "max_held must be at least 1"
            raise ValueError(message)
        self.max_held = max_held
        self.max_held_age_s = max_held_age_s
        self._store: ParentStore = MemoryStore() if store is None else store
        self._dialects = default_dialects() if dialects is None else dialects
        self._clock = clock
        self._held: dict[str, _Held] = {}  # held details in arrival order, by upsert key and lsh
        self._waiting: dict[_Missing, list[str]] = {}  # missing parent → held keys waiting for it
        # The documents last joined per (table, project link) and stage: a project's details share them.
        self._documents: OrderedDict[tuple[str, str], dict[object, tuple[Row, ...]]] = OrderedDict()
        self._stages: dict[tuple[object, ...], object] = {}  # standard stage by the process item's key

    @property
    def held_count(self) -> int:
        """How many details wait for their parents."""
        return len(self._held)

    @property
    def oldest_held_age_s(self) -> float:
        """How long the longest-waiting detail has waited (0 when none waits)."""
        if not self._held:
            return 0.0
        return max(0.0, self._clock() - min(entry.since for entry in self._held.values()))

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
        return outcomes + self._release(table, row)

    def retry_held(self) -> list[JoinOutcome]:
        """Try every held detail again (after a restart: their parents may have been read since)."""
        outcomes: list[JoinOutcome] = []
        for key in list(self._held):
            outcomes += self._retry(key)
        return outcomes

    def expire(self) -> list[JoinOutcome]:
        """Fail the details held longer than ``max_held_age_s``."""
        if self.max_held_age_s is None:
            return []
        now = self._clock()
        limit = self.max_held_age_s
        old = [key for key, entry in self._held.items() if now - entry.since > limit]
        entries = [self._unhold(key) for key in old]
        return [self._fail(e, f"held {now - e.since:.0f} s, longer than the {limit:.0f} s allowed") for e in entries]

    def to_state(self) -> dict[str, Any]:
        """The held rows and since when they wait, as a JSON-serialisable object."""
        held = [{"row": entry.row, "since": entry.since} for entry in self._held.values()]
        return {"version": _STATE_VERSION, "held": held}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, **options: Any) -> "SpglJoiner":
        """A joiner holding the rows of :meth:`to_state` (``None``: an empty one); ``options`` as the constructor.

        Version 1 states (a plain list of rows, without times) are read with their rows held from now on.
        Call :meth:`retry_held` before feeding rows: parents may have arrived meanwhile.

        Raises:
            ValueError: If ``state`` is not what :meth:`to_state` returns.
        """
        joiner = cls(**options)
        if state is None:
            return joiner
        held, version = state.get("held"), state.get("version")
        if version not in (1, _STATE_VERSION) or not isinstance(held, list):
            message = f"joiner state must be version 1 or {_STATE_VERSION} with a 'held' list"
            raise ValueError(message)
        now = joiner._clock()
        for entry in held:
            row, since = (entry, now) if version == 1 else (_mapping_of(entry, "row"), entry.get("since", now))
            if not isinstance(row, dict) or not isinstance(since, (int, float)):
                message = "joiner state: every held entry must be a row object (with a numeric 'since')"
                raise ValueError(message)
            joiner._held[_held_key(row)] = _Held(row, float(since), None)
        return joiner

    def _apply_parent(self, table: str, row: Row) -> list[Row]:
        """Store a parent or document row; return the last details it withdraws."""
        withdrawn = row.get("sjyxbs") == 0
        if table == PROJECTS:
            keys = self._keys(row, [d.project_column for d in self._dialects.dialects], table)
            self._store.put(table, row)
            if not withdrawn:
                return []
            instances: set[str] = set()
            for dialect in self._dialects.dialects:
                value = keys.get(dialect.project_column)
                if value is not None:
                    items = self._store.rows(ITEMS, {dialect.item_project_column: value})
                    instances |= {str(item["spsxslbm"]) for item in items if item.get("spsxslbm")}
            return [detail for code in sorted(instances) if (detail := self._last_detail(code)) is not None]
        if table == ITEMS:
            code = _link(row, "spsxslbm", table)
            self._store.put(table, row)
            self._forget_documents(row, [d.item_project_column for d in self._dialects.dialects])
            detail = self._last_detail(code) if withdrawn else None
            return [] if detail is None else [detail]
        if table in (APPROVALS, ATTACHMENTS):
            columns = [d.document_column for d in self._dialects.dialects]
            self._keys(row, columns, table)
            self._store.put(table, row)
            self._forget_documents(row, columns)
            return []
        raise DataError("", f"unknown table {table!r}; expected one of {', '.join(TABLES)}")

    def _keys(self, row: Row, columns: list[str], table: str) -> dict[str, str]:
        keys = {c: str(row[c]).strip() for c in columns if isinstance(row.get(c), str) and row[c].strip()}
        if not keys:
            names = " or ".join(dict.fromkeys(columns))
            path = f"{table}.{columns[0]}"
            raise DataError(path, f"{names} is required to join the row (lsh {row.get('lsh')})")
        return keys

    def _last_detail(self, code: str) -> Row | None:
        detail = self._store.latest(DETAILS, {"spsxslbm": code})
        return None if detail is None or _held_key(detail) in self._held else detail

    def _add_detail(self, row: Row) -> list[JoinOutcome]:
        if not isinstance(row.get("spsxslbm"), str) or not row["spsxslbm"]:
            return [JoinFailure(DETAILS, row, DataError(f"{DETAILS}.spsxslbm", "item instance code is missing"))]
        versions = self._store.rows(DETAILS, {"dfsjzj": row["dfsjzj"], "xzqhdm": row["xzqhdm"]})
        earlier = [version for version in versions if lsh_order(version) < lsh_order(row)]
        previous = earlier[-1] if earlier else None
        self._store.put(DETAILS, row)
        if previous is not None and _digest(previous) == _digest(row):
            return []  # the same row pushed again: an upsert that changes nothing
        joined = self._join(row)
        if isinstance(joined, JoinedRecord):
            return [joined]
        if isinstance(joined, DataError):
            return [JoinFailure(DETAILS, row, joined)]
        key = _held_key(row)
        self._hold(key, _Held(row, self._clock(), joined))
        if len(self._held) <= self.max_held:
            return []
        oldest = next(iter(self._held))
        return [self._fail(self._unhold(oldest), f"{self.max_held} later rows were held")]

    def _join(self, detail: Row) -> "JoinedRecord | _Missing | DataError":
        code = str(detail["spsxslbm"])
        instance = self._store.latest(ITEMS, {"spsxslbm": code})
        if instance is None:
            return _Missing(ITEMS, "spsxslbm", code)
        dialect = self._dialects.of(instance)
        if dialect is None:
            names = " or ".join("+".join(d.when_present) for d in self._dialects.dialects)
            return DataError(f"{ITEMS}.{self._dialects.dialects[0].item_project_column}", f"item names no {names}")
        link = str(instance[dialect.item_project_column]).strip()
        project = self._store.latest(PROJECTS, {dialect.project_column: link})
        if project is None:
            return _Missing(PROJECTS, dialect.project_column, link)
        stage = self._stage(dialect, instance)
        if isinstance(stage, DataError):
            return stage
        if dialect.stage.column is None or "xmdm" not in instance:
            # What the joined record's readers expect of an item row, derived from its dialect's links.
            instance = {**instance, "xmdm": instance.get("xmdm") or project.get("xmdm"), "dybzspjdxh": stage}
        withdrawn_by, reason = None, None
        for table, row in ((DETAILS, detail), (ITEMS, instance), (PROJECTS, project)):
            if row.get("sjyxbs") == 0:
                withdrawn_by, reason = table, row.get("sjwxyy")
                break
        documents = {
            table: self._project_documents(table, dialect, project, stage) for table in (APPROVALS, ATTACHMENTS)
        }
        return JoinedRecord(
            record_id=f"{detail['xzqhdm']}:{DETAILS}:{detail['dfsjzj']}:{_serial(detail)}",
            project=project,
            instance=instance,
            detail=detail,
            approvals=documents[APPROVALS],
            attachments=documents[ATTACHMENTS],
            withdrawn_by=withdrawn_by,
            withdrawn_reason=reason,
        )

    def _stage(self, dialect: Dialect, instance: Row) -> object:
        """The item's standard stage (a value for the normaliser to judge), or why it cannot be found."""
        if dialect.stage.column is not None:
            return instance.get(dialect.stage.column)
        first = dialect.stage.lookups[0] if dialect.stage.lookups else None
        memo = None if first is None else (dialect.name, *(instance.get(name) for name in first.match.values()))
        if memo in self._stages:
            return self._stages[memo]
        stage = self._lookup_stage(dialect, instance)
        if memo is not None and not isinstance(stage, DataError):
            # The process tables are configuration, read through the store's cache anyway: keep the answer.
            self._stages[memo] = stage
            while len(self._stages) > _DOCUMENT_LINKS:
                self._stages.pop(next(iter(self._stages)))
        return stage

    def _lookup_stage(self, dialect: Dialect, instance: Row) -> object:
        known: dict[str, object] = dict(instance)
        value: object = None
        for lookup in dialect.stage.lookups:
            where = {column: known.get(name) for column, name in lookup.match.items()}
            found = None if None in where.values() else self._store.latest(lookup.table, where)
            if found is None or found.get("sjyxbs") == 0:
                pairs = ", ".join(f"{column} {where[column]}" for column in lookup.match)
                return DataError(f"{lookup.table}.{lookup.take}", f"no valid {lookup.table} row with {pairs}")
            value = known[lookup.take] = found.get(lookup.take)
        return value

    def _project_documents(self, table: str, dialect: Dialect, project: Row, stage: object) -> tuple[Row, ...]:
        """The project's valid documents issued up to ``stage``, so a backlog read later joins as it happened."""
        link = project.get(dialect.project_column)
        known = self._documents.get((table, str(link)))
        if known is not None and stage in known:
            self._documents.move_to_end((table, str(link)))
            return known[stage]
        latest: dict[str, Row] = {}
        for row in self._store.rows(table, {dialect.document_column: link}):
            latest[upsert_key(table, row)] = row
        stages: dict[object, object] = {}
        rows = [row for row in latest.values() if row.get("sjyxbs") != 0 and self._issued_by(row, stage, stages)]
        documents = tuple(sorted(rows, key=lsh_order))
        self._documents.setdefault((table, str(link)), {})[stage] = documents
        self._documents.move_to_end((table, str(link)))
        while len(self._documents) > _DOCUMENT_LINKS:
            self._documents.popitem(last=False)
        return documents

    def _forget_documents(self, row: Row, columns: list[str]) -> None:
        """A document or an item instance of these projects changed: join their documents afresh."""
        for column in columns:
            value = row.get(column)
            if isinstance(value, str):
                for table in (APPROVALS, ATTACHMENTS):
                    self._documents.pop((table, value.strip()), None)

    def _issued_by(self, document: Row, stage: object, stages: dict[object, object]) -> bool:
        code = document.get("spsxslbm")
        if code not in stages:
            instance = None if not isinstance(code, str) else self._store.latest(ITEMS, {"spsxslbm": code})
            dialect = None if instance is None else self._dialects.of(instance)
            stages[code] = None if instance is None or dialect is None else self._stage(dialect, instance)
        issued_at = stages[code]
        if not isinstance(issued_at, int) or not isinstance(stage, int):
            return True  # cannot tell: better one document too many than a missing permit
        return issued_at <= stage

    def _withdraw(self, detail: Row, table: str, parent: Row) -> JoinOutcome:
        joined = self._join(detail)
        if not isinstance(joined, JoinedRecord):  # the parent chain broke since the detail joined
            error = joined if isinstance(joined, DataError) else self._missing_error(joined, detail, "withdrawn")
            return JoinFailure(DETAILS, detail, error)
        record_id = f"{parent['xzqhdm']}:{table}:{parent['dfsjzj']}:{_serial(parent)}>{detail['dfsjzj']}"
        reason = parent.get("sjwxyy")
        return replace(
            joined,
            record_id=record_id,
            withdrawn_by=table,
            withdrawn_reason=reason if isinstance(reason, str) else None,
        )

    def _release(self, table: str, row: Row) -> list[JoinOutcome]:
        if not self._waiting:
            return []
        keys: list[str] = []
        for column, value in row.items():
            if isinstance(value, str):
                keys += self._waiting.pop(_Missing(table, column, value.strip()), [])
        order = {key: n for n, key in enumerate(self._held)}
        outcomes: list[JoinOutcome] = []
        for key in sorted((key for key in set(keys) if key in order), key=order.__getitem__):
            outcomes += self._retry(key)
        return outcomes

    def _retry(self, key: str) -> list[JoinOutcome]:
        entry = self._unhold(key)
        joined = self._join(entry.row)
        if isinstance(joined, JoinedRecord):
            return [joined]
        if isinstance(joined, DataError):
            return [JoinFailure(DETAILS, entry.row, joined)]
        entry.missing = joined
        self._hold(key, entry, keep_place=True)
        return []

    def _hold(self, key: str, entry: _Held, *, keep_place: bool = False) -> None:
        if not keep_place:
            self._held.pop(key, None)
        self._held[key] = entry
        if entry.missing is not None:
            self._waiting.setdefault(entry.missing, []).append(key)

    def _unhold(self, key: str) -> _Held:
        entry = self._held.pop(key)
        if entry.missing is not None and key in self._waiting.get(entry.missing, []):
            self._waiting[entry.missing].remove(key)
            if not self._waiting[entry.missing]:
                del self._waiting[entry.missing]
        return entry

    def _fail(self, entry: _Held, why: str) -> JoinFailure:
        detail = entry.row
        missing = entry.missing or _Missing(ITEMS, "spsxslbm", str(detail["spsxslbm"]))
        return JoinFailure(DETAILS, detail, self._missing_error(missing, detail, why))

    def _missing_error(self, missing: _Missing, detail: Row, why: str) -> DataError:
        field = f"{DETAILS}.spsxslbm" if missing.table == ITEMS else f"{ITEMS}.{missing.column}"
        what = f"no {missing.table} row with {missing.column} {missing.value}"
        return DataError(field, f"{NEVER_ARRIVED}: {what} while {why} (lsh {detail.get('lsh')})")


@cache
def default_dialects() -> Dialects:
    """The dialects of ``deploy/config/spgl-dialects.yaml`` (read once)."""
    return load_dialects()


def lsh_order(row: Mapping[str, Any]) -> int:
    """Sort key of a row by its serial number (rows without one first)."""
    lsh = row.get("lsh")
    return lsh if isinstance(lsh, int) and not isinstance(lsh, bool) else -1


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
    if lsh is not None and (not isinstance(lsh, int) or isinstance(lsh, bool)):
        return DataError(f"{table}.lsh", f"serial number lsh must be an integer, not {str(lsh)[:40]!r}")
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


def _held_key(row: Mapping[str, Any]) -> str:
    return f"{upsert_key(DETAILS, row)}#{_serial(row)}"


def _serial(row: Mapping[str, Any]) -> str:
    """The row's ``lsh``, or for a row without one a digest of its content (stable across processes)."""
    lsh = row.get("lsh")
    return str(lsh) if lsh is not None else f"n{_digest(row):08x}"


def _digest(row: Mapping[str, Any]) -> int:
    content = {name: value for name, value in row.items() if name != "lsh"}
    return zlib.crc32(json.dumps(content, sort_keys=True, ensure_ascii=False, default=str).encode())


def _mapping_of(entry: object, name: str) -> object:
    return entry.get(name) if isinstance(entry, dict) else None


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
