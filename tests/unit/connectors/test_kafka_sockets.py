"""A connection attempt to a broker that fails or is abandoned closes its socket (kafka-python 3.0.12 does not)."""

import errno
import socket
import time
from collections.abc import Coroutine, Generator
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError
from kafka.net.inet import KafkaNetSocket

import connectors.runtime.kafka  # noqa: F401 - installs the fix, as every ubridge process does


class _Yield:
    def __await__(self) -> Generator[None]:
        yield


class Net:
    """The selector's part a connection attempt uses: waiting until the socket is writable (one turn here)."""

    async def wait_write(self, sock: socket.socket, timeout_at: float | None = None) -> None:
        """Give the turn back once."""
        await _Yield()


class Pending(KafkaNetSocket):
    """A connection that never completes, as one to a broker that does not answer."""

    SCHEMES = ()

    def connect_ex(self, sock: socket.socket, sockaddr: Any) -> int:
        """Still in progress."""
        return errno.EINPROGRESS


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def drive(attempt: Coroutine[Any, Any, Any]) -> None:
    """Run the attempt to its end, a turn every 10 ms (bounded)."""
    for _ in range(500):
        attempt.send(None)
        time.sleep(0.01)
    attempt.close()
    pytest.fail("the connection attempt never ended")


def test_a_refused_connection_closes_its_socket() -> None:
    """Nothing listens: the attempt raises, and its socket is closed rather than left to the garbage collector."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    with pytest.raises(KafkaConnectionError):
        drive(KafkaNetSocket().sock_connect(Net(), sock, ("127.0.0.1", closed_port())))
    assert sock.fileno() == -1


def test_an_attempt_abandoned_by_its_closing_client_closes_its_socket() -> None:
    """The client closes while the attempt waits (its task cancelled): the socket is closed with it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    attempt = Pending().sock_connect(Net(), sock, ("127.0.0.1", closed_port()))
    attempt.send(None)
    assert sock.fileno() != -1
    attempt.close()
    assert sock.fileno() == -1


def test_a_connection_made_keeps_its_socket_open() -> None:
    """A listening broker: the attempt returns its socket, open."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        with pytest.raises(StopIteration) as done:
            drive(KafkaNetSocket().sock_connect(Net(), sock, server.getsockname()))
        assert done.value.value is sock
        try:
            assert sock.fileno() != -1
        finally:
            sock.close()
