"""The exchange database as the SPGL source sees it: tables found whatever their case, rows read defensively.

:class:`ExchangeTables` reflects a table once, matches its column names case-insensitively (and through the
dialect's renames), and turns driver rows into plain JSON values one row at a time, so a value that cannot be
read fails its own row with a reason rather than the poll: text arrives as bytes and is decoded as UTF-8, else
GB18030 (a superset of GBK); numbers, dates and times are taken as the driver hands them over, and dates the
driver left as text pass through for the normaliser to parse.

:class:`DatabaseStore` is the :class:`routing.spgl.ParentStore` of the source: it looks a detail's parents up
in the database by key, only among rows the reader has reached, through bounded LRU caches, and bulk-fetches
the keys a page of details needs in a few ``IN`` queries. The source's memory therefore does not grow with the
tables; lookups are fast when the key columns (``spsxslbm``, ``xmdm``, ``gcdm``, ``dfsjzj``) are indexed.
"""

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    exc,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import sqltypes

from routing.spgl import Row, lsh_order

TEXT_ENCODINGS: Final = ("utf-8", "gb18030")
DEFAULT_CACHE_ROWS: Final = 10_000
_IN_CHUNK: Final = 900
_BINARY: Final = (sqltypes.LargeBinary, sqltypes._Binary)
_TEMPORAL: Final = (sqltypes.Date, sqltypes.DateTime, sqltypes.Time)
_RAW: Final = (sqltypes.Numeric, *_TEMPORAL, *_BINARY)
_PLAIN: Final = frozenset({str, int, float, type(None)})


class Unreadable(ValueError):
    """A row's value that no reading can make sense of; the row is dead-lettered with this reason."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column


class ExchangeTables:
    """Reflected tables of one exchange database, with their columns by lower-case (standard) name.

    Args:
        schema: Database schema holding the tables, when not the default one.
        renames: Per table, vendor column (lower case) → standard column.
    """

    def __init__(self, *, schema: str | None = None, renames: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._schema = schema
        self._renames = renames or {}
        self._tables: dict[str, Table] = {}
        self._columns: dict[str, dict[str, Column[Any]]] = {}
        self._names: dict[str, list[str]] = {}
        self._binary: dict[str, set[str]] = {}
        self._temporal: dict[str, set[str]] = {}

    def column(self, conn: Connection, name: str, column: str) -> Column[Any]:
        """The column of table ``name`` whose standard name is ``column``.

        Raises:
            KeyError: The table has no such column.
        """
        self.table(conn, name)
        return self._columns[name][column]

    def names(self, name: str) -> list[str]:
        """The standard column names of a reflected table, in the order :meth:`select` returns them."""
        return self._names[name]

    def has_column(self, conn: Connection, name: str, column: str) -> bool:
        """Whether table ``name`` has the (standard) column."""
        self.table(conn, name)
        return column in self._columns[name]

    def table(self, conn: Connection, name: str) -> Table:
        """The reflected table (found as written, upper or lower case).

        Raises:
            sqlalchemy.exc.NoSuchTableError: None of the spellings exists.
        """
        table = self._tables.get(name)
        if table is not None:
            return table
        table = self._reflect(conn, name)
        renames = {k.lower(): v for k, v in self._renames.get(name, {}).items()}
        columns = {renames.get(c.name.lower(), c.name.lower()): c for c in table.c}
        self._tables[name], self._columns[name] = table, columns
        self._names[name] = list(columns)
        self._binary[name] = {n for n, c in columns.items() if isinstance(c.type, _BINARY)}
        self._temporal[name] = {n for n, c in columns.items() if isinstance(c.type, _TEMPORAL)}
        return table

    def select(self, conn: Connection, name: str) -> Select[Any]:
        """``SELECT`` of every column, the special ones (numbers, times, binaries) as the driver returns them."""
        table = self.table(conn, name)
        # SQLAlchemy's own conversion of a value it cannot read ("2026/11/24" in a DATETIME, text in a NUMERIC)
        # would fail the whole page; taken raw, the value fails at most its own row, in convert().
        columns = [type_coerce(c, sqltypes.NullType()) if isinstance(c.type, _RAW) else c for c in table.c]
        return select(*columns)

    def convert(self, name: str, values: Sequence[Any]) -> Row:
        """One driver row of :meth:`select` as a row of JSON values with standard column names.

        Raises:
            Unreadable: A text value that is neither UTF-8 nor GB18030, or binary data in a text column.
        """
        names, binary, temporal = self._names[name], self._binary[name], self._temporal[name]
        row: Row = dict(zip(names, values, strict=True))
        for column in temporal:
            value = row[column]
            kind = type(value)
            if kind is str or kind is int:
                row[column] = _text_time(str(value))  # 20261125101500 in a DATETIME is a time written as digits
            elif kind is datetime or kind is date:
                row[column] = _json_value(value)
        if set(map(type, row.values())) <= _PLAIN:
            return row  # most rows: text, numbers and times the loop above rendered
        for column, value in row.items():
            kind = type(value)
            if value is None or kind is str or kind is int or kind is float:
                continue
            if isinstance(value, (bytes, bytearray, memoryview)):
                row[column] = bytes(value).hex() if column in binary else _decode(column, bytes(value))
            else:
                row[column] = _json_value(value)
        return row

    def _reflect(self, conn: Connection, name: str) -> Table:
        errors: list[exc.NoSuchTableError] = []
        for spelling in dict.fromkeys((name, name.lower(), name.upper())):
            try:
                return Table(spelling, MetaData(schema=self._schema), autoload_with=conn)
            except exc.NoSuchTableError as error:
                errors.append(error)
        raise errors[0]


class DatabaseStore:
    """Parents looked up by key in the exchange database, among rows read so far, through bounded caches.

    The source calls :meth:`begin` with each poll's connection and the positions read so far, and
    :meth:`reached` after reading each page; a row put that is newer than the poll's start is cached as the
    latest of its key, any other lookup is answered from the database and cached.

    Args:
        tables: The reflected tables and the row reader.
        cache_rows: Entries per cache (latest row by key; rows by key); the least recently used go first.
    """

    def __init__(self, tables: ExchangeTables, *, cache_rows: int = DEFAULT_CACHE_ROWS) -> None:
        self._tables = tables
        self._size = cache_rows
        self._conn: Connection | None = None
        self._bound: dict[str, int] = {}  # the highest lsh read, per table with a cursor
        self._start: dict[str, int] = {}  # the same at the poll's start
        self._latest: OrderedDict[tuple[str, tuple[tuple[str, object], ...]], Row | None] = OrderedDict()
        self._rows: OrderedDict[tuple[str, tuple[tuple[str, object], ...]], list[Row]] = OrderedDict()
        self._patterns: dict[str, set[tuple[str, ...]]] = {}
        self._single: dict[str, set[str]] = {}
        self._orders: dict[tuple[str, ...], tuple[str, ...]] = {}  # lookup columns as given → sorted
        self.queries = 0  # how many lookups reached the database (for tests and benchmarks)

    def begin(self, conn: Connection, positions: Mapping[str, int]) -> None:
        """Look up through ``conn`` from now on, among rows up to ``positions``."""
        self._conn = conn
        self._bound, self._start = dict(positions), dict(positions)

    def reached(self, table: str, lsh: int) -> None:
        """The reader has read ``table`` up to ``lsh``."""
        self._bound[table] = max(lsh, self._bound.get(table, 0))

    def clear(self) -> None:
        """Forget every cached row (the reader went back to an earlier cursor)."""
        self._latest.clear()
        self._rows.clear()

    @property
    def cached(self) -> int:
        """Entries in the caches."""
        return len(self._latest) + len(self._rows)

    def latest(self, table: str, where: Mapping[str, object]) -> Row | None:
        """The latest row of ``table`` read so far with these column values."""
        key = self._key(table, where)
        if key in self._latest:
            self._latest.move_to_end(key)
            return self._latest[key]
        found = self._query(table, [dict(where)])
        row = found[-1] if found else None
        self._remember(self._latest, key, row)
        return row

    def rows(self, table: str, where: Mapping[str, object]) -> list[Row]:
        """Every row of ``table`` read so far with these column values, in ``lsh`` order."""
        key = self._key(table, where)
        if key in self._rows:
            self._rows.move_to_end(key)
            return self._rows[key]
        found = self._query(table, [dict(where)])
        self._remember(self._rows, key, found)
        return found

    def put(self, table: str, row: Row) -> None:
        """Keep the cached answers about ``row``'s keys true now that the reader has passed it."""
        lsh = row.get("lsh")
        fresh = isinstance(lsh, int) and lsh > self._start.get(table, 0)
        for columns in self._patterns.get(table, ()):
            key = (table, tuple((c, row.get(c)) for c in columns))
            if key in self._rows:
                rows = [r for r in self._rows[key] if r.get("lsh") != lsh or r.get("dfsjzj") != row.get("dfsjzj")]
                self._rows[key] = sorted([*rows, row], key=lsh_order)
            if key in self._latest:
                cached = self._latest[key]
                if cached is None or lsh_order(row) >= lsh_order(cached):
                    self._remember(self._latest, key, row)
            elif fresh:
                self._remember(self._latest, key, row)

    def prefetch(
        self, table: str, wheres: Iterable[Mapping[str, object]], *, many: bool, below: int | None = None
    ) -> None:
        """Answer these lookups (``many``: of :meth:`rows`, else :meth:`latest`) with a few bulk queries.

        ``below``: fetch only rows with a lower ``lsh`` (the rows of a page about to be :meth:`put` in order,
        which then complete the cached answers one by one, as the joiner's "earlier versions" need).
        """
        missing: dict[tuple[str, tuple[tuple[str, object], ...]], dict[str, object]] = {}
        cache = self._rows if many else self._latest
        for where in wheres:
            key = self._key(table, where)
            if key not in cache and None not in where.values():
                missing[key] = dict(where)
        if not missing:
            return
        found: dict[tuple[str, tuple[tuple[str, object], ...]], list[Row]] = {key: [] for key in missing}
        columns = sorted(next(iter(missing.values())))
        for row in self._query(table, list(missing.values()), below=below):
            key = (table, tuple((c, row.get(c)) for c in columns))
            if key in found:
                found[key].append(row)
        for key, rows in found.items():
            if many:
                self._remember(self._rows, key, rows)
            else:
                self._remember(self._latest, key, rows[-1] if rows else None)

    def _key(self, table: str, where: Mapping[str, object]) -> tuple[str, tuple[tuple[str, object], ...]]:
        if len(where) == 1:
            ((column, value),) = where.items()
            if column not in self._single.get(table, ()):
                self._single.setdefault(table, set()).add(column)
                self._patterns.setdefault(table, set()).add((column,))
            return table, ((column, value),)
        given = tuple(where)
        columns = self._orders.get(given)
        if columns is None:
            columns = self._orders[given] = tuple(sorted(given))
        patterns = self._patterns.get(table)
        if patterns is None or columns not in patterns:
            self._patterns.setdefault(table, set()).add(columns)
        return table, tuple((c, where[c]) for c in columns)

    def _remember(self, cache: "OrderedDict[Any, Any]", key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._size:
            cache.popitem(last=False)

    def _query(self, table: str, wheres: list[dict[str, object]], *, below: int | None = None) -> list[Row]:
        """Rows matching any of ``wheres`` (all on the same columns), read so far, in ``lsh`` order."""
        conn = self._conn
        if conn is None:
            message = "DatabaseStore.begin() was not called"
            raise RuntimeError(message)
        tables = self._tables
        columns = sorted(wheres[0])
        try:
            base = tables.select(conn, table)
            targets = {c: tables.column(conn, table, c) for c in columns}
        except (exc.NoSuchTableError, KeyError):
            return []  # a dialect's table or column this database lacks: nothing to find there
        bound = self._bound.get(table) if below is None else below - 1
        out: list[Row] = []
        first, rest = columns[0], columns[1:]
        # PostgreSQL takes any number of text keys as one array parameter: no statement of thousands of
        # placeholders to build and parse per page, and one round trip.
        as_array = (
            conn.dialect.name == "postgresql"
            and isinstance(targets[first].type, sqltypes.String)
            and all(isinstance(w[first], str) for w in wheres)
        )
        size = len(wheres) if as_array else _IN_CHUNK
        for start in range(0, len(wheres), size):
            chunk = wheres[start : start + size]
            if len(chunk) == 1:
                condition = and_(*(targets[c] == chunk[0][c] for c in columns))
            elif as_array:
                keys = sorted({str(w[first]) for w in chunk})
                condition = targets[first] == any_(cast(bindparam(None, keys), ARRAY(sqltypes.Text)))
            else:
                condition = targets[first].in_(sorted({w[first] for w in chunk}, key=str))
            query = base.where(condition)
            wanted = {tuple(w[c] for c in rest) for w in chunk}
            if bound is not None:
                query = query.where(tables.column(conn, table, "lsh") <= bound)
            self.queries += 1
            for values in conn.execute(query):
                try:
                    row = tables.convert(table, values)
                except Unreadable:
                    continue  # dead-lettered when the reader reached it; no parent to anyone
                if not rest or tuple(row.get(c) for c in rest) in wanted:
                    out.append(row)
        return sorted(out, key=lsh_order)


def _decode(column: str, value: bytes) -> str:
    for encoding in TEXT_ENCODINGS:
        try:
            return value.decode(encoding)
        except UnicodeDecodeError:
            continue
    message = f"column {column} holds {len(value)} bytes that are neither UTF-8 nor GB18030 text (binary data?)"
    raise Unreadable(column, message)


def decode_text(value: bytes) -> str | bytes:
    """SQLite's text factory: the text decoded as UTF-8 or GB18030, else the bytes (failed later by their row)."""
    for encoding in TEXT_ENCODINGS:
        try:
            return value.decode(encoding)
        except UnicodeDecodeError:
            continue
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent == 0 else float(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)  # times, UUIDs, intervals: their text, for the normaliser to judge


def _text_time(value: str) -> str:
    """A date or time the driver left as text: ISO text as the typed path renders it, else unchanged."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # another format (2026/11/24 10:15:00, 20261124101500, Feb 30): the normaliser judges it
    if len(value) <= len("2026-11-24"):
        return moment.date().isoformat()
    return moment.isoformat(sep=" ", timespec="seconds")
