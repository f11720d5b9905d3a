"""The four health probes, built from Settings and the catalog, for the HealthMonitor."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from berth.auth.directory import Directory
from berth.catalog.service import CatalogService
from berth.config import Settings
from berth.errors import BerthError, DirectoryMisconfigured, DirectoryUnavailable
from berth.findings import Finding, Level
from berth.health.monitor import NODES, Probe
from berth.registry.client import RegistryClient
from berth.registry.inspect import inspect_registry
from berth.tls.authority import Authority, rotation_findings
from berth.tls.certs import served_certificate
from berth.tls.inspect import inspect_certificates

log = logging.getLogger(__name__)


def build_probes(
    settings: Settings, registry: RegistryClient, catalog: CatalogService, directory: Directory | None = None
) -> dict[str, Probe]:
    """Probe functions for registry, nfs, swarm and certs, each returning a JSON-ready report.

    The certs part also says whether the directory accepts Berth's settings (its TLS, the
    service account, a search): one service bind and two searches per probe cycle.
    """

    def registry_probe() -> dict:
        return inspect_registry(
            registry,
            ca_file=settings.registry_ca,
            held_certificate=held_server_certificate(settings),
            config_yaml=registry_config_yaml(settings),
            nfs_path=settings.nfs_path,
        ).as_dict()

    def nfs_probe() -> dict:
        from berth.nfs import inspect as nfs

        try:
            names = set(catalog.stored_repositories())
        except BerthError:
            names = None  # the registry panel says why; divergence is skipped
        return nfs.inspect(
            settings.nfs_path, deadline=settings.nfs_deadline, write_probe=settings.nfs_write_probe, catalog=names
        ).as_dict()

    def swarm_probe() -> dict:
        from berth.swarm import inspect as swarm

        return swarm.inspect_swarm(
            settings.docker_host, settings.swarm_service, settings.nfs_path, timeout=5.0, kept_dir=kept_dir(settings)
        ).as_dict()

    def certs_probe() -> dict:
        served = served_certificate(settings.registry_url, settings.registry_ca)
        ca_file = settings.ca_dir / "ca.crt"
        report = inspect_certificates(
            ca_file=ca_file if ca_file.is_file() else settings.registry_ca,
            server_file=held_server_certificate(settings),
            served=served.info,
            served_error=served.error if served.info is None else None,
            hostname=urlsplit(settings.registry_url).hostname or "",
            ldap_plaintext="ldap://" in settings.ldap_url and not settings.ldap_start_tls,
        )
        report.findings.extend(rotation_findings(Authority(settings.ca_dir).state()))
        if directory is not None:
            report.findings.extend(directory_findings(directory))
        return report.as_dict()

    probes = {"registry": registry_probe, "nfs": nfs_probe, "swarm": swarm_probe, "certs": certs_probe}
    probes[NODES] = nodes_probe(settings, catalog)  # reports nothing on a single node
    return probes


def nodes_probe(settings: Settings, catalog: CatalogService) -> Probe:
    """The per-node checks, at most every BERTH_NODE_CHECK_INTERVAL (each run starts a task per node)."""
    last: dict = {}

    def probe() -> dict:
        if last and time.monotonic() - last["at"] < settings.node_check_interval:
            return last["report"]
        from berth.swarm.nodecheck import node_status

        try:
            names = catalog.repositories()
        except BerthError:
            names = []
        last.update(at=time.monotonic(), report=node_status(settings, names))
        return last["report"]

    return probe


def directory_findings(directory: Directory) -> list[Finding]:
    """What a service bind and a search say about Berth's directory settings."""
    try:
        seen = directory.check()
    except DirectoryMisconfigured as exc:
        return [Finding(Level.CRITICAL, "Nobody can log in: the directory refuses Berth's settings.", exc.detail)]
    except DirectoryUnavailable:
        return [Finding(Level.WARNING, "The directory does not answer; logins fail until it does.", directory.url)]
    return [Finding(Level.OK, "The directory accepts Berth's service account and searches.", "", seen)]


def held_server_certificate(settings: Settings):
    """The server certificate Berth issued last (written by the setup and rotation jobs), if any."""
    path = settings.ca_dir / "server.crt"
    return path if path.is_file() else None


def kept_dir(settings: Settings):
    """Where Berth keeps copies of the registry configs it deployed as secrets."""
    from berth.registry.config import KEPT_DIR

    return settings.data_dir / KEPT_DIR


def registry_config_yaml(settings: Settings) -> str | None:
    """The registry's config.yml: BERTH_REGISTRY_CONFIG, else the service's (Swarm config or Berth's copy)."""
    if settings.registry_config is not None:
        try:
            return settings.registry_config.read_text()
        except OSError:
            return None
    try:
        from berth.swarm import inspect as swarm

        client = swarm.docker_client(settings.docker_host, 5.0)
        try:
            service = client.services.get(settings.swarm_service)
            return swarm.service_config_yaml(client, service, kept_dir(settings))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, no service, no config: all mean "not readable"
        return None
