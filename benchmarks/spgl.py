"""Throughput of the query-account source: ``SPGL_*`` rows in a SQLite file → joined records on Kafka.

``python -m benchmarks.spgl --rows 50000`` (``KAFKA_BOOTSTRAP`` names the broker, default 127.0.0.1:9092)
prints ``bench spgl_throughput <rows/s> rows/s``. The figure counts table rows (every table, not only the
handling details that become records) from the runner's start to the commit of the last row's cursor;
filling the database is not timed.
"""

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, func, select

from connectors.gonggai.spgl_source import DEFAULT_PAGE_SIZE, SpglSource, parse_cursor
from connectors.runtime.kafka import TopicSpec, ensure_topics, make_producer
from connectors.runtime.logs import configure_logging
from connectors.runtime.metrics import Metrics
from connectors.runtime.source_runner import SourceRunner
from connectors.settings import KafkaSettings, RetrySettings
from simulators.approval.exchange_db import ExchangeWriter, create_exchange_tables, metadata
from simulators.approval.generator import EventGenerator

_FILL_CHUNK = 2000


def fill_exchange_db(url: str, rows: int, *, seed: int = 11) -> dict[str, int]:
    """Create the tables at ``url`` and write at least ``rows`` rows; returns the last ``lsh`` per table."""
    engine = create_engine(url)
    try:
        create_exchange_tables(engine)
        writer = ExchangeWriter(engine, seed)
        generator = EventGenerator(seed=seed, in_flight=64)
        while writer.last_lsh < rows:
            writer.write(generator.generate(_FILL_CHUNK))
        writer.flush()
        with engine.connect() as conn:
            return {t.name: int(conn.scalar(select(func.max(t.c.lsh))) or 0) for t in metadata.sorted_tables}
    finally:
        engine.dispose()


def spgl_throughput(
    bootstrap: str, prefix: str, rows: int, *, page_size: int = DEFAULT_PAGE_SIZE, compression: str | None = None
) -> float:
    """Fill a SQLite file with about ``rows`` rows, move them all to a raw topic, return rows per second.

    ``compression`` is the source producer's ``compression_type`` (``None`` as the registry builds it).
    """
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='ubridge-bench-spgl-')) / 'exchange.db'}"
    last = fill_exchange_db(url, rows)
    total = max(last.values())  # lsh is shared by the tables: the last one is the row count
    kafka = KafkaSettings(bootstrap=bootstrap)
    raw, dlq, offsets = f"{prefix}raw-spgl", f"{prefix}dlq-spgl", f"{prefix}source-offsets"
    ensure_topics(kafka, [TopicSpec(raw, 3), TopicSpec(dlq, 1), TopicSpec(offsets, 1, compacted=True)])
    source = SpglSource(url, raw_topic=raw, dlq_topic=dlq, page_size=page_size)
    stop = threading.Event()
    runner = SourceRunner(
        source,
        producer=make_producer(kafka, transactional_id=f"{prefix}bench-spgl", compression_type=compression),
        offsets_topic=offsets,
        poll_interval_s=0.05,
        retry=RetrySettings(),
        metrics=Metrics(CollectorRegistry()),
        stop=stop,
        start_cursor=None,
        dlq_topic=dlq,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while runner.cursor is None or parse_cursor(runner.cursor).positions != last:
        if not thread.is_alive():
            message = "the source stopped before moving every row"
            raise RuntimeError(message)
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    return total / elapsed


def main() -> None:
    """Print the figure."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spgl", description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--compression", choices=["gzip"], default=None, help="source producer compression")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"bench-{os.getpid()}-{time.monotonic_ns() % 10**6}."
    rate = spgl_throughput(bootstrap, prefix, args.rows, page_size=args.page_size, compression=args.compression)
    print(f"bench spgl_throughput {rate:.0f} rows/s")


if __name__ == "__main__":
    main()
