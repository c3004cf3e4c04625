from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.pool import StaticPool

from simulators.approval.exchange_db import (
    APPROVAL_TABLE,
    ATTACHMENT_TABLE,
    DETAIL_TABLE,
    ITEM_TABLE,
    PROJECT_TABLE,
    ExchangeWriter,
    create_exchange_tables,
    metadata,
)
from simulators.approval.generator import EventGenerator


@pytest.fixture
def engine() -> Engine:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    create_exchange_tables(engine)
    return engine


def rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.lsh)).mappings()]


def test_events_become_rows_of_all_five_tables(engine: Engine) -> None:
    """Each event yields one handling detail; projects, instances, permits and drawings appear once each."""
    events = EventGenerator(seed=3).generate(120)
    ExchangeWriter(engine, seed=3).write(events)
    details = rows(engine, DETAIL_TABLE)
    assert [(d["spsxslbm"], d["blzt"]) for d in details] == [(e["spsxslbm"], e["blzt"]) for e in events]
    projects = rows(engine, PROJECT_TABLE)
    assert {p["xmdm"] for p in projects} == {e["xmdm"] for e in events}
    assert len({(p["xmdm"], p["dfsjzj"]) for p in projects}) == len({p["xmdm"] for p in projects})  # updates: same key
    assert {i["spsxslbm"] for i in rows(engine, ITEM_TABLE)} == {e["spsxslbm"] for e in events}
    permits = {d["wjbh"] for e in events for d in e["fjxx"] if d["wjlx"] == "PERMIT"}
    drawings = {d["wjbh"]: d["sha256"] for e in events for d in e["fjxx"] if d["wjlx"] == "DRAWING"}
    assert {a["pfwh"] for a in rows(engine, APPROVAL_TABLE)} == permits
    assert {a["fjbh"]: a["fjzy"] for a in rows(engine, ATTACHMENT_TABLE)} == drawings
    assert all(r["sjyxbs"] == 1 and len(r["xzqhdm"]) == 6 for t in metadata.sorted_tables for r in rows(engine, t))


def test_lsh_increases_across_writes_and_writers(engine: Engine) -> None:
    """The serial lsh is unique and increasing; a new writer on the same database continues after it."""
    generator = EventGenerator(seed=4)
    ExchangeWriter(engine, seed=4).write(generator.generate(30))
    second = ExchangeWriter(engine, seed=5)
    second.write(generator.generate(30))
    serials = sorted(r["lsh"] for t in metadata.sorted_tables for r in rows(engine, t))
    assert serials == list(range(1, second.last_lsh + 1))
    assert Counter(p["xmdm"] for p in rows(engine, PROJECT_TABLE)).most_common(1)[0][1] <= 2  # row + update


def test_withdrawals_repeat_the_detail_with_sjyxbs_zero(engine: Engine) -> None:
    """A withdrawal is a later row with the same dfsjzj, sjyxbs=0 and a reason."""
    writer = ExchangeWriter(engine, seed=6, withdraw_rate=0.2)
    writer.write(EventGenerator(seed=6).generate(100))
    details = rows(engine, DETAIL_TABLE)
    withdrawn = [d for d in details if d["sjyxbs"] == 0]
    assert len(withdrawn) == len(writer.withdrawn) > 5
    for row in withdrawn:
        [original] = [d for d in details if d["dfsjzj"] == row["dfsjzj"] and d["sjyxbs"] == 1]
        assert original["lsh"] < row["lsh"] and row["sjwxyy"]
        assert {k: v for k, v in original.items() if k not in ("lsh", "sjyxbs", "sjwxyy")} == {
            k: v for k, v in row.items() if k not in ("lsh", "sjyxbs", "sjwxyy")
        }


def test_out_of_order_parents_come_later_with_a_higher_lsh(engine: Engine) -> None:
    """With out_of_order_rate, some details precede their instance, which arrives on the next write."""
    writer = ExchangeWriter(engine, seed=8, out_of_order_rate=0.5)
    writer.write(EventGenerator(seed=8).generate(60))
    first = {i["spsxslbm"] for i in rows(engine, ITEM_TABLE)}
    orphans = {d["spsxslbm"] for d in rows(engine, DETAIL_TABLE)} - first
    assert orphans
    writer.flush()
    instances = {i["spsxslbm"]: i["lsh"] for i in rows(engine, ITEM_TABLE)}
    for detail in rows(engine, DETAIL_TABLE):
        if detail["spsxslbm"] in orphans:
            assert detail["lsh"] < instances[detail["spsxslbm"]]


def test_same_seed_writes_the_same_rows() -> None:
    """Two databases filled with equal seeds hold equal rows."""
    contents = []
    for _ in range(2):
        engine = create_engine("sqlite://", poolclass=StaticPool)
        create_exchange_tables(engine)
        ExchangeWriter(engine, seed=9, withdraw_rate=0.1).write(EventGenerator(seed=9).generate(40))
        contents.append([rows(engine, t) for t in metadata.sorted_tables])
    assert contents[0] == contents[1]
