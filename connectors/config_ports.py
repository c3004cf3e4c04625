"""The ports a ubridge process listens on: two listeners must not share one, and each must be free to bind.

Example:
    >>> found = [Listener("status_callbacks.port", "0.0.0.0", 8091, "status-callbacks"),
    ...          Listener("observability.metrics_port", "127.0.0.1", 8091, None)]
    >>> [problem.key for problem in port_clashes(found, "ubridge.yaml")]
    ['observability.metrics_port']
"""

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from connectors.config_problems import Problem
from connectors.permits.intake import STAGE as PERMIT_INTAKE
from connectors.settings import Settings
from connectors.status.callback import STAGE as STATUS_CALLBACKS
from connectors.supervision.stage import STAGE as SUPERVISION
from connectors.surveys.intake import STAGE as SURVEY_REPLIES

Probe = Callable[[str, int], str | None]

_WILDCARDS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names the wildcard, binds nothing


@dataclass(frozen=True, slots=True)
class Listener:
    """A port a process opens; ``stage`` None: every process (the metrics endpoint)."""

    key: str
    host: str
    port: int
    stage: str | None


def listeners(settings: Settings) -> list[Listener]:
    """The ports a process of this configuration listens on."""
    obs, sources = settings.observability, settings.sources
    found = [Listener("observability.metrics_port", obs.metrics_host, obs.metrics_port, None)]
    if sources.gonggai_webhook is not None and sources.gonggai_webhook.enabled:
        hook = sources.gonggai_webhook
        found.append(Listener("sources.gonggai_webhook.port", hook.host, hook.port, hook.name))
    if sources.aishandong_gateway is not None:
        gateway = sources.aishandong_gateway
        found.append(Listener("sources.aishandong_gateway.port", gateway.host, gateway.port, gateway.name))
    payments = settings.payments.gateway if settings.payments and settings.payments.enabled else None
    if payments is not None:
        found.append(Listener("payments.gateway.port", payments.host, payments.port, payments.name))
    permits = settings.permits.intake if settings.permits and settings.permits.enabled else None
    if permits is not None:
        found.append(Listener("permits.intake.port", permits.host, permits.port, PERMIT_INTAKE))
    replies = settings.surveys.intake if settings.surveys and settings.surveys.enabled else None
    if replies is not None:
        found.append(Listener("surveys.intake.port", replies.host, replies.port, SURVEY_REPLIES))
    if settings.status_callbacks is not None and settings.status_callbacks.enabled:
        callbacks = settings.status_callbacks
        found.append(Listener("status_callbacks.port", callbacks.host, callbacks.port, STATUS_CALLBACKS))
    if settings.supervision is not None and settings.supervision.enabled:
        view = settings.supervision
        found.append(Listener("supervision.port", view.host, view.port, SUPERVISION))
    return found


def port_clashes(found: list[Listener], file: str) -> list[Problem]:
    """Two listeners on the same port of overlapping addresses (port 0, a free port each time, never clashes)."""
    problems = []
    for i, later in enumerate(found):
        for earlier in found[:i]:
            overlapping = later.host == earlier.host or {later.host, earlier.host} & _WILDCARDS
            if later.port and later.port == earlier.port and overlapping:
                message = f"port {later.port} is also {earlier.key}'s; each listener needs its own"
                problems.append(Problem(file, later.key, message))
    return problems


def port_problems(found: list[Listener], file: str, probe: Probe) -> list[Problem]:
    """Listeners whose port is taken or whose host is not this machine's."""
    return [Problem(file, item.key, reason) for item in found if item.port and (reason := probe(item.host, item.port))]


def bind_problem(host: str, port: int) -> str | None:
    """Try to listen on ``host:port`` as the servers do (address reuse on); why not, or None."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"host {host!r} does not resolve: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None
