"""Tells whether the process reaches its Kafka brokers, every couple of seconds, for ``/readyz`` and a metric.

kafka-python's clients hide an outage: ``poll`` just returns nothing and the producer buffers. The probe
opens a TCP connection to each bootstrap address in turn (the first that accepts is enough) so ``/readyz``
turns 503 within ``interval_s + timeout_s`` of the brokers going away and back to 200 as soon after their
return. It checks reachability, not the broker's health: a broker that accepts connections but cannot serve
shows in the stages' own readiness (commits retried, group not joined).

Example:
    >>> probe = KafkaProbe("127.0.0.1:9092", gauge=metrics.kafka_up, stop=stop)
    >>> threading.Thread(target=probe.run, daemon=True).start()
    >>> probe.ok, probe.error
"""

import socket
import threading
from typing import Final, Protocol

import structlog

log = structlog.get_logger(__name__)

_DEFAULT_PORT: Final = 9092


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class KafkaProbe:
    """Probes the bootstrap addresses until ``stop`` is set.

    Args:
        bootstrap: ``host:port[,host:port…]`` as in the configuration.
        gauge: Set to 1 or 0 after each probe (``ubridge_kafka_up``).
        stop: Ends the probing.
        interval_s: Pause between probes.
        timeout_s: Connect timeout per address.
    """

    def __init__(
        self, bootstrap: str, *, gauge: _Gauge, stop: threading.Event, interval_s: float = 2.0, timeout_s: float = 2.0
    ) -> None:
        self._addresses = [_address(part) for part in bootstrap.split(",") if part.strip()]
        self._gauge = gauge
        self._stop = stop
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.ok = True
        self.error: str | None = None

    def run(self) -> None:
        """Probe until stopped."""
        while True:
            self.check()
            if self._stop.wait(self._interval_s):
                return

    def check(self) -> bool:
        """Probe once; True when some bootstrap address accepts a connection."""
        failures = []
        for host, port in self._addresses:
            try:
                with socket.create_connection((host, port), timeout=self._timeout_s):
                    pass
            except OSError as exc:
                failures.append(f"{host}:{port} ({type(exc).__name__})")
                continue
            self._update(ok=True, error=None)
            return True
        self._update(ok=False, error="no Kafka broker reachable: " + ", ".join(failures))
        return False

    def _update(self, *, ok: bool, error: str | None) -> None:
        if ok != self.ok:
            if ok:
                log.info("kafka_reachable_again")
            else:
                log.warning("kafka_unreachable", error=error)
        self.ok, self.error = ok, error
        self._gauge.set(1 if ok else 0)


def _address(part: str) -> tuple[str, int]:
    host, _, port = part.strip().rpartition(":")
    if not host:
        return port, _DEFAULT_PORT
    return host.strip("[]"), int(port)
