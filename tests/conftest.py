"""Fixtures shared by every test: a real Kafka broker for the integration tests, unique topic names."""

import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from structlog._config import BoundLoggerLazyProxy

from connectors.broker.local_kafka import start_broker, stop_broker
from connectors.runtime.logs import reset_logging

_OUR_PACKAGES = frozenset({"connectors", "routing", "schemas", "simulators", "benchmarks", "tests"})


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real broker: ``$KAFKA_BOOTSTRAP``, else a local one started once per session."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    # A home of its own and any free port, so a `ubridge broker start` demo broker on 9092 is left alone.
    home = tmp_path_factory.mktemp("kafka-broker")
    info = start_broker(home, port=0)
    try:
        yield info.bootstrap
    finally:
        stop_broker(home)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Undo a command's logging set-up, whose stream (often pytest's capture) closes with the test.

    Module loggers cache the logger they first built (``cache_logger_on_first_use``); a command run in-process
    (``main(["acl", "apply"])`` at level warning) would leave them filtering for every later test.
    """
    yield
    reset_logging()
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in _OUR_PACKAGES:
            for value in list(vars(module).values()):
                if isinstance(value, BoundLoggerLazyProxy):
                    vars(value).pop("bind", None)


@pytest.fixture
def unique_prefix() -> str:
    """A topic-name prefix such as ``t-1a2b3c4d.`` that no other test uses."""
    return f"t-{uuid.uuid4().hex[:8]}."


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test without a docstring: each test says in one line what it checks."""
    functions = [item for item in items if isinstance(item, pytest.Function)]
    missing = [item.nodeid for item in functions if not item.function.__doc__]
    if missing:
        message = "tests without a one-line docstring:\n  " + "\n  ".join(missing)
        raise pytest.UsageError(message)
