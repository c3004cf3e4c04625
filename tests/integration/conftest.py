"""Fixtures of the integration tests beyond the broker: a real PostgreSQL server."""

import os
from collections.abc import Iterator

import pytest

from tests.postgres import start_cluster, stop_cluster
from tests.schema_registry import running_registry


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


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real Apicurio Registry: ``$UBRIDGE_TEST_SCHEMA_REGISTRY_URL``, else one started per session."""
    external = os.environ.get("UBRIDGE_TEST_SCHEMA_REGISTRY_URL")
    if external:
        yield external
        return
    try:
        registry = running_registry(tmp_path_factory.mktemp("schema-registry") / "registry.log")
        url = registry.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        registry.__exit__(None, None, None)
