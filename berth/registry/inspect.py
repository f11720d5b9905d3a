"""Registry health: does ``/v2/`` answer, which certificate is served, is the config sound."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from berth.errors import BerthError
from berth.findings import Finding, Level
from berth.registry.client import RegistryClient
from berth.report import ComponentReport
from berth.tls.certs import ServedCertificate, read_certificate, served_certificate

SLOW_SECONDS = 1.0


def inspect_registry(
    client: RegistryClient,
    *,
    ca_file: Path | None,
    held_certificate: Path | None,
    config_yaml: str | None,
    nfs_path: Path | None = None,
) -> ComponentReport:
    """Ping the registry, read its served certificate and judge its configuration."""
    report = ComponentReport()
    try:
        ping = client.ping()
    except BerthError as exc:
        report.error = exc.message
        report.findings.append(
            Finding(
                Level.CRITICAL,
                f"The registry API does not answer: {exc.message}",
                "Check the registry service's tasks on the Swarm panel and its logs.",
            )
        )
    else:
        report.details.update(latency_ms=round(ping.latency_seconds * 1000, 1), api_version=ping.api_version)
        report.findings += _ping_findings(ping.latency_seconds, ping.api_version)
    served = served_certificate(client.base_url, ca_file)
    report.details["served_certificate"] = served.info.as_dict() if served.info else None
    report.details["served_certificate_verified"] = served.verified
    report.findings += _served_findings(served, held_certificate, report.details)
    report.findings += config_findings(config_yaml, nfs_path)
    report.details["config_readable"] = config_yaml is not None
    if config_yaml is None and report.error is None:
        report.findings += _anonymous_findings(client)
    report.details["readonly"] = _readonly(config_yaml)
    return report


OPEN_REGISTRY = Finding(
    Level.CRITICAL,
    "The registry accepts pushes from anyone who reaches it: it has no auth section.",
    "Run the setup job: it makes Berth the registry's token server, so pushes need a directory account.",
)


def _anonymous_findings(client: RegistryClient) -> list[Finding]:
    """Without a readable config, ask ``/v2/`` with no credentials: a 200 means no auth."""
    try:
        status = client.anonymous_status()
    except BerthError:
        return []
    if status == 200:
        return [OPEN_REGISTRY]
    return [Finding(Level.OK, f"The registry requires authentication: GET /v2/ with no credentials is HTTP {status}.")]


def _readonly(config_yaml: str | None) -> bool:
    """Whether the config says ``storage.maintenance.readonly.enabled`` (garbage collection runs)."""
    from berth.swarm.maintenance import is_readonly

    try:
        return is_readonly(yaml.safe_load(config_yaml or "") or {})
    except yaml.YAMLError:
        return False


def _ping_findings(latency: float, api_version: str | None) -> list[Finding]:
    findings = []
    if api_version != "registry/2.0":
        findings.append(
            Finding(
                Level.WARNING,
                "The answer lacks Docker-Distribution-API-Version: registry/2.0.",
                "Check that BERTH_REGISTRY_URL points at the registry, not a proxy page.",
            )
        )
    if latency > SLOW_SECONDS:
        findings.append(
            Finding(
                Level.WARNING,
                f"GET /v2/ took {latency * 1000:.0f} ms.",
                "Look at the registry's CPU and the NFS panel: slow storage slows every request.",
            )
        )
    else:
        findings.append(Finding(Level.OK, f"GET /v2/ answered in {latency * 1000:.0f} ms."))
    return findings


def _served_findings(served: ServedCertificate, held: Path | None, details: dict) -> list[Finding]:
    if served.info is None:
        return [Finding(Level.CRITICAL, served.error or "No certificate could be read from the registry.")]
    findings = []
    if not served.verified:
        findings.append(
            Finding(
                Level.CRITICAL,
                served.error or "The served certificate does not verify.",
                "Clients that trust the CA will refuse it: rotate the certificate from Berth's CA.",
            )
        )
    else:
        findings.append(Finding(Level.OK, "The served certificate chains to the CA."))
    if held is not None and held.is_file():
        held_info = read_certificate(held)
        details["held_certificate_sha256"] = held_info.sha256
        same = held_info.sha256 == served.info.sha256
        details["serves_held_certificate"] = same
        if not same:
            findings.append(
                Finding(
                    Level.WARNING,
                    "The registry serves a different certificate than the one Berth issued.",
                    "If a rotation just ran, wait for the service to converge; otherwise run the rotation again.",
                )
            )
    return findings


# What the reference setup wants in config.yml: (is it missing?, what to say). Data, in the order shown.
CONFIG_RULES: list[tuple[Callable[[dict], bool], Finding]] = [
    (lambda c: not c.get("auth"), OPEN_REGISTRY),
    (
        lambda c: not (c.get("http") or {}).get("secret"),
        Finding(
            Level.WARNING,
            "http.secret is not set: each task makes its own.",
            "Set one shared http.secret, or pushes fail once there is more than one replica.",
        ),
    ),
    (
        lambda c: not ((c.get("storage") or {}).get("delete") or {}).get("enabled"),
        Finding(
            Level.INFO,
            "storage.delete is off: images cannot be deleted through the API.",
            "Enable it if you plan to delete tags and garbage-collect.",
        ),
    ),
    (
        lambda c: not ((c.get("health") or {}).get("storagedriver") or {}).get("enabled"),
        Finding(
            Level.WARNING,
            "health.storagedriver is off: the registry will not notice failing storage.",
            "Enable health.storagedriver so the registry reports storage errors.",
        ),
    ),
    (
        lambda c: not (c.get("http") or {}).get("draintimeout"),
        Finding(
            Level.INFO,
            "http.draintimeout is not set: updates cut in-flight pushes.",
            "Set http.draintimeout (e.g. 30s) so a stopping task finishes its requests.",
        ),
    ),
]


def config_findings(config_yaml: str | None, nfs_path: Path | None = None) -> list[Finding]:
    """Findings about the registry's config.yml, when Berth can read it."""
    if config_yaml is None:
        return [
            Finding(
                Level.INFO,
                "The registry's config.yml is not readable by Berth.",
                "Deploy it as a Swarm config (the setup job does) so Berth can check it.",
            )
        ]
    try:
        config = yaml.safe_load(config_yaml) or {}
    except yaml.YAMLError:
        return [Finding(Level.WARNING, "The registry's config.yml is not valid YAML.")]
    if not isinstance(config, dict):
        return [Finding(Level.WARNING, "The registry's config.yml is not a mapping.")]
    findings = [finding for missing, finding in CONFIG_RULES if missing(config)]
    root = ((config.get("storage") or {}).get("filesystem") or {}).get("rootdirectory")
    if nfs_path is not None and root and Path(root) != Path(nfs_path):
        findings.append(
            Finding(
                Level.WARNING,
                f"The registry stores data in {root}, not in {nfs_path}.",
                "Point storage.filesystem.rootdirectory at the NFS path.",
            )
        )
    return findings or [Finding(Level.OK, "The registry configuration follows the reference settings.")]
