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
    served_error: str | None = None,
) -> ComponentReport:
    """Judge the CA and the server certificate (the one Berth holds, else the one served).

    ``served_error`` says why no TLS handshake with the registry happened; without a held
    certificate that makes the server certificate unknown rather than a warning.
    """
    now = now or datetime.now(UTC)
    report = ComponentReport()
    ca = _read(ca_file, "CA certificate", report)
    if ca is not None:
        report.details["ca"] = ca.as_dict(now)
        report.findings += expiry_findings(ca, "CA certificate", now)
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
