"""工改系统 query account: the national data-sharing tables (``SPGL_*``) read incrementally by ``lsh``.

Each poll opens one read transaction (a snapshot where the database offers one: ``REPEATABLE READ`` on
PostgreSQL and MySQL, a deferred ``BEGIN`` on SQLite) and reads, after each table's own ``lsh`` cursor,
a page of the parent tables, the documents, and then, once those are caught up in the same snapshot, the
handling details. :class:`routing.spgl.SpglJoiner` joins the rows; every joined record is written as JSON
to the raw topic, keyed by project code, and every row that cannot be joined goes to the source's
dead-letter topic with ``ubridge.error.*`` headers (``topic`` names the table, ``offset`` the ``lsh``).

The cursor handed to :class:`~connectors.runtime.source_runner.SourceRunner` is one JSON string,
``{"held": <joiner state>, "lsh": {table: n}}``, committed in the same Kafka transaction as the records it
covers: a restart resumes exactly after the last committed page with the held rows intact. What the joiner
knew of earlier rows (projects, instances, documents) is rebuilt from the database on the first poll.

Only portable SQL is issued (``SELECT * FROM t WHERE lsh > :n ORDER BY lsh LIMIT :m`` through SQLAlchemy
Core), so any database SQLAlchemy reaches works; SQLite is the embedded default. Rows must be committed in
``lsh`` order per table (the approval system's push job is the only writer), as with any serial cursor.

Example:
    >>> source = SpglSource("sqlite:///exchange.db", raw_topic="ubridge.raw.gonggai-spgl.v1",
    ...                     dlq_topic="ubridge.dlq.gonggai-spgl.v1")
    >>> batch = source.poll(cursor=None)
"""

import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

import structlog
from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, exc, select, type_coerce
from sqlalchemy.sql import sqltypes

from connectors.runtime.dlq import PREFIX
from connectors.runtime.errors import RetriableError
from connectors.runtime.interface import Headers, Output, SourceBatch
from routing.errors import DataError
from routing.privacy import mask_text
from routing.spgl import DEFAULT_MAX_HELD, DETAILS, TABLES, JoinedRecord, JoinFailure, JoinOutcome, Row, SpglJoiner

log = structlog.get_logger(__name__)

DEFAULT_NAME: Final = "gonggai-spgl"
DEFAULT_PAGE_SIZE: Final = 5000


class _Settable(Protocol):
    def set(self, value: float) -> None:
        """Set the gauge."""


HeldGauge = Callable[[float], None] | _Settable


class SpglSource:
    """Reads the five ``SPGL_*`` tables of an exchange database and emits joined approval records.

    Args:
        url: SQLAlchemy URL of the exchange database (or an engine; then the caller owns it).
        raw_topic: Topic for joined records (``ubridge.raw.gonggai-spgl.v1``).
        dlq_topic: This source's dead-letter topic, for rows that can never be joined.
        name: Stage name; also the cursor's key and the transactional id's suffix.
        page_size: Rows read per table per poll (one Kafka transaction covers one poll).
        max_held: Details that may wait for their parents before the oldest is dead-lettered.
        held_gauge: Told the number of held rows after each poll (a Gauge child or a callable).
        schema: Database schema holding the tables, when not the default one.
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
        held_gauge: HeldGauge | None = None,
        schema: str | None = None,
    ) -> None:
        self.name = name
        self._raw_topic = raw_topic
        self._dlq_topic = dlq_topic
        self._page_size = page_size
        self._max_held = max_held
        self._held_gauge = held_gauge
        self._schema = schema
        self._owns_engine = isinstance(url, str)
        self._engine = _engine(url) if isinstance(url, str) else url
        self._tables: dict[str, Table] = {}
        self._special: dict[str, list[str]] = {}
        self._temporal: dict[str, set[str]] = {}
        self._joiner = SpglJoiner(max_held=max_held)
        self._synced: str | None = None  # the cursor the joiner's state belongs to

    def poll(self, cursor: str | None) -> SourceBatch:
        """Read the rows after ``cursor`` and return the joined records, dead letters and the new cursor.

        Raises:
            RetriableError: The database is unreachable or failed; the next poll starts from ``cursor``.
        """
        try:
            return self._poll(cursor)
        except exc.SQLAlchemyError as error:
            self._synced = None  # the joiner may have moved on: rebuild it from the committed cursor
            message = f"exchange database failed: {type(error).__name__}: {str(error)[:200]}"
            raise RetriableError(message) from error
        except BaseException:
            self._synced = None
            raise

    def close(self) -> None:
        """Release the database connections (when the engine is this source's own)."""
        if self._owns_engine:
            self._engine.dispose()

    def _poll(self, cursor: str | None) -> SourceBatch:
        positions, held = parse_cursor(cursor)
        rebuild = cursor is None or cursor != self._synced
        if rebuild:
            self._joiner = SpglJoiner.from_state(held, max_held=self._max_held)
        outcomes: list[JoinOutcome] = []
        more = False
        with self._engine.connect() as conn, conn.begin():
            if rebuild:
                self._remember(conn, positions)
            for name in TABLES:
                if name == DETAILS and more:
                    break  # a parent or document table is not caught up: its rows could complete these
                rows = self._page(conn, name, after=positions.get(name, 0))
                more = more or len(rows) >= self._page_size
                for row in rows:
                    outcomes += self._joiner.add(name, row)
                if rows:
                    positions[name] = rows[-1]["lsh"]
        next_cursor = format_cursor(positions, self._joiner.to_state())
        self._synced = next_cursor
        self._report_held()
        return SourceBatch(records=self._outputs(outcomes), cursor=next_cursor, has_more=more)

    def _remember(self, conn: Connection, positions: Mapping[str, int]) -> None:
        for name in TABLES:
            after, bound = 0, positions.get(name, 0)
            while after < bound:
                rows = self._page(conn, name, after=after, upto=bound)
                for row in rows:
                    self._joiner.remember(name, row)
                after = rows[-1]["lsh"] if rows else bound
        log.info("source_state_rebuilt", stage=self.name, held=self._joiner.held_count)

    def _page(self, conn: Connection, name: str, *, after: int, upto: int | None = None) -> list[Row]:
        table = self._table(conn, name)
        special = self._special[name]  # only these columns can hold values JSON lacks (decimals, times)
        # Special columns are read as the driver hands them over, without SQLAlchemy's result processing: a
        # value it cannot convert ("2026/11/24" in a DATETIME, text in a NUMERIC) must fail its own row in
        # the normaliser, not the whole page here.
        columns = [
            type_coerce(column, sqltypes.NullType()).label(column.name) if column.name.lower() in special else column
            for column in table.c
        ]
        query = select(*columns).where(table.c.lsh > after)
        if upto is not None:
            query = query.where(table.c.lsh <= upto)
        result = conn.execute(query.order_by(table.c.lsh).limit(self._page_size))
        names = [key.lower() for key in result.keys()]
        rows = [dict(zip(names, row, strict=True)) for row in result]
        temporal = self._temporal[name]
        for row in rows:
            for column in special:
                value = row[column]
                if isinstance(value, str) and column in temporal:
                    row[column] = _text_time(value)
                elif value is not None:
                    row[column] = _json_value(value)
        return rows

    def _table(self, conn: Connection, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            try:
                table = Table(name, MetaData(schema=self._schema), autoload_with=conn)
            except exc.NoSuchTableError:  # created unquoted: the database folded the name to lower case
                table = Table(name.lower(), MetaData(schema=self._schema), autoload_with=conn)
            self._tables[name] = table
            special = (sqltypes.Numeric, sqltypes.Date, sqltypes.DateTime, sqltypes.Time, sqltypes.LargeBinary)
            self._special[name] = [c.name.lower() for c in table.c if isinstance(c.type, special)]
            times = (sqltypes.Date, sqltypes.DateTime)
            self._temporal[name] = {c.name.lower() for c in table.c if isinstance(c.type, times)}
        return table

    def _outputs(self, outcomes: list[JoinOutcome]) -> list[Output]:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        headers: Headers = (("ubridge.source", self.name.encode()), ("ubridge.ingested_at", now.encode()))
        outputs = []
        for outcome in outcomes:
            if isinstance(outcome, JoinedRecord):
                try:
                    value = json.dumps(outcome.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
                except (TypeError, ValueError, UnicodeError) as error:  # a value JSON or UTF-8 cannot carry
                    failure = DataError("", f"the joined record cannot be written as JSON: {error}")
                    outputs.append(self._dead_letter(JoinFailure(DETAILS, outcome.detail, failure), headers, now))
                    continue
                outputs.append(Output(self._raw_topic, outcome.project_code.encode() or None, value, headers))
            else:
                outputs.append(self._dead_letter(outcome, headers, now))
        return outputs

    def _dead_letter(self, failure: JoinFailure, headers: Headers, now: str) -> Output:
        error = failure.error
        context = {
            "stage": self.name,
            "class": type(error).__name__,
            "field": error.field,
            "message": mask_text(str(error)),
            "topic": failure.table,
            "partition": "",
            "offset": str(failure.row.get("lsh", "")),
            "failed_at": now,
        }
        ours = tuple((PREFIX + key, value.encode()) for key, value in context.items())
        key = str(failure.row.get("xmdm") or failure.row.get("spsxslbm") or "").encode() or None
        value = json.dumps(failure.row, ensure_ascii=False, separators=(",", ":"), default=repr).encode(
            "utf-8", "backslashreplace"
        )
        log.warning("record_dead_lettered", stage=self.name, table=failure.table, lsh=failure.row.get("lsh"))
        return Output(self._dlq_topic, key, value, headers + ours)

    def _report_held(self) -> None:
        gauge = self._held_gauge
        if gauge is None:
            return
        if callable(gauge):
            gauge(self._joiner.held_count)
        else:
            gauge.set(self._joiner.held_count)


def parse_cursor(cursor: str | None) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Split a cursor into the ``lsh`` per table and the joiner's state (``None``: from the start).

    Raises:
        ValueError: If the cursor is not one :func:`format_cursor` wrote.
    """
    if cursor is None:
        return {}, None
    doc = json.loads(cursor)
    positions, held = doc.get("lsh"), doc.get("held")
    if not isinstance(positions, dict) or not all(isinstance(v, int) for v in positions.values()):
        message = f"cursor {cursor[:80]!r} lacks an 'lsh' object of integers"
        raise ValueError(message)
    return dict(positions), held


def format_cursor(positions: Mapping[str, int], held: Mapping[str, Any]) -> str:
    """The cursor string: canonical JSON, so an unchanged position compares equal."""
    return json.dumps({"held": held, "lsh": dict(positions)}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        # pysqlite starts transactions only before writes; take the read snapshot ourselves (SQLAlchemy's
        # documented recipe for SQLite transactions).
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if dialect in ("postgresql", "mysql", "mariadb"):
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent == 0 else float(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _text_time(value: str) -> str:
    """A date or time the driver left as text (SQLite): ISO text as the typed path renders it, else unchanged."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # not ISO: the normaliser judges it, and dead-letters its record if it must
    if len(value) <= len("2026-11-24"):
        return moment.date().isoformat()
    return moment.isoformat(sep=" ", timespec="seconds")
