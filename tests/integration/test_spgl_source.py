import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Engine, create_engine, func, insert, select, text

from benchmarks.spgl_backfill import build, read_all
from connectors.gonggai.spgl_normaliser import SpglNormaliser
from connectors.gonggai.spgl_source import SpglSource, parse_cursor
from connectors.runtime.interface import Delivered
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from connectors.runtime.metrics import Metrics
from connectors.runtime.source_runner import SourceRunner, read_cursor
from connectors.settings import KafkaSettings, RetrySettings
from routing.gonggai import DEFAULT_STATUS_CODES
from routing.records import ProjectEvent
from routing.service_areas import load_service_areas
from routing.spgl import DETAILS, joined_to_event
from routing.tasks import route_project_event
from schemas import Codec
from simulators.approval.exchange_db import DETAIL_TABLE, ExchangeWriter, create_exchange_tables, metadata
from simulators.approval.generator import EventGenerator
from tests.postgres import fresh_database
from tests.support import NOW, SERVICE_AREAS, read_topic, wait_until

pytestmark = pytest.mark.integration
NAME = "gonggai-spgl"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'exchange.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"))
    engine = create_engine(url)
    create_exchange_tables(engine)
    yield engine
    engine.dispose()


class Pipeline:
    """The source run by a SourceRunner in a thread, as the registry wires it, on the test's own topics."""

    def __init__(self, bootstrap: str, prefix: str, engine: Engine) -> None:
        self.kafka = KafkaSettings(bootstrap=bootstrap)
        self.prefix, self.engine = prefix, engine
        self.raw, self.dlq, self.offsets = f"{prefix}raw-spgl", f"{prefix}dlq-spgl", f"{prefix}offsets"
        specs = [TopicSpec(self.raw, 3), TopicSpec(self.dlq, 1), TopicSpec(self.offsets, 1, compacted=True)]
        ensure_topics(self.kafka, specs)
        self.held_seen: list[float] = []

    def committed_cursor(self) -> str | None:
        consumer = make_consumer(self.kafka, group_id=None)
        try:
            return read_cursor(consumer, self.offsets, NAME)
        finally:
            consumer.close()

    def last_lsh(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            found = {t.name: conn.scalar(select(func.max(t.c.lsh))) for t in metadata.sorted_tables}
        return {name: int(lsh) for name, lsh in found.items() if lsh is not None}

    def run_until_caught_up(self) -> str:
        """Start from the committed cursor, stop once every row in the database is covered; the last cursor."""
        target = self.last_lsh()
        url = self.engine.url.render_as_string(hide_password=False)
        source = SpglSource(url, raw_topic=self.raw, dlq_topic=self.dlq, page_size=40, held_gauge=self.held_seen.append)
        stop = threading.Event()
        runner = SourceRunner(
            source,
            producer=make_producer(self.kafka, transactional_id=f"{self.prefix}{NAME}"),
            offsets_topic=self.offsets,
            poll_interval_s=0.05,
            retry=RetrySettings(initial_backoff_s=0.05, max_backoff_s=0.2),
            metrics=Metrics(CollectorRegistry()),
            stop=stop,
            start_cursor=self.committed_cursor(),
            dlq_topic=self.dlq,
        )
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            done = lambda: runner.cursor is not None and parse_cursor(runner.cursor).positions == target  # noqa: E731
            wait_until(done, timeout_s=60, what="the source to cover every row")
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not runner.state.failed
        assert runner.cursor is not None
        return runner.cursor

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in read_topic(self.kafka.bootstrap, self.raw)]


def detail_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(DETAIL_TABLE.c.xzqhdm, DETAIL_TABLE.c.dfsjzj, DETAIL_TABLE.c.lsh)).all()
    return sorted(f"{r.xzqhdm}:{DETAILS}:{r.dfsjzj}:{r.lsh}" for r in rows)


def test_restart_resumes_with_held_rows_and_emits_every_record_once(
    kafka_bootstrap: str, unique_prefix: str, engine: Engine
) -> None:
    """Rows held across a restart are completed; every handling detail reaches the raw topic exactly once."""
    pipeline = Pipeline(kafka_bootstrap, unique_prefix, engine)
    writer = ExchangeWriter(engine, seed=12, withdraw_rate=0.08, out_of_order_rate=0.3)
    generator = EventGenerator(seed=12)
    writer.write(generator.generate(150))
    state = parse_cursor(pipeline.run_until_caught_up()).held
    assert state is not None
    held = {f"{e['row']['xzqhdm']}:{DETAILS}:{e['row']['dfsjzj']}:{e['row']['lsh']}" for e in state["held"]}
    assert held
    assert not held & {r["record_id"] for r in pipeline.records()}

    writer.write(generator.generate(100))
    writer.flush()
    state = parse_cursor(pipeline.run_until_caught_up()).held
    assert state is not None
    assert state["held"] == []
    assert pipeline.held_seen[-1] == 0
    records = pipeline.records()
    ids = sorted(r["record_id"] for r in records)
    assert ids == detail_ids(engine)
    assert held <= set(ids)
    withdrawn = [r for r in records if r[DETAILS]["sjyxbs"] == 0]
    assert sorted(r[DETAILS]["dfsjzj"] for r in withdrawn) == sorted(writer.withdrawn)
    events = [joined_to_event(r, source=NAME, ingested_at=NOW) for r in withdrawn]
    assert all(event["retraction"] for event in events)
    assert read_topic(kafka_bootstrap, pipeline.dlq) == []


def test_stage_two_grant_yields_three_tasks_and_a_replay_adds_none(
    kafka_bootstrap: str, unique_prefix: str, engine: Engine
) -> None:
    """A 烟台 project granted at stage 2 becomes three PRE_INTERVENTION tasks; replayed rows add no task ids."""
    pipeline = Pipeline(kafka_bootstrap, unique_prefix, engine)
    ExchangeWriter(engine, seed=13).write(EventGenerator(seed=13).generate(200))
    pipeline.run_until_caught_up()
    codec, areas = Codec.default(), load_service_areas(SERVICE_AREAS)
    normaliser = SpglNormaliser(
        input_topic=pipeline.raw, output_topic="events", status_codes=DEFAULT_STATUS_CODES, codec=codec
    )
    raw = read_topic(kafka_bootstrap, pipeline.raw)
    outcomes = list(normaliser.process(raw))
    assert all(isinstance(outcome, Delivered) for outcome in outcomes)
    events = [
        cast(ProjectEvent, codec.decode_as("ProjectEvent", output.value))
        for outcome in outcomes
        if isinstance(outcome, Delivered)
        for output in outcome.outputs
    ]
    tasks = [task for event in events for task in route_project_event(event, areas, now=NOW).tasks]
    granted = {e["project_code"] for e in events if e["stage"] == 2 and e["item_status"] == "GRANTED"}
    project = sorted(code for code in granted if code[5:9] == "3706")[0]
    pre = {t["task_id"]: t for t in tasks if t["project_code"] == project and t["kind"] == "PRE_INTERVENTION"}
    assert len(pre) == 3
    assert sorted(t["service"] for t in pre.values()) == ["GAS", "HEAT", "WATER"]
    assert len({t["utility_id"] for t in pre.values()}) == 3
    assert all(t["documents"] and t["builder_name"] and t["contact_mobile"] for t in pre.values())

    with engine.begin() as conn:  # the approval system pushes the same detail rows again
        rows = [dict(r) for r in conn.execute(select(DETAIL_TABLE).order_by(DETAIL_TABLE.c.lsh)).mappings()]
        top = max(pipeline.last_lsh().values())
        conn.execute(insert(DETAIL_TABLE), [{**r, "lsh": top + n} for n, r in enumerate(rows[:30], start=1)])
    pipeline.run_until_caught_up()
    assert len(read_topic(kafka_bootstrap, pipeline.raw)) == len(raw)

    replay = SpglSource(engine.url.render_as_string(hide_password=False), raw_topic="x", dlq_topic="y")
    cursor, replayed = None, []
    while True:
        batch = replay.poll(cursor)
        replayed += [json.loads(r.value) for r in batch.records]
        if not batch.has_more:
            break
        cursor = batch.cursor
    replay.close()
    again = {
        task["task_id"]
        for record in replayed
        for task in route_project_event(joined_to_event(record, source=NAME, ingested_at=NOW), areas, now=NOW).tasks
    }
    assert again == {task["task_id"] for task in tasks}


def test_rows_committed_out_of_order_by_concurrent_transactions_each_yield_one_outcome(
    postgres_url: str,
) -> None:
    """Writers commit in another order than they took lsh from one sequence; the reader still emits each row once."""
    engine = create_engine(fresh_database(postgres_url))
    create_exchange_tables(engine)
    ExchangeWriter(engine, seed=21).write(EventGenerator(seed=21).generate(60))
    with engine.begin() as conn:
        template = dict(conn.execute(select(DETAIL_TABLE).limit(1)).mappings().one())
        start = int(conn.scalar(text('SELECT MAX(lsh) FROM "SPGL_XMSPSXBLXXXXB"'))) + 1000
        conn.execute(text(f"CREATE SEQUENCE lsh_seq START WITH {start}"))
    url = engine.url.render_as_string(hide_password=False)
    source = SpglSource(url, raw_topic="raw", dlq_topic="dlq", page_size=7)
    cursor: str | None = None

    def write(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(15):
            with engine.begin() as conn:  # takes its lsh now, commits after others took later ones
                for part in range(rng.randint(1, 3)):
                    lsh = conn.scalar(text("SELECT nextval('lsh_seq')"))
                    row = {**template, "lsh": lsh, "dfsjzj": f"w{worker}-{n}-{part}", "blzt": rng.choice((1, 11, 13))}
                    conn.execute(insert(DETAIL_TABLE), [row])
                time.sleep(rng.uniform(0, 0.03))

    def take(conn: Connection, name: str) -> None:
        lsh = conn.scalar(text("SELECT nextval('lsh_seq')"))
        conn.execute(insert(DETAIL_TABLE), [{**template, "lsh": lsh, "dfsjzj": name}])

    # First for certain: the row with the lower lsh commits after the reader has passed the higher one.
    with engine.connect() as slow, engine.connect() as fast:
        slow.begin()
        take(slow, "slow")
        with fast.begin():
            take(fast, "fast")
        batch = source.poll(cursor)
        cursor, outcomes = batch.cursor, [json.loads(r.value)[DETAILS]["dfsjzj"] for r in batch.records]
        slow.commit()
    writers = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in writers:
        thread.start()
    while any(thread.is_alive() for thread in writers):
        batch = source.poll(cursor)
        cursor = batch.cursor
        outcomes += [json.loads(r.value)[DETAILS]["dfsjzj"] if r.topic == "raw" else r.topic for r in batch.records]
    idle = 0
    while idle < 2:  # caught up, and one more poll finds nothing new
        batch = source.poll(cursor)
        cursor = batch.cursor
        outcomes += [json.loads(r.value)[DETAILS]["dfsjzj"] if r.topic == "raw" else r.topic for r in batch.records]
        idle = 0 if batch.has_more or batch.records else idle + 1
    source.close()
    with engine.connect() as conn:
        written = sorted(conn.scalars(select(DETAIL_TABLE.c.dfsjzj)))
    engine.dispose()
    assert sorted(outcomes) == written  # every row once: none lost below the cursor, none emitted twice
    assert sum(1 for d in written if d.startswith("w")) == len({d for d in outcomes if d.startswith("w")})


def test_gbk_bytes_in_a_sql_ascii_postgresql_database_are_decoded(postgres_url: str) -> None:
    """A SQL_ASCII exchange database holding GBK text reads as text; bytes no encoding reads are a dead letter."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"ascii_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(
            text(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
        )
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    writer = create_engine(url, connect_args={"client_encoding": "utf8"})  # as an exporter would: no checks
    create_exchange_tables(writer)
    ExchangeWriter(writer, seed=5).write(EventGenerator(seed=5).generate(20))
    gbk = "".join(f"\\x{byte:02x}" for byte in "材料齐全，予以受理".encode("gbk"))
    with writer.begin() as conn:
        first, second = conn.scalars(select(DETAIL_TABLE.c.lsh).order_by(DETAIL_TABLE.c.lsh).limit(2)).all()
        conn.execute(text(f"UPDATE \"SPGL_XMSPSXBLXXXXB\" SET blyj = E'{gbk}' WHERE lsh = {first}"))  # noqa: S608
        conn.execute(text(f"UPDATE \"SPGL_XMSPSXBLXXXXB\" SET blyj = E'\\xff\\xfe\\x80' WHERE lsh = {second}"))  # noqa: S608
        total = conn.scalar(select(func.count()).select_from(DETAIL_TABLE))
    writer.dispose()
    source = SpglSource(url, raw_topic="raw", dlq_topic="dlq")
    batch = source.poll(None)
    source.close()
    records = {json.loads(r.value)[DETAILS]["lsh"]: json.loads(r.value) for r in batch.records if r.topic == "raw"}
    [dead] = [dict(r.headers) for r in batch.records if r.topic == "dlq"]
    assert records[first][DETAILS]["blyj"] == "材料齐全，予以受理"
    assert (dead["ubridge.error.offset"], dead["ubridge.error.field"]) == (
        str(second).encode(),
        f"{DETAILS}.blyj".encode(),
    )
    assert len(records) == total - 1


@pytest.mark.parametrize("dialect", ["xmdm", "gcdm"])
def test_the_backfill_benchmark_runs_on_a_small_table(postgres_url: str, dialect: str) -> None:
    """`make bench`'s backfill, at a few thousand rows: built by COPY, read whole with no dead letter."""
    url, written = build(postgres_url, 3000, dialect)
    result = read_all(url, page_size=500)
    engine = create_engine(url)
    with engine.connect() as conn:
        details = conn.scalar(select(func.count()).select_from(DETAIL_TABLE))
    engine.dispose()
    assert written >= 3000 and (result["records"], result["dead"]) == (details, 0)
