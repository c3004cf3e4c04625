"""kafka-python 3.0.12 leaves a socket open when a connection attempt to a broker fails or is cancelled.

``KafkaNetSocket.sock_connect`` (kafka/net/inet.py) raises on a refused or timed-out connection, and is
abandoned mid-connect when its client closes, without closing the socket it was handed; the socket stays open
until the garbage collector finds it. A process that keeps reconnecting to a broker that is down, or that
closes clients while they connect (every stage does at shutdown), holds descriptors it no longer uses. The
attempt is wrapped so that any way out but success closes the socket. Imported by :mod:`connectors.runtime.kafka`,
so every client ubridge makes is covered.
"""

import socket
from collections.abc import Awaitable, Callable
from typing import Any

from kafka.net.inet import KafkaNetSocket

_LIBRARY_CONNECT: Callable[..., Awaitable[socket.socket]] = KafkaNetSocket.sock_connect


async def _sock_connect(self: KafkaNetSocket, net: Any, sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
    """The library's attempt; its socket closed when it does not return it (an error, or the task cancelled)."""
    try:
        return await _LIBRARY_CONNECT(self, net, sock, *args, **kwargs)
    except BaseException:  # GeneratorExit too: the client closed while connecting
        sock.close()
        raise


def install() -> None:
    """Wrap ``KafkaNetSocket.sock_connect`` (the subclasses for proxies inherit it); calling it again is harmless."""
    KafkaNetSocket.sock_connect = _sock_connect
