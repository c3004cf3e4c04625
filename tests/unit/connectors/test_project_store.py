"""The router's on-disk copy of the project table."""

import threading
from pathlib import Path

from connectors.aishandong.project_store import ProjectStore

CODE = "2611-370602-04-01-000001"


def test_the_latest_value_per_code_is_kept(tmp_path: Path) -> None:
    """A later value replaces the earlier one; an unknown code is None."""
    store = ProjectStore(tmp_path)
    store.put(CODE, b"first")
    store.put_many([(CODE, b"second"), ("2611-370602-04-01-000002", b"other")])
    assert (store.get(CODE), len(store), store.get("2611-370602-04-01-999999")) == (b"second", 2, None)
    store.close()


def test_the_file_is_private_to_the_store_and_deleted_on_close(tmp_path: Path) -> None:
    """Two stores in one directory never share a file; close removes it."""
    first, second = ProjectStore(tmp_path), ProjectStore(tmp_path)
    first.put(CODE, b"mine")
    assert second.get(CODE) is None
    assert first.path.parent == tmp_path
    first.close()
    second.close()
    assert list(tmp_path.iterdir()) == []


def test_reads_and_writes_from_several_threads_are_safe(tmp_path: Path) -> None:
    """The table's reader thread writes while the router's thread reads."""
    store = ProjectStore(tmp_path)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            store.put_many((f"{CODE[:-6]}{i:06d}", str(n).encode()) for i in range(200))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        store.get(CODE)
    for thread in threads:
        thread.join()
    assert (errors, len(store)) == ([], 200)
    store.close()
