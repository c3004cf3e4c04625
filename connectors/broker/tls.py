"""A throwaway certificate authority and certificates for a local broker's TLS listener (tests, demos).

``issue_local_pki(directory)`` writes a CA (``ca.pem``), a broker key and certificate chain in one PEM file
(``broker.pem``, the form Kafka's ``ssl.keystore.type=PEM`` reads), and a client certificate and key
(``client.pem``, ``client.key``) for mutual TLS. The broker certificate names ``localhost`` and ``127.0.0.1``,
so clients verify the host as well as the chain. Keys are unencrypted and the files private to their owner:
they protect nothing but a test broker.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID: Final = timedelta(days=30)


@dataclass(frozen=True)
class LocalPki:
    """Where the files of :func:`issue_local_pki` are."""

    ca_file: Path
    broker_pem: Path
    client_cert: Path
    client_key: Path


def issue_local_pki(directory: Path, *, name: str = "ubridge local") -> LocalPki:
    """Create a CA and the broker's and a client's certificates in ``directory`` (replacing earlier ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)  # tolerate a little clock skew between processes
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{name} CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(*_usage(cert_sign=True)), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name, broker_key.public_key(), now
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        _builder(_name("ubridge"), ca_name, client_key.public_key(), now)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = LocalPki(directory / "ca.pem", directory / "broker.pem", directory / "client.pem", directory / "client.key")
    _write(files.ca_file, _cert(ca))
    _write(files.broker_pem, _key(broker_key) + _cert(broker) + _cert(ca))
    _write(files.client_cert, _cert(client))
    _write(files.client_key, _key(client_key))
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID)
    )


def _usage(*, cert_sign: bool) -> tuple[bool, ...]:
    # digital_signature, content_commitment, key_encipherment, data_encipherment, key_agreement, key_cert_sign,
    # crl_sign, encipher_only, decipher_only
    return (True, False, False, False, False, cert_sign, cert_sign, False, False)


def _cert(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, content: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(content)
