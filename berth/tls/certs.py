"""Certificates: read them, judge them, and see which one a server actually serves (cryptography).

Issuing (the CA and the registry's server certificate) lives in ``berth/tls/issue.py``.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from berth.errors import BadUpstreamResponse, NotFound
from berth.findings import Finding, Level

WARN_DAYS = 30
CRITICAL_DAYS = 3


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
    key: str
    is_ca: bool
    pem: str

    def days_left(self, now: datetime | None = None) -> float:
        """Days until expiry (negative once expired)."""
        return (self.not_after - (now or datetime.now(UTC))).total_seconds() / 86400

    def names(self) -> tuple[str, ...]:
        """Every DNS name and IP address the certificate is valid for."""
        return self.dns_names + self.ip_addresses

    def as_dict(self, now: datetime | None = None) -> dict:
        """JSON-ready facts (no PEM)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left(now), 1),
            "sha256": self.sha256,
            "sans": list(self.names()),
            "key": self.key,
            "is_ca": self.is_ca,
        }


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated upper-case hex (as openssl prints it)."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def key_description(cert: x509.Certificate) -> str:
    """'EC P-256', 'RSA 2048', ... for the certificate's public key."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    return type(key).__name__.removeprefix("_").replace("PublicKey", "")


def describe(cert: x509.Certificate) -> CertificateInfo:
    """The facts about ``cert`` that pages and checks use."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=fingerprint(cert),
        dns_names=dns,
        ip_addresses=ips,
        key=key_description(cert),
        is_ca=is_ca,
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


def expiry_findings(info: CertificateInfo, label: str, now: datetime | None = None) -> list[Finding]:
    """Warning under 30 days or past 2/3 of the lifetime; critical under 3 days or expired."""
    now = now or datetime.now(UTC)
    days = info.days_left(now)
    lifetime = (info.not_after - info.not_before).total_seconds()
    used = (now - info.not_before).total_seconds() / lifetime if lifetime > 0 else 1.0
    when = info.not_after.strftime("%Y-%m-%d %H:%M UTC")
    fix = "Rotate it now (Jobs → Rotate certificate)." if not info.is_ca else "Plan a new CA and re-trust it."
    if days <= 0:
        return [Finding(Level.CRITICAL, f"The {label} expired on {when}.", fix)]
    if now < info.not_before:
        return [
            Finding(
                Level.CRITICAL,
                f"The {label} is not valid before {info.not_before:%Y-%m-%d %H:%M UTC}.",
                "Check the clock of the machine that issued it.",
            )
        ]
    if days < CRITICAL_DAYS:
        return [Finding(Level.CRITICAL, f"The {label} expires in {days * 24:.0f} hours ({when}).", fix)]
    if days < WARN_DAYS or used > 2 / 3:
        return [Finding(Level.WARNING, f"The {label} expires in {days:.0f} days ({when}).", fix)]
    return [Finding(Level.OK, f"The {label} is valid for {days:.0f} more days (until {when}).")]


def hostname_findings(info: CertificateInfo, hostname: str, label: str) -> list[Finding]:
    """Critical if ``hostname`` (a DNS name or IP) is not among the certificate's SANs."""
    if matches_hostname(info, hostname):
        return [Finding(Level.OK, f"The {label} is valid for {hostname}.")]
    names = ", ".join(info.names()) or "no names at all"
    return [
        Finding(
            Level.CRITICAL,
            f"The {label} does not name {hostname} (it names {names}); clients refuse it.",
            "Set BERTH_REGISTRY_HOSTNAME to every name clients use, then rotate the certificate.",
        )
    ]


def matches_hostname(info: CertificateInfo, hostname: str) -> bool:
    """Whether ``hostname`` is covered by a SAN, with single-label wildcards."""
    host = hostname.lower().rstrip(".")
    if host in info.ip_addresses:
        return True
    for name in (n.lower().rstrip(".") for n in info.dns_names):
        if name == host or (name.startswith("*.") and host.count(".") >= 2 and host.split(".", 1)[1] == name[2:]):
            return True
    return False


@dataclass(frozen=True)
class ServedCertificate:
    """The certificate a TLS server presented, and whether it chains to the expected CA."""

    info: CertificateInfo | None
    verified: bool
    error: str | None


def served_certificate(url: str, ca_file: Path | None, timeout: float = 3.0) -> ServedCertificate:
    """Do a verified TLS handshake with the server at ``url`` and describe what it serves.

    When verification fails, the certificate is read once more without verification
    only to show *which* certificate is served; nothing from that handshake is trusted.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        return ServedCertificate(_peer_certificate(host, port, context, timeout), True, None)
    except ssl.SSLCertVerificationError as exc:
        error = f"The certificate does not verify against {ca_file or 'the system store'}: {exc.verify_message}."
    except (OSError, ssl.SSLError) as exc:
        return ServedCertificate(None, False, f"No TLS handshake with {host}:{port}: {exc}")
    diagnostic = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    diagnostic.check_hostname = False
    diagnostic.verify_mode = ssl.CERT_NONE
    try:
        return ServedCertificate(_peer_certificate(host, port, diagnostic, timeout), False, error)
    except (OSError, ssl.SSLError):
        return ServedCertificate(None, False, error)


def _peer_certificate(host: str, port: int, context: ssl.SSLContext, timeout: float) -> CertificateInfo:
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:  # only without a handshake, which wrap_socket has done
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return describe(x509.load_der_x509_certificate(der))
