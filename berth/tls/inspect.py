"""Certificate health: the CA and the registry's server certificate, their expiry and names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from berth.errors import BerthError
from berth.findings import Finding, Level
from berth.report import ComponentReport
from berth.tls.certs import CertificateInfo, expiry_findings, hostname_findings, read_certificate


def inspect_certificates(
    *,
    ca_file: Path | None,
    server_file: Path | None,
    served: CertificateInfo | None,
    hostname: str,
    now: datetime | None = None,
    ldap_plaintext: bool = False,
    served_error: str | None = None,
) -> ComponentReport:
    """Judge the CA and the server certificate (the one Berth holds, else the one served).

    ``ldap_plaintext``: the directory is reached without TLS (BERTH_LDAP_ALLOW_PLAINTEXT); said here
    because it is the one place about Berth's encrypted connections. ``served_error`` says why no
    TLS handshake with the registry happened; without a held certificate that makes the server
    certificate unknown rather than a warning.
    """
    now = now or datetime.now(UTC)
    report = ComponentReport()
    if ldap_plaintext:
        report.findings.append(
            Finding(
                Level.WARNING,
                "Passwords go to the directory unencrypted (ldap:// without StartTLS).",
                "Set BERTH_LDAP_START_TLS=true (with BERTH_LDAP_CA) or use ldaps://, then drop"
                " BERTH_LDAP_ALLOW_PLAINTEXT.",
            )
        )
    ca = _read(ca_file, "CA certificate", report)
    if ca is not None:
        report.details["ca"] = ca.as_dict(now)
        report.findings += expiry_findings(ca, "CA certificate", now)
        report.findings += _constraint_findings(ca_file)
    server = _read(server_file, "server certificate", report) if server_file and server_file.is_file() else None
    source = "held"
    if server is None and served is not None:
        server, source = served, "served"
    if server is None and served_error:
        # The registry panel already says it is down; here that is "cannot check", not a second alarm.
        report.unchecked = "registry not answering"
        report.findings.append(
            Finding(
                Level.INFO,
                "Cannot check the server certificate: the registry is not answering.",
                "See the Registry panel; the certificate is checked again once the registry answers.",
                served_error,
            )
        )
        return report
    if server is None:
        report.findings.append(
            Finding(
                Level.WARNING,
                "No server certificate to check: Berth holds none and the registry served none.",
                "Run the setup job, or check the registry panel.",
            )
        )
        return report
    report.details["server"] = {**server.as_dict(now), "source": source}
    report.findings += expiry_findings(server, "server certificate", now)
    report.findings += hostname_findings(server, hostname, "server certificate")
    return report


def _constraint_findings(ca_file: Path | None) -> list[Finding]:
    """An info note when the CA may sign any name (made before Berth constrained new CAs)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(ca_file.read_bytes())  # type: ignore[union-attr]
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return [
            Finding(
                Level.INFO,
                "The CA has no name constraints: machines that trust it would trust it for any site.",
                "Berth leaves an existing CA as it is; a CA Berth creates now is limited to the registry's names."
                " Trust it through /etc/docker/certs.d only, not the system store.",
            )
        ]
    except (OSError, ValueError, AttributeError):
        pass  # unreadable: _read has said so
    return []


def _read(path: Path | None, label: str, report: ComponentReport) -> CertificateInfo | None:
    if path is None:
        report.findings.append(
            Finding(
                Level.INFO, f"No {label} configured.", "Set BERTH_CA_DIR (or BERTH_REGISTRY_CA), or run the setup job."
            )
        )
        return None
    try:
        return read_certificate(path)
    except BerthError as exc:
        report.findings.append(Finding(Level.WARNING, f"The {label} cannot be read: {exc.message}"))
        return None
