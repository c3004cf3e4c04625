"""The SPGL reader against exchange databases written independently of ubridge (issue 13), one case per finding."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, insert, select, text, update

from connectors.gonggai import spgl_source
from connectors.gonggai.spgl_source import SpglSource, cursor_positions, parse_cursor
from connectors.runtime.errors import RetriableError
from connectors.runtime.interface import Output
from routing.spgl import DETAILS, ITEMS, PROJECTS
from simulators.approval.exchange_db import DETAIL_TABLE, ExchangeWriter, create_exchange_tables
from simulators.approval.generator import EventGenerator


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    create_exchange_tables(engine)
    ExchangeWriter(engine, seed=3).write(EventGenerator(seed=3).generate(40))
    yield engine
    engine.dispose()


class Reader:
    """A source polled until caught up, keeping every output and the last cursor."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        self.source = SpglSource(
            engine.url.render_as_string(hide_password=False), raw_topic="raw", dlq_topic="dlq", **options
        )
        self.cursor: str | None = None
        self.outputs: list[Output] = []

    def catch_up(self) -> list[Output]:
        new: list[Output] = []
        while True:
            batch = self.source.poll(self.cursor)
            self.cursor = batch.cursor
            new += batch.records
            if not batch.has_more:
                break
        self.outputs += new
        return new

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(o.value) for o in self.outputs if o.topic == "raw"]

    def dead(self) -> list[dict[str, str]]:
        return [
            {k.removeprefix("ubridge.error."): v.decode() for k, v in o.headers}
            for o in self.outputs
            if o.topic == "dlq"
        ]

    def close(self) -> None:
        self.source.close()


def details(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(DETAIL_TABLE).order_by(DETAIL_TABLE.c.lsh)).mappings()]


def top(engine: Engine) -> int:
    with engine.connect() as conn:
        return max(
            int(conn.scalar(text(f"SELECT MAX(lsh) FROM {t} WHERE typeof(lsh) = 'integer'")) or 0)  # noqa: S608
            for t in (PROJECTS, ITEMS, DETAILS)
        )


def add_detail(engine: Engine, **changes: Any) -> dict[str, Any]:
    row = {**details(engine)[0], "dfsjzj": f"extra-{changes.get('lsh')}-{len(changes)}", **changes}
    with engine.begin() as conn:
        conn.execute(insert(DETAIL_TABLE), [row])
    return row


def test_upper_case_column_names_are_read(tmp_path: Path) -> None:
    """A database whose columns are upper case (as Oracle or 达梦 exports write them) joins like any other."""
    url = f"sqlite:///{tmp_path / 'upper.db'}"
    source_engine = create_engine(f"sqlite:///{tmp_path / 'lower.db'}")
    create_exchange_tables(source_engine)
    ExchangeWriter(source_engine, seed=4).write(EventGenerator(seed=4).generate(20))
    upper = create_engine(url)
    with source_engine.connect() as src, upper.begin() as dst:
        for (name,) in src.execute(text("SELECT name FROM sqlite_master WHERE type='table'")):
            columns = [c[1] for c in src.execute(text(f'PRAGMA table_info("{name}")'))]
            declared = {c[1]: c[2] for c in src.execute(text(f'PRAGMA table_info("{name}")'))}
            dst.execute(text(f'CREATE TABLE "{name}" ({", ".join(f"{c.upper()} {declared[c]}" for c in columns)})'))
            for row in src.execute(text(f'SELECT * FROM "{name}"')):  # noqa: S608
                marks = ", ".join(f":p{n}" for n in range(len(columns)))
                dst.execute(text(f'INSERT INTO "{name}" VALUES ({marks})'), {f"p{n}": v for n, v in enumerate(row)})  # noqa: S608
    reader = Reader(upper)
    reader.catch_up()
    reader.close()
    assert (len(reader.records()), reader.dead()) == (len(details(source_engine)), [])
    assert all(r[DETAILS]["lsh"] and r[PROJECTS]["xmdm"] for r in reader.records())


@pytest.mark.parametrize(
    "written", ["2026/11/24 10:15:00", "20261125101500", "2026-11-24", "2026-11-24T10:15:00.123", "2026-02-30 10:00:00"]
)
def test_dates_in_any_text_format_pass_through_as_text(engine: Engine, written: str) -> None:
    """A DATETIME holding text in any export format (even an impossible date) reaches its record, not a crash."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE SPGL_XMSPSXBLXXXXB SET blsj = :t WHERE lsh = :n"),
            {"t": written, "n": details(engine)[0]["lsh"]},
        )
    reader = Reader(engine)
    reader.catch_up()
    first = min(reader.records(), key=lambda r: r[DETAILS]["lsh"])
    assert first[DETAILS]["blsj"] in (written, "2026-11-24", "2026-11-24 10:15:00")
    assert reader.dead() == []


def test_text_in_a_numeric_column_passes_through(engine: Engine) -> None:
    """A NUMERIC column holding text ("约1.2万") fails no poll: the normaliser judges the record."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE SPGL_XMJBXXB SET ztze = '约1.2万'"))
    reader = Reader(engine)
    reader.catch_up()
    assert {r[PROJECTS]["ztze"] for r in reader.records()} == {"约1.2万"}


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_gbk_and_gb18030_text_is_decoded(engine: Engine, encoding: str) -> None:
    """Text written in GBK or GB18030 bytes reads as the characters it encodes."""
    lsh = details(engine)[0]["lsh"]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE SPGL_XMSPSXBLXXXXB SET blyj = CAST(:b AS TEXT) WHERE lsh = :n"),
            {"b": "材料齐全，予以受理𠀀".encode(encoding, "replace"), "n": lsh},
        )
    reader = Reader(engine)
    reader.catch_up()
    [record] = [r for r in reader.records() if r[DETAILS]["lsh"] == lsh]
    assert record[DETAILS]["blyj"].startswith("材料齐全，予以受理")


@pytest.mark.parametrize(
    ("sql_value", "reason"),
    [
        ("CAST(X'FFFE0080FF' AS TEXT)", "neither UTF-8 nor GB18030"),
        ("X'FFD8FFE000104A464946'", "neither"),
    ],
    ids=["invalid-utf8-text", "blob-in-text-column"],
)
def test_undecodable_text_is_a_dead_letter_and_the_reader_moves_on(engine: Engine, sql_value: str, reason: str) -> None:
    """Bytes no encoding reads become a dead letter naming table, column, row key and lsh; later rows still flow."""
    rows = details(engine)
    bad = rows[1]
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE SPGL_XMSPSXBLXXXXB SET blyj = {sql_value} WHERE lsh = :n"), {"n": bad["lsh"]})  # noqa: S608
    reader = Reader(engine)
    reader.catch_up()
    [dead] = reader.dead()
    assert (dead["topic"], dead["field"], dead["offset"]) == (DETAILS, f"{DETAILS}.blyj", str(bad["lsh"]))
    assert dead["row_key"] == f"{bad['xzqhdm']}|{DETAILS}|{bad['dfsjzj']}" and reason in dead["message"]
    assert len(reader.records()) == len(rows) - 1
    assert reader.catch_up() == []  # not retried forever


def test_text_lsh_is_dead_lettered_once_and_never_enters_the_cursor(engine: Engine) -> None:
    """A text lsh is reported once; the cursor keeps integers only and later rows are still read."""
    add_detail(engine, lsh="A-17")
    reader = Reader(engine)
    reader.catch_up()
    [dead] = reader.dead()
    assert (dead["field"], dead["offset"]) == (f"{DETAILS}.lsh", "A-17")
    positions = parse_cursor(reader.cursor).positions
    assert all(isinstance(v, int) for v in positions.values())
    later = add_detail(engine, lsh=top(engine) + 1)
    assert reader.catch_up() and reader.dead() == [dead]
    assert parse_cursor(reader.cursor).positions[DETAILS] == later["lsh"]


def test_null_lsh_rows_are_read_and_emitted_once(engine: Engine) -> None:
    """A row without lsh is joined like any other, exactly once however often the reader polls."""
    row = add_detail(engine, lsh=None, blzt=13)
    reader = Reader(engine)
    reader.catch_up()
    reader.catch_up()
    found = [r for r in reader.records() if r[DETAILS]["dfsjzj"] == row["dfsjzj"]]
    assert len(found) == 1 and found[0][DETAILS]["lsh"] is None and reader.dead() == []


def test_rows_sharing_an_lsh_across_a_page_boundary_are_both_read(engine: Engine) -> None:
    """Two rows with one lsh, the second beyond the page, are both emitted (lsh > :n used to lose it)."""
    shared = top(engine) + 1
    add_detail(engine, lsh=shared, blzt=1, dfsjzj="shared-1")
    add_detail(engine, lsh=shared, blzt=11, dfsjzj="shared-2")
    reader = Reader(engine, page_size=1)
    reader.catch_up()
    assert sorted(r[DETAILS]["blzt"] for r in reader.records() if r[DETAILS]["lsh"] == shared) == [1, 11]
    assert len(reader.records()) == len(details(engine))


def test_a_row_committed_late_below_the_cursor_is_found_once(engine: Engine) -> None:
    """A row whose lsh lies below rows already read (committed later) is emitted by the next poll, once."""
    reader = Reader(engine)
    reader.catch_up()
    below = max(r["lsh"] for r in details(engine)) - 1
    late = add_detail(engine, lsh=below, dfsjzj="late-1")
    new = reader.catch_up()
    assert [json.loads(o.value)[DETAILS]["dfsjzj"] for o in new] == [late["dfsjzj"]]
    assert reader.catch_up() == []


def test_a_reader_continuing_its_own_cursor_reads_what_a_fresh_reader_of_that_cursor_reads(engine: Engine) -> None:
    """A poll after the reader's own commit reuses its state; a new reader parsing the same cursor agrees with it."""
    reader = Reader(engine)
    reader.catch_up()
    add_detail(engine, lsh=top(engine) + 1, dfsjzj="new-2")
    add_detail(engine, lsh=top(engine) - 3, dfsjzj="late-3")
    fresh = Reader(engine)
    fresh.cursor = reader.cursor
    try:
        ours, theirs = reader.catch_up(), fresh.catch_up()
        assert sorted(o.value or b"" for o in ours) == sorted(o.value or b"" for o in theirs)
        assert len(ours) == 2
        assert reader.cursor == fresh.cursor
        add_detail(engine, lsh=top(engine) + 1, dfsjzj="new-3")
        assert [o.value for o in reader.catch_up()] == [o.value for o in fresh.catch_up()]
    finally:
        fresh.close()


def test_a_poll_reads_the_window_identities_only_when_its_count_changed(engine: Engine) -> None:
    """Between two readings of the window, a poll counts its rows; it reads their identities when one came late."""
    reader = Reader(engine, window_every_s=3600)
    reader.catch_up()
    reader.catch_up()  # the first poll with a cursor reads the window's identities
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        add_detail(engine, lsh=top(engine) + 1, dfsjzj="new-1")
        assert len(reader.catch_up()) == 1
        identities = f'"{DETAILS}".dfsjzj FROM "{DETAILS}" WHERE'
        assert ([s for s in statements if identities in s], any("count(*)" in s for s in statements)) == ([], True)
        late = add_detail(engine, lsh=top(engine) - 1, dfsjzj="late-2")
        assert [json.loads(o.value)[DETAILS]["dfsjzj"] for o in reader.catch_up()] == [late["dfsjzj"]]
        assert any(identities in s for s in statements)
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_a_late_row_hidden_by_a_deleted_one_is_found_when_the_identities_are_read_again(engine: Engine) -> None:
    """A deletion and a late row leave the count alone: the next reading of the identities finds the row."""
    now = [0.0]
    reader = Reader(engine, window_every_s=5.0, clock=lambda: now[0])
    reader.catch_up()
    reader.catch_up()  # the first poll with a cursor reads the window's identities
    victim = details(engine)[-2]["lsh"]
    with engine.begin() as conn:
        conn.execute(delete(DETAIL_TABLE).where(DETAIL_TABLE.c.lsh == victim))
    late = add_detail(engine, lsh=victim, dfsjzj="late-3")
    assert reader.catch_up() == []  # the count is what it was: what reading identities less often trades
    now[0] += 5.0
    assert [json.loads(o.value)[DETAILS]["dfsjzj"] for o in reader.catch_up()] == [late["dfsjzj"]]


def test_a_row_below_the_look_back_window_is_not_looked_for(engine: Engine) -> None:
    """The window is bounded: lookback=0 reads only above the cursor (what the setting trades away)."""
    reader = Reader(engine, lookback=0)
    reader.catch_up()
    add_detail(engine, lsh=2, dfsjzj="too-late")
    assert reader.catch_up() == []


def test_a_joined_record_over_the_record_limit_is_a_dead_letter(engine: Engine) -> None:
    """A record Kafka would refuse (over 1 MB) is dead-lettered with its size; the others flow."""
    lsh = details(engine)[0]["lsh"]
    with engine.begin() as conn:
        conn.execute(update(DETAIL_TABLE).where(DETAIL_TABLE.c.lsh == lsh).values(blyj="意见" * 600_000))
    reader = Reader(engine)
    reader.catch_up()
    [dead] = reader.dead()
    assert (dead["offset"], "over the 1000000 bytes allowed" in dead["message"]) == (str(lsh), True)
    assert len(reader.records()) == len(details(engine)) - 1


def test_held_rows_past_their_age_are_dead_lettered_and_gauged(engine: Engine) -> None:
    """A detail whose item never arrives waits at most max_held_age_s, then is a dead letter naming the parent."""
    ages: list[float] = []
    orphan = add_detail(engine, lsh=top(engine) + 1, spsxslbm="NO-SUCH-ITEM")
    reader = Reader(engine, max_held_age_s=3600, held_age_gauge=ages.append)
    reader.catch_up()
    assert reader.dead() == [] and ages[-1] >= 0
    expiring = Reader(engine, max_held_age_s=1e-9)
    expiring.cursor = reader.cursor
    expiring.catch_up()
    [dead] = expiring.dead()
    assert (dead["offset"], dead["field"]) == (str(orphan["lsh"]), f"{DETAILS}.spsxslbm")
    assert "NO-SUCH-ITEM" in dead["message"] and "longer than" in dead["message"]
    assert parse_cursor(expiring.cursor).held == {"held": [], "version": 2}


def test_what_the_reader_keeps_of_parents_is_bounded(tmp_path: Path) -> None:
    """With a small cache every detail still joins, and the cached parents never exceed the bound."""
    engine = create_engine(f"sqlite:///{tmp_path / 'big.db'}")
    create_exchange_tables(engine)
    ExchangeWriter(engine, seed=9, out_of_order_rate=0.2).write(EventGenerator(seed=9).generate(600))
    reader = Reader(engine, cache_rows=100, page_size=200)
    sizes = []
    while True:
        batch = reader.source.poll(reader.cursor)
        reader.cursor, reader.outputs = batch.cursor, reader.outputs + batch.records
        sizes.append(reader.source.store.cached)
        if not batch.has_more:
            break
    assert max(sizes) <= 200 and reader.dead() == []
    held = parse_cursor(reader.cursor).held
    assert held is not None
    assert len(reader.records()) == len(details(engine)) - len(held["held"])


def test_a_row_the_driver_fails_on_is_isolated_and_dead_lettered(engine: Engine) -> None:
    """A value that fails the database driver mid-query costs its own row only: the rest of the page flows."""
    rows = details(engine)
    bad = rows[2]
    columns = ", ".join(c.name for c in DETAIL_TABLE.c if c.name != "blyj")
    with engine.begin() as conn:  # a view whose blyj fails at run time on one row, as a corrupt value would
        conn.execute(text('ALTER TABLE "SPGL_XMSPSXBLXXXXB" RENAME TO details_stored'))
        conn.execute(
            text(
                f'CREATE VIEW "SPGL_XMSPSXBLXXXXB" AS SELECT {columns}, '  # noqa: S608
                f"CASE WHEN lsh = {bad['lsh']} THEN json('{{bad') ELSE blyj END AS blyj FROM details_stored"
            )
        )
    reader = Reader(engine)
    reader.catch_up()
    [dead] = reader.dead()
    assert (dead["topic"], dead["offset"], dead["row_key"]) == (
        DETAILS,
        str(bad["lsh"]),
        f"{bad['xzqhdm']}|{DETAILS}|{bad['dfsjzj']}",
    )
    assert "cannot read this row" in dead["message"]
    assert len(reader.records()) == len(rows) - 1
    assert reader.catch_up() == []


def test_the_probe_sees_a_new_row_and_nothing_once_caught_up(engine: Engine) -> None:
    """``has_news`` answers from one index seek per table: yes before a poll, no after it, yes for a new row."""
    reader = Reader(engine)
    try:
        before = reader.source.has_news(None)
        reader.catch_up()
        idle = reader.source.has_news(reader.cursor)
        ExchangeWriter(engine, seed=4).write(EventGenerator(seed=4).generate(1))
        after = reader.source.has_news(reader.cursor)
    finally:
        reader.close()
    assert (before, idle, after) == (True, False, True)


def test_the_probe_after_the_sources_own_poll_reads_its_positions_without_parsing_the_cursor(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probing the cursor the source just wrote answers as a fresh source would, and parses nothing."""
    reader = Reader(engine)
    fresh = SpglSource(engine.url.render_as_string(hide_password=False), raw_topic="raw", dlq_topic="dlq")
    try:
        reader.catch_up()
        ExchangeWriter(engine, seed=4).write(EventGenerator(seed=4).generate(1))
        parsed: list[str | None] = []
        monkeypatch.setattr(spgl_source, "cursor_positions", lambda cursor: parsed.append(cursor) or {})
        ours = reader.source.has_news(reader.cursor)
        monkeypatch.undo()
        theirs = fresh.has_news(reader.cursor)
        reader.catch_up()
        assert (ours, theirs, parsed) == (True, True, [])
        assert reader.source.has_news(reader.cursor) is fresh.has_news(reader.cursor) is False
    finally:
        fresh.close()
        reader.close()


def test_the_probe_reports_an_unreachable_database_as_retriable(tmp_path: Path) -> None:
    """A probe against a database that fails raises RetriableError, so the runner falls back to a full poll."""
    source = SpglSource(f"sqlite:///{tmp_path / 'missing' / 'exchange.db'}", raw_topic="raw", dlq_topic="dlq")
    try:
        with pytest.raises(RetriableError, match="exchange database failed"):
            source.has_news(None)
    finally:
        source.close()


@pytest.mark.parametrize("cursor", ['["lsh"]', '{"lsh": {"SPGL_XMJBXXB": "12"}}', '{"held": {}}', "{not json"])
def test_a_cursor_that_format_cursor_did_not_write_is_refused_by_both_readers(cursor: str) -> None:
    """The probe's reading of a cursor (positions alone) refuses what the full reading refuses, with a ValueError."""
    with pytest.raises(ValueError, match=r"lsh|JSON|unexpected|invalid"):
        cursor_positions(cursor)
    with pytest.raises(ValueError, match=r"lsh|JSON|unexpected|invalid"):
        parse_cursor(cursor)


def test_the_probe_reads_the_positions_the_full_reading_reads() -> None:
    """Positions read alone equal the full cursor's, and no cursor means no positions yet."""
    cursor = '{"held":null,"lsh":{"SPGL_XMJBXXB":7,"SPGL_XMSPSXBLXXXXB":3},"seen":{"SPGL_XMJBXXB":[[6,11]]}}'
    assert cursor_positions(cursor) == parse_cursor(cursor).positions == {"SPGL_XMJBXXB": 7, "SPGL_XMSPSXBLXXXXB": 3}
    assert cursor_positions(None) == {}
