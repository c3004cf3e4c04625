"""Refuse to start, with one line, when the cluster will never accept this process: untrusted TLS, bad SASL.

kafka-python reports both as a bootstrap timeout, the same as a broker that is down, and ubridge waits a
down broker out. :func:`check_access` tells them apart before the stages start: it completes a TLS handshake
with the configured CA (and client certificate) with each reachable bootstrap broker, then opens an admin
connection and watches the client's own log for the SASL failure. A broker that cannot be reached at all is
not an error here: the stages wait for it, as before.
"""

import logging
import re
import socket
import ssl
from typing import Final

from kafka.errors import KafkaError, SaslAuthenticationFailedError

from connectors.runtime.kafka import make_admin
from connectors.settings import KafkaSettings
from routing.errors import UbridgeError

_CONNECT_S: Final = 5.0
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
    failures = _Failures()
    client_log = logging.getLogger(_CLIENT_LOGGER)
    client_log.addHandler(failures)
    try:
        admin = make_admin(
            kafka, request_timeout_ms=int(_CONNECT_S * 1000), bootstrap_timeout_ms=int(_CONNECT_S * 1000)
        )
        admin.close()
    except KafkaError:
        if failures.sasl is None:
            return  # no broker answered: an outage, waited out by the stages
        message = f"kafka: {kafka.bootstrap} refused user {sasl.username!r} with {sasl.mechanism}: {failures.sasl}"
        raise KafkaAccessError(message) from None
    finally:
        client_log.removeHandler(failures)


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
