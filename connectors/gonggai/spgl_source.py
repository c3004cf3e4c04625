"""工改系统 query account: the national data-sharing tables (``SPGL_*``) read incrementally by ``lsh``.

Each poll opens one read transaction (a snapshot where the database offers one: ``REPEATABLE READ`` on
PostgreSQL and MySQL, a deferred ``BEGIN`` on SQLite) and reads, per table after its own cursor, a page of
the parent tables, the documents and then, once those are caught up in the same snapshot, the handling
details. :class:`routing.spgl.SpglJoiner` joins the rows, looking parents up by key through
:class:`~connectors.gonggai.spgl_store.DatabaseStore`; every joined record is written as JSON to the raw
topic, keyed by project code.

Nothing is lost and nothing stops the source:

* **late commits**: ``lsh`` order is not commit order on a busy database. Every poll counts the rows of the
  last ``lookback`` serial numbers below the cursor; when the count differs from the identities emitted there
  (and at least every ``window_every_s``) it re-reads their identities (``lsh``, ``dfsjzj``) and reads in full
  those it has not emitted yet; the identities it emitted in that window travel in the cursor, so the set
  stays bounded and is committed with the records it covers;
* **duplicate ``lsh``**: rows sharing one ``lsh`` across a page boundary are found by the same window;
* **NULL or text ``lsh``**: read once caught up, identified by a digest of their content (kept in the cursor,
  at most ``max_odd`` per table); a text ``lsh`` is dead-lettered and never enters the cursor, which only
  holds integers read by the source itself;
* **unreadable rows**: text that is neither UTF-8 nor GB18030, binary data in a text column, a joined record
  over ``max_record_bytes`` become dead letters; dates in any text format, and text in numeric columns, pass
  through for the normaliser to judge;
* **held rows**: a detail waiting for its parents longer than ``max_held_age_s`` (or beyond ``max_held``)
  is dead-lettered with the missing parent named.

Dead letters go to the source's dead-letter topic with ``ubridge.error.*`` headers: ``topic`` names the table,
``offset`` the ``lsh``, ``row_key`` the row's upsert key (``xzqhdm|table|dfsjzj``).

The cursor handed to :class:`~connectors.runtime.source_runner.SourceRunner` is one JSON string,
``{"held": <joiner state>, "lsh": {table: n}, "odd": {table: [digest]}, "seen": {table: [[lsh, digest]]}}``.

Only portable SQL is issued (SQLAlchemy Core), so any database SQLAlchemy reaches works; SQLite is the
embedded default. Table and column names are matched whatever their case.

Example:
    >>> source = SpglSource("sqlite:///exchange.db", raw_topic="ubridge.raw.gonggai-spgl.v1",
    ...                     dlq_topic="ubridge.dlq.gonggai-spgl.v1")
    >>> batch = source.poll(cursor=None)
"""

import json
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
import structlog
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from sqlalchemy import Connection, Engine, Select, create_engine, event, exc

from connectors.gonggai.spgl_queries import HIGH, LOW, SERIALS, TableQueries, table_queries
from connectors.gonggai.spgl_store import DEFAULT_CACHE_ROWS, DatabaseStore, ExchangeTables, Unreadable, decode_text
from connectors.runtime.dlq import PREFIX
from connectors.runtime.errors import RetriableError
from connectors.runtime.interface import Headers, Output, SourceBatch
from routing.errors import DataError
from routing.privacy import mask_text
from routing.spgl import (
    APPROVALS,
    ATTACHMENTS,
    DEFAULT_MAX_HELD,
    DETAILS,
    ITEMS,
    PROJECTS,
    TABLES,
    JoinedRecord,
    JoinFailure,
    JoinOutcome,
    Row,
    SpglJoiner,
    default_dialects,
    upsert_key,
)
from routing.spgl_dialects import Dialects

log = structlog.get_logger(__name__)

DEFAULT_NAME: Final = "gonggai-spgl"
DEFAULT_PAGE_SIZE: Final = 5000
DEFAULT_LOOKBACK: Final = 2000
DEFAULT_MAX_HELD_AGE_S: Final = 86400.0
DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000  # under Kafka's default 1 MiB request limit, headers included
DEFAULT_MAX_ODD: Final = 10_000
DEFAULT_WINDOW_EVERY_S: Final = 5.0


class _Settable(Protocol):
    def set(self, value: float) -> None:
        """Set the gauge."""


Gauge = Callable[[float], None] | _Settable


@dataclass
class Cursor:
    """What a cursor string says: per table the ``lsh`` read up to and the row identities emitted near it."""

    positions: dict[str, int] = field(default_factory=dict)
    held: dict[str, Any] | None = None
    seen: dict[str, set[tuple[int, int]]] = field(default_factory=dict)  # (lsh, digest of dfsjzj)
    odd: dict[str, list[int]] = field(default_factory=dict)  # digests of rows without an integer lsh


@dataclass
class _Read:
    rows: list[Row] = field(default_factory=list)
    failures: list[JoinFailure] = field(default_factory=list)
    late: int = 0
    full: bool = False


class SpglSource:
    """Reads the five ``SPGL_*`` tables of an exchange database and emits joined approval records.

    Args:
        url: SQLAlchemy URL of the exchange database (or an engine; then the caller owns it).
        raw_topic: Topic for joined records (``ubridge.raw.gonggai-spgl.v1``).
        dlq_topic: This source's dead-letter topic, for rows that can never be joined.
        name: Stage name; also the cursor's key and the transactional id's suffix.
        page_size: Rows read per table per poll (one Kafka transaction covers one poll).
        max_held: Details that may wait for their parents before the oldest is dead-lettered.
        max_held_age_s: How long a detail may wait for its parents before it is dead-lettered.
        held_gauge: Told the number of held rows after each poll (a Gauge child or a callable).
        held_age_gauge: Told the age in seconds of the oldest held row after each poll.
        schema: Database schema holding the tables, when not the default one.
        lookback: Serial numbers below the cursor looked at each poll for rows committed late.
        dialects: The vendor dialects (default: ``deploy/config/spgl-dialects.yaml``).
        cache_rows: Bound of each cache of parent rows.
        max_record_bytes: A joined record larger than this is dead-lettered (Kafka would refuse it).
        max_odd: Rows without an integer ``lsh`` remembered per table (beyond it the oldest are forgotten).
        window_every_s: The longest time between two readings of the look-back window's row identities.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        raw_topic: str,
        dlq_topic: str,
        name: str = DEFAULT_NAME,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_held: int = DEFAULT_MAX_HELD,
        max_held_age_s: float = DEFAULT_MAX_HELD_AGE_S,
        held_gauge: Gauge | None = None,
        held_age_gauge: Gauge | None = None,
        schema: str | None = None,
        lookback: int = DEFAULT_LOOKBACK,
        dialects: Dialects | None = None,
        cache_rows: int = DEFAULT_CACHE_ROWS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        max_odd: int = DEFAULT_MAX_ODD,
        window_every_s: float = DEFAULT_WINDOW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._raw_topic = raw_topic
        self._dlq_topic = dlq_topic
        self._page_size = page_size
        self._max_held = max_held
        self._max_held_age_s = max_held_age_s
        self._gauges = (held_gauge, held_age_gauge)
        self._lookback = lookback
        self._window_every_s = window_every_s
        self._clock = clock
        self._window_read_at: dict[str, float] = {}  # per table, when the window's identities were last read
        self._dialects = default_dialects() if dialects is None else dialects
        self._max_record_bytes = max_record_bytes
        self._max_odd = max_odd
        self._owns_engine = isinstance(url, str)
        self._engine = _engine(url) if isinstance(url, str) else url
        renames = {table: self._dialects.renames(table) for table in self._dialects.rename}
        self._tables = ExchangeTables(schema=schema, renames=renames)
        self.store = DatabaseStore(self._tables, cache_rows=cache_rows)
        self._joiner = self._new_joiner(None)
        self._synced: str | None = None  # the cursor the joiner's state belongs to
        self._state = Cursor()  # what ``_synced`` says, as the poll that wrote it left it
        self._probed: tuple[str | None, Mapping[str, int]] = (None, {})  # a cursor and its positions
        self._queries: dict[str, TableQueries] = {}

    def poll(self, cursor: str | None) -> SourceBatch:
        """Read the rows after ``cursor`` and return the joined records, dead letters and the new cursor.

        Raises:
            RetriableError: The database is unreachable or failed; the next poll starts from ``cursor``.
        """
        try:
            return self._poll(cursor)
        except exc.SQLAlchemyError as error:
            self._synced = None  # the joiner may have moved on: rebuild it from the committed cursor
            raise _database_failed(error) from error
        except BaseException:
            self._synced = None
            raise

    def has_news(self, cursor: str | None) -> bool:
        """Whether a table has a row after its cursor: one index seek per table, cheap enough to ask often.

        Rows committed late below the cursor and rows without a serial ``lsh`` are left to the full poll.

        Raises:
            RetriableError: The database is unreachable or failed.
        """
        if cursor != self._probed[0]:
            # the positions alone, and not parsed again when the cursor is the one this source wrote last: parsing
            # the look-back pairs after every poll cost more than the probes
            own = cursor is not None and cursor == self._synced
            self._probed = (cursor, dict(self._state.positions) if own else cursor_positions(cursor))
        positions = self._probed[1]
        try:
            with self._engine.connect() as conn:
                for name in TABLES:
                    newer = self._queries_of(conn, name).newer
                    if conn.execute(newer, {HIGH: positions.get(name, 0)}).first() is not None:
                        return True
        except exc.SQLAlchemyError as error:
            raise _database_failed(error) from error
        return False

    def close(self) -> None:
        """Release the database connections (when the engine is this source's own)."""
        if self._owns_engine:
            self._engine.dispose()

    def _new_joiner(self, held: Mapping[str, Any] | None) -> SpglJoiner:
        return SpglJoiner.from_state(
            held,
            store=self.store,
            dialects=self._dialects,
            max_held=self._max_held,
            max_held_age_s=self._max_held_age_s,
        )

    def _poll(self, cursor: str | None) -> SourceBatch:
        rebuild = cursor is None or cursor != self._synced
        # the cursor this source wrote last is its own state: parsing its look-back pairs again was a seventh of
        # every poll under steady load, when a poll follows each commit
        state = parse_cursor(cursor) if rebuild else self._state
        if rebuild:
            self._window_read_at.clear()
            self.store.clear()
            self._joiner = self._new_joiner(state.held)
        outcomes: list[JoinOutcome] = []
        more = False
        with self._engine.connect() as conn, conn.begin():
            self.store.begin(conn, state.positions)
            if rebuild:
                outcomes += self._joiner.retry_held()
            for name in TABLES:
                if name == DETAILS and more:
                    break  # a parent or document table is not caught up: its rows could complete these
                read = self._read(conn, name, state)
                more = more or read.full
                self.store.reached(name, state.positions.get(name, 0))
                outcomes += read.failures
                if name == DETAILS:
                    self._prefetch(read.rows, late=read.late > 0)
                for row in read.rows:
                    outcomes += self._joiner.add(name, row)
            outcomes += self._joiner.expire()
        next_cursor = format_cursor(state, self._joiner.to_state())
        self._synced, self._state = next_cursor, state
        self._report_held()
        return SourceBatch(records=self._outputs(outcomes), cursor=next_cursor, has_more=more)

    def _read(self, conn: Connection, name: str, state: Cursor) -> _Read:
        """The rows of ``name`` to apply now: those committed late below the cursor, a page, odd ones."""
        read, queries = _Read(), self._queries_of(conn, name)
        high = state.positions.get(name, 0)
        seen = state.seen.setdefault(name, set())
        odd = state.odd.setdefault(name, [])
        window = {LOW: high - self._lookback, HIGH: high}
        if high > 0 and self._lookback > 0 and self._window_changed(conn, name, queries, window, seen):
            ids = conn.execute(queries.identities, window).all()
            late = sorted({lsh for lsh, k in ids if isinstance(lsh, int) and (lsh, _digest(k)) not in seen})
            for start in range(0, len(late), 900):
                serials = {SERIALS: late[start : start + 900]}
                before = len(read.rows)
                self._take(name, self._fetch(conn, name, queries.serials, serials, state=state, read=read), state, read)
                read.late += len(read.rows) - before
            if read.late:
                log.info("late_rows_found", stage=self.name, table=name, rows=read.late, below=high)
        before = state.positions.get(name, 0)
        page = self._fetch(conn, name, queries.page, {HIGH: high}, state=state, read=read)
        self._take(name, page, state, read)
        last = page[-1][self._lsh_index(name)] if page else None
        unreadable = state.positions.get(name, 0) > before and not page  # a page of rows the driver failed on
        read.full = (len(page) >= self._page_size and _is_serial(last)) or unreadable
        if not read.full:
            self._take(name, conn.execute(queries.unnumbered).all(), state, read)
        floor = state.positions.get(name, 0) - self._lookback
        state.seen[name] = {identity for identity in seen if identity[0] > floor}
        del odd[: max(0, len(odd) - self._max_odd)]
        return read

    def _window_changed(
        self, conn: Connection, name: str, queries: TableQueries, window: dict[str, int], seen: set[tuple[int, int]]
    ) -> bool:
        """Whether the look-back window may hold a row not emitted yet, so that its identities must be read.

        Counting the window's rows is one index range scan in the database; reading their identities moved up
        to ``lookback`` rows per table and poll into Python, which was most of a poll's cost under steady load
        (and load on a database ubridge does not own). A count equal to the identities emitted in the window
        means nothing is new there, unless a row was deleted as another came late: the identities are read
        anyway every ``window_every_s``, and on the first poll of a cursor this reader did not write.
        """
        now = self._clock()
        if now - self._window_read_at.get(name, -math.inf) >= self._window_every_s:
            self._window_read_at[name] = now
            return True
        floor, high = window[LOW], window[HIGH]
        counted: int = conn.execute(queries.counted, window).scalar_one()
        return counted != sum(1 for lsh, _ in seen if floor < lsh <= high)

    def _fetch(
        self, conn: Connection, name: str, query: Select[Any], params: dict[str, Any], *, state: Cursor, read: _Read
    ) -> list[Any]:
        """The rows of ``query``; when the driver fails on a value, the others, and each failed row as a failure."""
        try:
            with conn.begin_nested():
                return list(conn.execute(query, params).all())
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise
            log.warning("rows_unreadable", stage=self.name, table=name, error=type(error.orig).__name__)
        # One value the driver cannot convert fails the whole query: read row by row to isolate it.
        tables = self._tables
        lsh_column = tables.column(conn, name, "lsh")
        rows: list[Any] = []
        for lsh in dict.fromkeys(conn.execute(query.with_only_columns(lsh_column), params).scalars()):
            try:
                with conn.begin_nested():
                    rows += conn.execute(tables.select(conn, name).where(lsh_column == lsh)).all()
            except exc.DBAPIError as error:
                if error.connection_invalidated:
                    raise
                self._unreadable(conn, name, lsh, error, state=state, read=read)
        return rows

    def _unreadable(
        self, conn: Connection, name: str, lsh: object, error: exc.DBAPIError, *, state: Cursor, read: _Read
    ) -> None:
        """Dead-letter the rows at ``lsh`` that the driver cannot read, with their key when it can read that."""
        tables, lsh_column = self._tables, self._tables.column(conn, name, "lsh")
        keys: list[tuple[object, object]] = [(None, None)]
        try:
            with conn.begin_nested():
                columns = [tables.column(conn, name, c) for c in ("dfsjzj", "xzqhdm")]
                keys = [
                    tuple(r)
                    for r in conn.execute(
                        tables.select(conn, name).with_only_columns(*columns).where(lsh_column == lsh)
                    )
                ]
        except (exc.DBAPIError, KeyError):
            pass  # not even the key is readable: the lsh alone names the row
        reason = f"the database driver cannot read this row: {type(error.orig).__name__}: {str(error.orig)[:200]}"
        for dfsjzj, xzqhdm in keys:
            if isinstance(lsh, int) and not isinstance(lsh, bool):
                state.seen[name].add((lsh, _digest(dfsjzj)))
                state.positions[name] = max(lsh, state.positions.get(name, 0))
            stub = {"lsh": lsh, "dfsjzj": _printable(dfsjzj), "xzqhdm": _printable(xzqhdm)}
            read.failures.append(JoinFailure(name, stub, DataError(f"{name}.lsh", reason)))

    def _take(self, name: str, rows: Sequence[Sequence[Any]], state: Cursor, read: _Read) -> None:
        """Convert driver rows not yet emitted, marking each as emitted in ``state``."""
        at, key_at = self._lsh_index(name), self._key_index(name)
        seen, odd = state.seen[name], state.odd[name]
        for values in rows:
            lsh = values[at]
            if _is_serial(lsh):
                identity = (lsh, _digest(values[key_at] if key_at is not None else lsh))
                if identity in seen:
                    continue
                seen.add(identity)
                state.positions[name] = max(lsh, state.positions.get(name, 0))
            else:
                digest = _digest(tuple(values))
                if digest in odd:
                    continue
                odd.append(digest)
            try:
                read.rows.append(self._tables.convert(name, values))
            except Unreadable as error:
                stub = dict(zip(self._columns(name), (_printable(v) for v in values), strict=True))
                read.failures.append(JoinFailure(name, stub, DataError(f"{name}.{error.column}", str(error))))

    def _queries_of(self, conn: Connection, name: str) -> TableQueries:
        """The statements on table ``name``, built again if the table was reflected again."""
        queries = self._queries.get(name)
        if queries is None or queries.table is not self._tables.table(conn, name):
            queries = self._queries[name] = table_queries(self._tables, conn, name, page_size=self._page_size)
        return queries

    def _columns(self, name: str) -> list[str]:
        return self._tables.names(name)

    def _lsh_index(self, name: str) -> int:
        return self._columns(name).index("lsh")

    def _key_index(self, name: str) -> int | None:
        columns = self._columns(name)
        return columns.index("dfsjzj") if "dfsjzj" in columns else None

    def _prefetch(self, details: list[Row], *, late: bool) -> None:
        """Fetch the parents and earlier versions a page of details needs in a few bulk queries."""
        store = self.store
        if len(details) < 2:  # noqa: PLR2004 - a single lookup costs what a bulk one does
            return
        keys = [{"dfsjzj": r.get("dfsjzj"), "xzqhdm": r.get("xzqhdm")} for r in details]
        # A plain page (no late rows, no odd ones): fetch only the earlier versions; the page's own rows join
        # the cached answers as they are put, in order.
        serials = [r["lsh"] for r in details if isinstance(r.get("lsh"), int)]
        plain = not late and serials == sorted(serials) and len(serials) == len(details)
        store.prefetch(DETAILS, keys, many=True, below=serials[0] if plain else None)
        codes = {r["spsxslbm"] for r in details if isinstance(r.get("spsxslbm"), str)}
        store.prefetch(ITEMS, [{"spsxslbm": code} for code in codes], many=False)
        instances = [store.latest(ITEMS, {"spsxslbm": code}) for code in codes]
        for dialect in self._dialects.dialects:
            links = {
                str(i[dialect.item_project_column]).strip()
                for i in instances
                if i is not None and self._dialects.of(i) is dialect
            }
            store.prefetch(PROJECTS, [{dialect.project_column: link} for link in links], many=False)
            issuers: set[str] = set()  # the item instances that issued the documents, for their stages
            for table in (APPROVALS, ATTACHMENTS):
                wheres = [{dialect.document_column: link} for link in links]
                store.prefetch(table, wheres, many=True)
                issuers |= {d["spsxslbm"] for w in wheres for d in store.rows(table, w) if d.get("spsxslbm")}
            store.prefetch(ITEMS, [{"spsxslbm": code} for code in issuers], many=False)

    def _outputs(self, outcomes: list[JoinOutcome]) -> list[Output]:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        headers: Headers = (("ubridge.source", self.name.encode()), ("ubridge.ingested_at", now.encode()))
        outputs = []
        for outcome in outcomes:
            if isinstance(outcome, JoinFailure):
                outputs.append(self._dead_letter(outcome, headers, now))
                continue
            try:
                value = orjson.dumps(outcome.to_json())
            except (TypeError, ValueError, UnicodeError) as error:  # a value JSON or UTF-8 cannot carry
                failure = DataError("", f"the joined record cannot be written as JSON: {error}")
                outputs.append(self._dead_letter(JoinFailure(DETAILS, outcome.detail, failure), headers, now))
                continue
            if len(value) > self._max_record_bytes:
                reason = f"the joined record is {len(value)} bytes, over the {self._max_record_bytes} bytes allowed"
                outputs.append(self._dead_letter(_oversized(outcome, reason), headers, now))
                continue
            outputs.append(Output(self._raw_topic, outcome.project_code.encode() or None, value, headers))
        return outputs

    def _dead_letter(self, failure: JoinFailure, headers: Headers, now: str) -> Output:
        error, row = failure.error, failure.row
        context = {
            "stage": self.name,
            "class": type(error).__name__,
            "field": error.field,
            "message": mask_text(str(error)),
            "topic": failure.table,
            "partition": "",
            "offset": str(row.get("lsh", "")),
            "row_key": upsert_key(failure.table, row),
            "failed_at": now,
        }
        ours = tuple((PREFIX + key, value.encode()) for key, value in context.items())
        key = str(row.get("xmdm") or row.get("spsxslbm") or row.get("dfsjzj") or "").encode() or None
        value = json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=repr).encode(
            "utf-8", "backslashreplace"
        )
        log.warning("record_dead_lettered", stage=self.name, table=failure.table, lsh=str(row.get("lsh"))[:40])
        return Output(self._dlq_topic, key, value[: self._max_record_bytes], headers + ours)

    def _report_held(self) -> None:
        for gauge, value in zip(self._gauges, (self._joiner.held_count, self._joiner.oldest_held_age_s), strict=True):
            if gauge is None:
                continue
            if callable(gauge):
                gauge(value)
            else:
                gauge.set(value)


def _database_failed(error: exc.SQLAlchemyError) -> RetriableError:
    return RetriableError(f"exchange database failed: {type(error).__name__}: {str(error)[:200]}")


def parse_cursor(cursor: str | None) -> Cursor:
    """Read a cursor string (``None``: from the start); cursors without ``seen``/``odd`` are read too.

    Raises:
        ValueError: If the cursor is not one :func:`format_cursor` wrote.
    """
    if cursor is None:
        return Cursor()
    doc = orjson.loads(cursor)
    positions = _positions(doc, cursor)
    seen = {table: {(int(lsh), int(d)) for lsh, d in pairs} for table, pairs in doc.get("seen", {}).items()}
    odd = {table: [int(d) for d in digests] for table, digests in doc.get("odd", {}).items()}
    return Cursor(positions, doc.get("held"), seen, odd)


def cursor_positions(cursor: str | None) -> dict[str, int]:
    """The table positions of a cursor string alone (``None``: none yet).

    Raises:
        ValueError: If the cursor is not one :func:`format_cursor` wrote.
    """
    return {} if cursor is None else _positions(orjson.loads(cursor), cursor)


def _positions(doc: Any, cursor: str) -> dict[str, int]:
    positions = doc.get("lsh") if isinstance(doc, dict) else None
    if not isinstance(positions, dict) or not all(_is_serial(v) for v in positions.values()):
        message = f"cursor {cursor[:80]!r} lacks an 'lsh' object of integers"
        raise ValueError(message)
    return dict(positions)


def format_cursor(state: Cursor, held: Mapping[str, Any]) -> str:
    """The cursor string: canonical JSON, so an unchanged position compares equal."""
    doc = {
        "held": held,
        "lsh": dict(state.positions),
        "odd": {table: digests for table, digests in state.odd.items() if digests},
        "seen": {table: sorted(ids) for table, ids in state.seen.items() if ids},
    }
    # orjson: the source formats its cursor after every poll, and the lookback's ``seen`` pairs made the
    # standard library's encoder a third of an idle source's time
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        # pysqlite starts transactions only before writes; take the read snapshot ourselves (SQLAlchemy's
        # documented recipe for SQLite transactions). Text is decoded by us: GBK exports are common, and
        # sqlite3's own decoding fails the whole query on the first byte that is not UTF-8.
        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.text_factory = decode_text

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if dialect == "postgresql" and engine.dialect.driver == "psycopg":

        @event.listens_for(engine, "do_connect")
        def _connect_decoding(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            connection = dialect.loaded_dbapi.connect(*cargs, **cparams)
            if connection.info.parameter_status("client_encoding") == "SQL_ASCII":
                # A SQL_ASCII database stores whatever bytes the exporter wrote (GBK, often) and psycopg
                # hands them over undecoded, which SQLAlchemy cannot handle; decode them as SQLite's are.
                for oid in (0, "text", "varchar", "bpchar", "name", "int2vector", "oidvector"):  # 0: any other
                    connection.adapters.register_loader(oid, _TextLoader)
            return connection

    if dialect in ("postgresql", "mysql", "mariadb"):
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


class _TextLoader(Loader):
    """psycopg loader of a text column: UTF-8, else GB18030, else the bytes (the row is then dead-lettered)."""

    def load(self, data: Buffer) -> str | bytes:
        """Decode one value."""
        return decode_text(bytes(data))


def _is_serial(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _digest(value: object) -> int:
    raw = value if isinstance(value, bytes) else repr(value).encode("utf-8", "backslashreplace")
    return zlib.crc32(raw)


def _printable(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value if value is None or isinstance(value, (str, int, float)) else str(value)


def _oversized(record: JoinedRecord, reason: str) -> JoinFailure:
    return JoinFailure(DETAILS, record.detail, DataError(DETAILS, reason))
