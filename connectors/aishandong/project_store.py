"""The router's copy of the project table, on local disk: the latest Avro bytes per project code, in SQLite.

Every router process holds the whole compacted project table (one event per project, rebuilt from Kafka at
start), and the number of projects only grows: a province files tens of thousands a year. Kept as decoded
events in memory, the heap grew with every project. SQLite keeps it in a file with a
bounded page cache (``_CACHE_KIB``), so the process's memory stays flat however many projects there are, and
a lookup (one indexed read and one Avro decode) costs microseconds.

The file is a cache, not a store: it lives in ``directory`` (the system's temporary directory by default),
is private to this process, and is deleted on :meth:`ProjectStore.close`; durability is the compacted
topic's job, which is why writes skip the journal and fsync.

Example:
    >>> store = ProjectStore(None)
    >>> store.put("2611-370602-04-01-000001", avro_bytes)
    >>> store.get("2611-370602-04-01-000001")
    b'...'
"""

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

_CACHE_KIB: Final = 4096


class ProjectStore:
    """Latest bytes per project code in a private SQLite file; safe to share between threads."""

    def __init__(self, directory: Path | None) -> None:
        handle, name = tempfile.mkstemp(prefix="ubridge-projects-", suffix=".sqlite", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        self._db.execute("CREATE TABLE projects (code TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM projects").fetchone()
        return int(count)

    def put(self, code: str, value: bytes) -> None:
        """Keep ``value`` as the latest for ``code``."""
        self.put_many([(code, value)])

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Keep each value as the latest for its code, in one transaction (a poll's worth of records)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO projects (code, value) VALUES (?, ?)", items)
            self._db.execute("COMMIT")

    def get(self, code: str) -> bytes | None:
        """The latest value kept for ``code``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM projects WHERE code = ?", (code,)).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        """Close the database and delete its file."""
        with self._lock:
            self._db.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
