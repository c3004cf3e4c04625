"""The Kafka clients' selector answers as the standard one, without formatting a socket it does not hold."""

import selectors
import socket
from collections.abc import Iterator

import pytest

from connectors.runtime.kafka_selector import QuietSelector


class _Counted(socket.socket):
    """A socket that counts how often it is formatted (each repr asks the kernel for both addresses)."""

    reprs = 0

    def __repr__(self) -> str:
        _Counted.reprs += 1
        return super().__repr__()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of sockets."""
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_a_registered_socket_gets_the_key_the_standard_selector_gives(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Registered for reading with some data: the same key fields as selectors.DefaultSelector returns."""
    quiet, standard = QuietSelector(), selectors.DefaultSelector()
    try:
        for selector in (quiet, standard):
            selector.register(pair[0], selectors.EVENT_READ, "reader")
        ours, theirs = quiet.get_key(pair[0]), standard.get_key(pair[0])
        assert (ours.fileobj, ours.fd, ours.events, ours.data) == (theirs.fileobj, theirs.fd, theirs.events, "reader")
        assert quiet.get_key(pair[0].fileno()) is ours
    finally:
        quiet.close()
        standard.close()


def test_a_socket_not_registered_is_a_key_error_without_its_repr() -> None:
    """The miss kafka-python expects on every wait: KeyError holding the socket, which is never formatted."""
    selector = QuietSelector()
    sock = _Counted(socket.AF_INET, socket.SOCK_STREAM)
    try:
        _Counted.reprs = 0
        with pytest.raises(KeyError) as raised:
            selector.get_key(sock)
        assert (raised.value.args, _Counted.reprs) == ((sock,), 0)
        selector.register(sock, selectors.EVENT_WRITE)
        selector.unregister(sock)
        with pytest.raises(KeyError):
            selector.get_key(sock)
        assert _Counted.reprs == 0
    finally:
        sock.close()
        selector.close()


def test_a_closed_selector_says_so(pair: tuple[socket.socket, socket.socket]) -> None:
    """After close, as the standard selector: RuntimeError, not a miss."""
    selector = QuietSelector()
    selector.register(pair[0], selectors.EVENT_READ)
    selector.close()
    with pytest.raises(RuntimeError, match="closed"):
        selector.get_key(pair[0])
