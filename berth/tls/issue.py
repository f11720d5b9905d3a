"""Issuing: Berth's private CA and the registry's server certificates (cryptography).

The CA lives in BERTH_CA_DIR as ``ca.crt`` and ``ca.key`` (mode 0600). It is created
once and never overwritten; server certificates are issued from it with DNS and IP
SANs. Keys are EC P-256: small, fast, and accepted by Docker, Go, OpenSSL and browsers.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from berth.errors import Conflict, NotFound

CA_DAYS = 3650
BACKDATE = timedelta(minutes=5)  # tolerate small clock differences between hosts


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key, both PEM."""

    certificate_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)


def ca_paths(ca_dir: Path) -> tuple[Path, Path]:
    """Where the CA certificate and key live."""
    return ca_dir / "ca.crt", ca_dir / "ca.key"


def self_signed(key: ec.EllipticCurvePrivateKey, common_name: str, days: int) -> x509.CertificateBuilder:
    """A certificate builder for ``key`` issued by itself, valid from a moment ago for ``days`` days."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
    )


def create_ca(
    ca_dir: Path, common_name: str = "Berth registry CA", days: int = CA_DAYS, hostnames: Sequence[str] = ()
) -> x509.Certificate:
    """Create a CA in ``ca_dir``; Conflict if one is already there (a CA is never overwritten).

    With ``hostnames`` (the registry's DNS names and IPs) the CA carries critical name
    constraints: clients that trust it trust it for those names only, not for any site.
    """
    cert_path, key_path = ca_paths(ca_dir)
    if cert_path.exists() or key_path.exists():
        raise Conflict(f"A CA already exists in {ca_dir}; Berth never overwrites one.")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        self_signed(key, common_name, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if hostnames:
        builder = builder.add_extension(name_constraints(hostnames), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    ca_dir.mkdir(parents=True, exist_ok=True)
    write_private(key_path, private_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, PrivateKeyTypes]:
    """The CA certificate and key from ``ca_dir`` (EC if Berth made it); NotFound if there is none."""
    cert_path, key_path = ca_paths(ca_dir)
    if not (cert_path.is_file() and key_path.is_file()):
        raise NotFound(f"No CA in {ca_dir} (ca.crt and ca.key); the setup job creates one.")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    return cert, key


def issue_server_certificate(
    ca_cert: x509.Certificate, ca_key, hostnames: Sequence[str], days: int
) -> IssuedCertificate:
    """A server certificate for ``hostnames`` (DNS names and IPs) from the CA, valid ``days``."""
    if not hostnames:
        raise ValueError("a server certificate needs at least one hostname")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_general_names(hostnames)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM), private_pem(key))


def name_constraints(hostnames: Sequence[str]) -> x509.NameConstraints:
    """Permit exactly the registry's DNS names (and their subdomains) and IPs.

    A name type with no permitted subtree is unconstrained (RFC 5280), so when the registry
    has no IP, every IP is excluded. DNS is left open only for a registry named by IPs alone:
    OpenSSL then checks the server certificate's CN (an IP) as a DNS name, and any DNS
    constraint would reject it.
    """
    dns: list[x509.GeneralName] = []
    ips: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            dns.append(x509.DNSName(host.lower().rstrip(".")))
        else:
            ips.append(x509.IPAddress(ipaddress.ip_network(address)))
    excluded: list[x509.GeneralName] = []
    if not ips:
        excluded = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")), x509.IPAddress(ipaddress.ip_network("::/0"))]
    return x509.NameConstraints(permitted_subtrees=dns + ips, excluded_subtrees=excluded or None)


def private_pem(key) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (0600), from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _general_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names
