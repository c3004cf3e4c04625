"""Refuse to start, with one line, when the cluster will never accept this process: untrusted TLS, bad SASL.

kafka-python reports both as a bootstrap timeout, the same as a broker that is down, and ubridge waits a
down broker out. :func:`check_access` tells them apart before the stages start: it completes a TLS handshake
with the configured CA (and client certificate) with each reachable bootstrap broker, then opens an admin
connection as the configured SASL user; a broker that accepts connections but no login is refusing the user.
A broker that cannot be reached at all is not an error here: the stages wait for it, as before.
"""

import logging
import re
import socket
import ssl
import threading
import time
from typing import Final

from kafka.errors import KafkaError, SaslAuthenticationFailedError

from connectors.runtime.kafka import make_admin
from connectors.settings import KafkaSettings
from routing.errors import UbridgeError

_CONNECT_S: Final = 5.0
_SASL_S: Final = 15.0
_ERROR_PREFIX: Final = re.compile(r"^(\[Error \d+\] )?(\w+(Error|Exception): )*")
_CLIENT_LOGGER: Final = "kafka"  # its connection manager logs "Bootstrap connection … failed: <exception>"


class KafkaAccessError(UbridgeError):
    """The cluster refuses this process's credentials or this process refuses the cluster's certificate."""


def check_access(kafka: KafkaSettings) -> None:
    """Raise :class:`KafkaAccessError` when TLS or SASL can never succeed with this configuration.

    Raises:
        KafkaAccessError: One line naming the broker and what to fix.
    """
    security = kafka.security
    if security.protocol in ("SSL", "SASL_SSL"):
        for address in kafka.bootstrap.split(","):
            _check_tls(kafka, address.strip())
    if security.sasl is not None:
        _check_sasl(kafka)


def _check_tls(kafka: KafkaSettings, address: str) -> None:
    security = kafka.security
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=None if security.ca_file is None else str(security.ca_file))
    context.check_hostname = security.check_hostname
    if security.cert_file is not None and security.key_file is not None:
        try:
            context.load_cert_chain(str(security.cert_file), str(security.key_file))
        except (OSError, ssl.SSLError) as exc:
            message = f"kafka.security: cannot use the client certificate {security.cert_file}: {_reason(exc)}"
            raise KafkaAccessError(message) from exc
    try:
        raw = socket.create_connection((host, int(port)), timeout=_CONNECT_S)
    except OSError:
        return  # not reachable now: the stages wait for the broker
    try:
        with context.wrap_socket(raw, server_hostname=host):
            return
    except ssl.SSLCertVerificationError as exc:
        trusted = security.ca_file or "the system's CA bundle"
        message = f"kafka: the certificate of {address} is not trusted by {trusted}: {exc.verify_message}"
        raise KafkaAccessError(message) from exc
    except ssl.SSLError as exc:
        message = f"kafka: TLS with {address} failed: {_reason(exc)} (is its listener {security.protocol}?)"
        raise KafkaAccessError(message) from exc
    except OSError:
        return  # the connection dropped: an outage, waited out by the stages
    finally:
        raw.close()


def _check_sasl(kafka: KafkaSettings) -> None:
    sasl = kafka.security.sasl
    assert sasl is not None  # noqa: S101 - checked by the caller
    if not any(_reachable(address.strip()) for address in kafka.bootstrap.split(",")):
        return  # an outage: the stages wait for the brokers
    failures = _Failures()
    client_log = logging.getLogger(_CLIENT_LOGGER)
    client_log.addHandler(failures)
    # The client retries a refused login as it retries a dropped connection, until its bootstrap timeout: watch
    # its log from here and stop at the first refusal rather than wait that out.
    connected: list[bool] = []
    connecting = threading.Thread(target=_connect, args=(kafka, connected), name="kafka-access-check", daemon=True)
    try:
        connecting.start()
        deadline = time.monotonic() + _SASL_S
        while connecting.is_alive() and failures.sasl is None and time.monotonic() < deadline:
            connecting.join(0.05)
    finally:
        client_log.removeHandler(failures)
    who = f"user {sasl.username!r} with {sasl.mechanism}"
    if failures.sasl is not None:
        message = f"kafka: {kafka.bootstrap} refused {who}: {failures.sasl}"
        raise KafkaAccessError(message)
    if not connected:
        # The broker often closes the connection before its refusal reaches the client: all it sees is a
        # broker that accepts connections and drops every login.
        message = (
            f"kafka: {kafka.bootstrap} accepts connections but no login as {who} succeeded within {_SASL_S:.0f} s "
            "(wrong password, or a mechanism its listener does not enable?)"
        )
        raise KafkaAccessError(message)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_S).close()
    except OSError:
        return False
    return True


def _connect(kafka: KafkaSettings, connected: list[bool]) -> None:
    timeout_ms = int(_SASL_S * 1000)
    try:
        make_admin(kafka, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms).close()
    except KafkaError:
        return  # refused: seen in the client's log, or by the absence of a connection
    connected.append(True)


class _Failures(logging.Handler):
    """Keeps the last SASL failure the client logged while connecting."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.sasl: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        for arg in record.args if isinstance(record.args, tuple) else ():
            if isinstance(arg, SaslAuthenticationFailedError):
                self.sasl = _reason(arg)


def _reason(exc: BaseException) -> str:
    # kafka-python words it "[Error 58] SaslAuthenticationFailedError: SaslAuthenticationFailedError: <why>"
    text = _ERROR_PREFIX.sub("", " ".join(str(exc).split()))
    return text or type(exc).__name__
