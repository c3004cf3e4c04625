import json
from pathlib import Path

from sqlalchemy import create_engine, text

from connectors.gonggai.spgl_source import SpglSource
from routing.spgl import DETAILS, PROJECTS
from simulators.approval.exchange_db import ExchangeWriter, create_exchange_tables
from simulators.approval.generator import EventGenerator


def exchange(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'exchange.db'}"
    engine = create_engine(url)
    create_exchange_tables(engine)
    ExchangeWriter(engine, seed=3).write(EventGenerator(seed=3).generate(3))
    with engine.begin() as conn:
        # What an independently written export holds: a DATETIME as slashed text, a NUMERIC as text with
        # thousands separators. SQLAlchemy's own conversion of either raises and used to fail the whole poll.
        first = "(SELECT MIN(lsh) FROM SPGL_XMSPSXBLXXXXB)"
        conn.execute(text(f"UPDATE SPGL_XMSPSXBLXXXXB SET blsj = '2026/11/24 10:15:00' WHERE lsh = {first}"))  # noqa: S608
        conn.execute(text("UPDATE SPGL_XMJBXXB SET jzmj = '12,345.67'"))
    engine.dispose()
    return url


def test_values_the_driver_cannot_convert_reach_the_records_as_written(tmp_path: Path) -> None:
    """A slashed date and a text area do not fail the poll: each record carries them, for the normaliser to judge."""
    source = SpglSource(exchange(tmp_path), raw_topic="raw", dlq_topic="dlq")
    try:
        batch = source.poll(None)
    finally:
        source.close()
    records = [json.loads(r.value) for r in batch.records if r.topic == "raw"]
    times = sorted(str(r[DETAILS]["blsj"]) for r in records)
    assert ("2026/11/24 10:15:00" in times, {r[PROJECTS]["jzmj"] for r in records}) == (True, {"12,345.67"})
    assert all(t[4] == "-" and len(t) == len("2026-11-24 10:15:00") for t in times if "/" not in t)
