"""A province's first import: the SPGL reader backfilling a PostgreSQL exchange database of a million rows.

``python -m benchmarks.spgl_backfill --rows 1000000`` builds an exchange database per dialect (``xmdm``,
``gcdm``) with ``COPY`` (not timed), then reads it from the start in a child process, as the source does on a
first run: every page read, converted, joined and encoded as the raw topic's JSON (the Kafka producer is not
part of this figure; ``python -m benchmarks.spgl`` measures the whole source to Kafka). It prints::

    bench spgl_backfill_<dialect>_rows_per_s <n> rows/s
    bench spgl_backfill_<dialect>_peak_rss_<rows>_rows <MiB> MiB     (at the full and at a quarter size)
    bench spgl_backfill_<dialect>_rows_per_cpu_s <n> rows/cpu-s       (per second of the reader's own CPU)
    bench spgl_backfill_rows_per_s <n> rows/s                        (the slower dialect)

The wall-clock figure includes the database server's time and, on a shared machine, the wait for a core; the
CPU figure is what one dedicated core gives the reader.

Peak RSS is the reading process's ``VmHWM``, its own address space's high-water mark. (``ru_maxrss`` is not:
Linux carries it over from the parent at fork and exec, and the parent has just generated the table.) It must
not grow with the table: parents come from bounded caches, and held rows are bounded.

PostgreSQL: ``SPGL_BENCH_PG_URL`` names a server (a fresh database is created on it), else a throwaway
cluster is started from the ``postgresql`` package (tests/postgres.py).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from connectors.gonggai.spgl_source import SpglSource
from simulators.approval.exchange_db import DIALECTS, TABLE_COLUMNS, ExchangeWriter, create_exchange_tables
from simulators.approval.generator import EventGenerator

_CHUNK = 2_000  # events generated and copied per round (about 5,000 rows)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL: ``SPGL_BENCH_PG_URL`` or a throwaway cluster, stopped afterwards."""
    given = os.environ.get("SPGL_BENCH_PG_URL")
    if given:
        yield given
        return
    from tests.postgres import start_cluster, stop_cluster  # noqa: PLC0415 - only without a given server

    cluster = start_cluster()
    try:
        yield cluster.url
    finally:
        stop_cluster(cluster)


def build(server: str, rows: int, dialect: str, *, seed: int = 17) -> tuple[str, int]:
    """Create a database on ``server`` with at least ``rows`` rows of ``dialect``, by COPY; its URL and row count."""
    name = f"spgl_{dialect}_{rows}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    create_exchange_tables(engine)
    writer = ExchangeWriter(engine, seed, dialect=dialect)
    generator = EventGenerator(seed=seed, in_flight=256)
    written = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        while written < rows:
            for table, table_rows in writer.numbered(generator.generate(_CHUNK)).items():
                columns = TABLE_COLUMNS[table]
                names = ", ".join(columns)
                with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                    for row in table_rows:
                        copy.write_row([row.get(column) for column in columns])
                written += len(table_rows)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return url, written


def read_all(url: str, page_size: int) -> dict[str, Any]:
    """Read the whole exchange database as a first run does; rows, seconds, records and peak RSS."""
    source = SpglSource(url, raw_topic="raw", dlq_topic="dlq", page_size=page_size)
    cursor, records, dead = None, 0, 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        batch = source.poll(cursor)
        cursor = batch.cursor
        for output in batch.records:
            if output.topic == "raw":
                records += 1
            else:
                dead += 1
        if not batch.has_more:
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    source.close()
    peak_kib = _high_water_kib()
    return {"seconds": elapsed, "cpu_seconds": cpu, "records": records, "dead": dead, "peak_mib": peak_kib / 1024}


def _high_water_kib() -> int:
    """This process's peak resident set since its exec, from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    message = "no VmHWM in /proc/self/status (Linux only)"
    raise RuntimeError(message)


def measure(url: str, page_size: int) -> dict[str, Any]:
    """:func:`read_all` in a child process, so that its peak RSS is the reader's own."""
    command = [sys.executable, "-m", "benchmarks.spgl_backfill", "--child", url, "--page-size", str(page_size)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=3600)  # noqa: S603 - our own module
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def spgl_backfill(rows: int, *, page_size: int = 5000, progress: bool = True) -> dict[str, float]:
    """Build and read both dialects at ``rows`` and ``rows // 4``; returns the figures by name."""
    figures: dict[str, float] = {}
    with postgres_server() as server:
        for dialect in DIALECTS:
            for size in (rows // 4, rows):
                if progress:
                    print(f"# spgl backfill: building {size} rows ({dialect})", file=sys.stderr, flush=True)
                url, written = build(server, size, dialect)
                result = measure(url, page_size)
                if result["dead"]:
                    message = f"{result['dead']} dead letters while backfilling generated data ({dialect})"
                    raise RuntimeError(message)
                figures[f"spgl_backfill_{dialect}_peak_rss_{written}_rows"] = result["peak_mib"]
                if size == rows:
                    figures[f"spgl_backfill_{dialect}_rows_per_s"] = written / result["seconds"]
                    figures[f"spgl_backfill_{dialect}_rows_per_cpu_s"] = written / result["cpu_seconds"]
    figures["spgl_backfill_rows_per_s"] = min(figures[f"spgl_backfill_{d}_rows_per_s"] for d in DIALECTS)
    return figures


def print_figures(figures: dict[str, float]) -> None:
    """One ``bench`` line per figure."""
    for name, value in figures.items():
        unit = "MiB" if "peak_rss" in name else "rows/cpu-s" if name.endswith("per_cpu_s") else "rows/s"
        print(f"bench {name} {value:.0f} {unit}  # load {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    """Print the figures (or, with ``--child``, read one database and print its result as JSON)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spgl_backfill", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(read_all(args.child, args.page_size)))
        return
    print_figures(spgl_backfill(args.rows, page_size=args.page_size))


if __name__ == "__main__":
    main()
