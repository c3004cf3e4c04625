"""The I/O selector ubridge's Kafka clients use: the platform's own, without a socket's repr on every wait.

kafka-python registers a socket with its selector each time it waits on it, and asks ``get_key`` first,
expecting ``KeyError`` for a socket not registered yet, which is nearly every time. The standard selector
builds that error's message from ``repr(socket)`` twice, and a socket's repr asks the kernel for both of its
addresses: about 6 µs a wait, under the interpreter lock. Profiled under the end-to-end benchmark, that was 4%
of every ubridge process's samples. :class:`QuietSelector` raises the same ``KeyError`` without the message;
kafka-python takes it through its ``selector`` option.
"""

import selectors
from selectors import SelectorKey
from typing import Any


class QuietSelector(selectors.DefaultSelector):
    """``selectors.DefaultSelector`` whose ``get_key`` does not format the socket of a miss."""

    def get_key(self, fileobj: Any) -> SelectorKey:
        """The key of ``fileobj``; ``KeyError`` (holding the object, not its repr) when it is not registered."""
        if self.get_map() is None:
            message = "Selector is closed"
            raise RuntimeError(message)
        # the lookup get_key does, on _BaseSelectorImpl's own tables (CPython's since 3.4; not in the stubs)
        impl: Any = self
        try:
            key: SelectorKey = impl._fd_to_key[impl._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(fileobj) from None
        return key
