"""Make a private CA and issue server certificates from it (``cryptography`` only).

Private keys are written with mode 0600. Both the registry and slapd serve the same
server certificate, valid for ``127.0.0.1`` (IP) and ``localhost`` (DNS) by default.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.files import write_private

PrivateKey = ec.EllipticCurvePrivateKey

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key() -> PrivateKey:
    """Return a fresh P-256 private key (fast to make, accepted by Go, GnuTLS, OpenSSL)."""
    return ec.generate_private_key(ec.SECP256R1())


def write_private_key(key: PrivateKey, path: Path) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem)


def write_certificate(cert: x509.Certificate, path: Path) -> None:
    """Write ``cert`` as PEM to ``path`` (mode 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


def load_certificate(path: Path) -> x509.Certificate:
    """Read a PEM certificate."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def make_ca(
    cert_path: Path,
    key_path: Path,
    common_name: str = "Berth devstack CA",
    days: int = 3650,
) -> x509.Certificate:
    """Create a self-signed CA, write ``cert_path`` and ``key_path`` (0600), return the cert."""
    key = new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth devstack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private_key(key, Path(key_path))
    write_certificate(cert, Path(cert_path))
    return cert


def _general_names(hosts: tuple[str, ...] | list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_server_cert(
    ca_cert_path: Path,
    ca_key_path: Path,
    cert_path: Path,
    key_path: Path,
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    days: int = 365,
) -> x509.Certificate:
    """Issue a TLS server certificate for ``hosts`` (IPs and DNS names) from the CA.

    Writes ``cert_path`` (leaf only) and ``key_path`` (0600) and returns the certificate.
    """
    ca_cert = load_certificate(Path(ca_cert_path))
    ca_key = load_private_key(Path(ca_key_path))
    key = new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private_key(key, Path(key_path))
    write_certificate(cert, Path(cert_path))
    return cert


def server_cert_usable(
    cert_path: Path,
    ca_cert_path: Path,
    hosts: tuple[str, ...] | list[str] = DEFAULT_HOSTS,
    min_days_left: int = 7,
) -> bool:
    """Return True if ``cert_path`` was issued by the CA, covers ``hosts`` and is not expiring."""
    try:
        cert = load_certificate(Path(cert_path))
        ca_cert = load_certificate(Path(ca_cert_path))
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # unreadable, foreign or malformed: issue a new one
        return False
    if set(_general_names(hosts)) - set(san):
        return False
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=min_days_left)
