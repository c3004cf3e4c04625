"""The statements the SPGL reader runs on each table, built once per reflected table with bound parameters.

A poll runs four to six statements per table, and a probe one. Built afresh each time, each statement was
constructed, given a cache key and looked up in SQLAlchemy's compiled cache: about as much of a poll's time as
the database's answers. Built once with named parameters (``high``, ``low``, ``serials``), a statement is
compiled once and only executed after that. The SQL is the one the reader ran before, parameters and all.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, Table, bindparam, func, select

from connectors.gonggai.spgl_store import ExchangeTables

# parameters: ``high`` the table's cursor, ``low`` the bottom of the look-back window, ``serials`` some lsh
HIGH, LOW, SERIALS = "high", "low", "serials"


@dataclass(frozen=True)
class TableQueries:
    """The reader's statements on one reflected table."""

    table: Table
    page: Select[Any]  # a page of rows after ``high``, in lsh order
    counted: Select[Any]  # how many rows the look-back window (``low``, ``high``] holds
    identities: Select[Any]  # (lsh, key) of the window's rows: their dfsjzj, else their lsh
    serials: Select[Any]  # the rows whose lsh is one of ``serials``, in lsh order
    unnumbered: Select[Any]  # the rows without an lsh
    newer: Select[Any]  # whether a row after ``high`` exists (LIMIT 1)


def table_queries(tables: ExchangeTables, conn: Connection, name: str, *, page_size: int) -> TableQueries:
    """The statements on table ``name`` as reflected now through ``conn``."""
    table, lsh = tables.table(conn, name), tables.column(conn, name, "lsh")
    key = tables.column(conn, name, "dfsjzj") if tables.has_column(conn, name, "dfsjzj") else lsh
    base = tables.select(conn, name)
    window = (lsh > bindparam(LOW)) & (lsh <= bindparam(HIGH))
    return TableQueries(
        table=table,
        page=base.where(lsh > bindparam(HIGH)).order_by(lsh).limit(page_size),
        counted=select(func.count()).select_from(table).where(window),
        identities=base.with_only_columns(lsh, key).where(window),
        serials=base.where(lsh.in_(bindparam(SERIALS, expanding=True))).order_by(lsh),
        unnumbered=base.where(lsh.is_(None)),
        newer=base.with_only_columns(lsh).where(lsh > bindparam(HIGH)).limit(1),
    )
