"""Reading certificates: who they name, until when, and their fingerprints (cryptography)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from berth.errors import BadUpstreamResponse, NotFound


@dataclass(frozen=True)
class CertificateInfo:
    """What people check about a certificate."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    pem: str


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated upper-case hex (as openssl prints it)."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def describe(cert: x509.Certificate) -> CertificateInfo:
    """The facts about ``cert`` that pages and checks use."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()

    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=fingerprint(cert),
        dns_names=dns,
        ip_addresses=ips,
        pem=cert.public_bytes(Encoding.PEM).decode(),
    )


def read_certificate(path: Path) -> CertificateInfo:
    """The first certificate in the PEM file at ``path``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"No certificate at {path}.") from None
    try:
        return describe(x509.load_pem_x509_certificate(data))
    except ValueError:
        raise BadUpstreamResponse(f"{path} does not hold a PEM certificate.", upstream=str(path)) from None
