"""Fixtures of the integration tests beyond the broker: a real PostgreSQL server."""

import os
from collections.abc import Iterator

import pytest

from tests.postgres import start_cluster, stop_cluster


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a real PostgreSQL: ``$UBRIDGE_TEST_POSTGRES_URL``, else a throwaway local cluster."""
    external = os.environ.get("UBRIDGE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        cluster = start_cluster()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield cluster.url
    finally:
        stop_cluster(cluster)
