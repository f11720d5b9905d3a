"""The Swarm side of the registry: the engine, its nodes, the registry service and its tasks.

Everything goes through the docker SDK's low-level API (plain dicts) against the engine
at ``DOCKER_HOST`` (a Swarm manager). :func:`inspect_swarm` never raises for a problem of
the engine or the Swarm: an unreachable engine, a worker node, a missing service are
findings in the :class:`SwarmReport`, each with what to do about it.

Helpers shared with the jobs (setup, certificate rotation): :func:`docker_client`,
:func:`find_service`, :func:`service_config_yaml`. What the report holds is in
:mod:`berth.swarm.model`, how the engine's dicts become it in :mod:`berth.swarm.parse`,
and the rules that judge it in :mod:`berth.swarm.rules`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import yaml

from berth.findings import Finding, Level
from berth.swarm.model import SwarmReport, TaskInfo
from berth.swarm.parse import container_spec, node_info, service_info, task_info
from berth.swarm.rules import (
    manager_findings,
    mount_findings,
    node_findings,
    replica_findings,
    secret_findings,
    task_findings,
    update_findings,
)

#: Where the registry image reads its configuration unless the service says otherwise.
DEFAULT_CONFIG_PATH = "/etc/docker/registry/config.yml"
#: How many of the service's tasks a report shows (newest first).
MAX_TASKS = 20
_TELLING = re.compile(r"panic:|level=(fatal|error)|\berror\b|\bfailed\b", re.IGNORECASE)


# --- the engine ------------------------------------------------------------------------


def docker_client(docker_host: str | None, timeout: float = 5.0) -> docker.DockerClient:
    """A client of the engine at ``docker_host`` (the SDK's default when None).

    TLS settings come from the usual environment (``DOCKER_TLS_VERIFY``,
    ``DOCKER_CERT_PATH``). The client asks the engine for its API version at once, so an
    unreachable engine raises :class:`docker.errors.DockerException` here.
    """
    environment = dict(os.environ)
    if docker_host:
        environment["DOCKER_HOST"] = docker_host
    # docker-py passes the timeout to requests, which takes any number of seconds; its stubs say int.
    return docker.DockerClient.from_env(timeout=timeout, environment=environment)  # type: ignore[arg-type]


def describe_host(docker_host: str | None) -> str:
    """``docker_host`` for messages; the SDK default spelled out when None."""
    return docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _short_error(exc: BaseException) -> str:
    """The useful last part of a docker SDK / requests error message."""
    text = str(exc) or type(exc).__name__
    for pattern in (
        r"(No such file or directory)",
        r"(Connection refused)",
        r"(Permission denied)",
        r"(Read timed out[^)']*)",
        r"(timed out)",
        r"(Name or service not known)",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return text if len(text) <= 200 else text[:197] + "..."


# --- reading the Swarm -----------------------------------------------------------------


def find_service(client: docker.DockerClient, name: str) -> dict | None:
    """The service named exactly ``name`` (inspect dict with ``ServiceStatus``), or None.

    The engine's ``name`` filter matches prefixes; only the exact name counts here.
    """
    for service in client.api.services(filters={"name": name}, status=True):
        if service.get("Spec", {}).get("Name") == name:
            return service
    return None


def registry_config_path(service: Any) -> str:
    """The path the service's registry reads its ``config.yml`` from (``serve PATH``)."""
    spec = container_spec(service)
    args = list(spec.get("Args") or [])
    command = list(spec.get("Command") or [])
    words = command + args
    if "serve" in words:
        following = words[words.index("serve") + 1 :]
        if following:
            return following[0]
    return DEFAULT_CONFIG_PATH


def service_config_yaml(client: docker.DockerClient, service: Any, kept_dir: Path | None = None) -> str | None:
    """The registry ``config.yml`` the service runs with, from its Swarm config or Berth's copy.

    ``service`` is an inspect dict or a docker SDK ``Service``. A Swarm config is read
    from the engine. Swarm never gives a secret's data back, so a config in a secret is
    read from Berth's copy in ``kept_dir`` (``NAME.yml``), trusted only when its SHA-256
    matches the hash in the secret's versioned name. Returns None when the configuration
    cannot be read (baked into the image, a bind mount, someone else's secret).
    """
    path = registry_config_path(service)
    references = container_spec(service).get("Configs") or []
    chosen = [r for r in references if (r.get("File") or {}).get("Name") == path]
    if not chosen:
        chosen = [r for r in references if str((r.get("File") or {}).get("Name", "")).endswith(("config.yml", ".yaml"))]
    for reference in chosen:
        try:
            data = client.api.inspect_config(reference["ConfigID"])["Spec"]["Data"]
            return base64.b64decode(data).decode()
        except (docker.errors.DockerException, requests.RequestException, KeyError, binascii.Error, ValueError):
            continue
    secrets = [r for r in container_spec(service).get("Secrets") or [] if (r.get("File") or {}).get("Name") == path]
    return _kept_copy(kept_dir, secrets[0].get("SecretName", "")) if secrets and kept_dir else None


def _kept_copy(kept_dir: Path, name: str) -> str | None:
    """Berth's copy of the config in the secret ``name``, if its content matches the name's hash."""
    try:
        text = (Path(kept_dir) / f"{Path(name).name}.yml").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return text if name.endswith("-" + hashlib.sha256(text.encode()).hexdigest()[:12]) else None


def _network_names(client: docker.DockerClient, ids: list[str]) -> dict[str, str]:
    """Network id -> name for ``ids`` (Swarm ids of local networks such as ``host`` need an inspect)."""
    names: dict[str, str] = {}
    for network_id in ids:
        try:
            names[network_id] = client.api.inspect_network(network_id).get("Name", network_id)
        except (docker.errors.DockerException, requests.RequestException):
            names[network_id] = network_id
    return names


def _tasks(client: docker.DockerClient, service_id: str, hostnames: dict[str, str]) -> list[TaskInfo]:
    raw = client.api.tasks(filters={"service": service_id})
    raw.sort(key=lambda t: (t.get("CreatedAt") or "", t.get("UpdatedAt") or ""), reverse=True)
    return [task_info(task, hostnames) for task in raw[:MAX_TASKS]]


def _last_log_lines(client: docker.DockerClient, service_id: str, lines: int = 3) -> str:
    """The telling last lines of the service's log (errors, panics first), '' when none are kept."""
    try:
        chunks = client.api.service_logs(service_id, stdout=True, stderr=True, tail="60", follow=False)
        text = b"".join(chunks).decode(errors="replace")
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return ""
    seen: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if line and line not in seen[-8:]:
            seen.append(line)
    telling = [line for line in seen if _TELLING.search(line)]
    return "\n".join((telling or seen)[-lines:])[:2000]


def inspect_swarm(
    docker_host: str | None,
    service_name: str,
    nfs_path: Path,
    *,
    timeout: float = 5.0,
    registry_config: dict | None = None,
    kept_dir: Path | None = None,
) -> SwarmReport:
    """Inspect the engine at ``docker_host``, its Swarm and the service ``service_name``.

    ``nfs_path`` is the registry root every node should mount from NFS; ``registry_config``
    is the parsed registry ``config.yml`` when Berth can read it (otherwise it is read
    from the service's Swarm config, or Berth's copy in ``kept_dir``). Each request waits at most ``timeout``
    seconds. Never raises for engine or Swarm problems: they become findings.
    """
    host = describe_host(docker_host)
    report = SwarmReport(docker_host=host, service_name=service_name)
    try:
        client = docker_client(docker_host, timeout)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        return _engine_failed(
            report,
            exc,
            f"Docker engine unreachable at {host}",
            f"Docker engine unreachable at {host}",
            "Check that dockerd runs on the Swarm manager and that DOCKER_HOST points at it "
            "(for tcp:// also DOCKER_TLS_VERIFY and DOCKER_CERT_PATH).",
        )
    try:
        _inspect(client, report, service_name, Path(nfs_path), registry_config, kept_dir)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        _engine_failed(
            report,
            exc,
            f"Docker engine at {host} failed a request",
            f"The Docker engine at {host} stopped answering during the check",
            "Check the engine's load and log; a manager that is slow to answer may have lost quorum.",
        )
    finally:
        client.close()
    return report


def _engine_failed(report: SwarmReport, exc: Exception, error: str, message: str, fix: str) -> SwarmReport:
    """``report`` with the engine's failure as its error and one critical finding."""
    reason = _short_error(exc)
    report.error = f"{error}: {reason}"
    report.findings.append(Finding(Level.CRITICAL, f"{message}: {reason}.", fix, str(exc)[:1000]))
    return report


def _inspect(
    client: docker.DockerClient,
    report: SwarmReport,
    service_name: str,
    nfs_path: Path,
    registry_config: dict | None,
    kept_dir: Path | None = None,
) -> None:
    info = client.api.info()
    report.manager, report.local_node_state, findings = manager_findings(info, report.docker_host)
    report.findings += findings
    if not report.manager:
        return
    report.nodes = [node_info(node) for node in client.api.nodes()]
    report.nodes.sort(key=lambda n: (n.role != "manager", not n.leader, n.hostname))
    report.findings += node_findings(report.nodes)
    raw = find_service(client, service_name)
    if raw is None:
        report.findings.append(
            Finding(
                Level.CRITICAL,
                f"no service named {service_name}; run the setup job",
                "Run the setup job (Jobs page); if the registry runs under another name, set BERTH_SWARM_SERVICE.",
            )
        )
        return
    hostnames = {node.id: node.hostname for node in report.nodes}
    report.tasks = _tasks(client, raw["ID"], hostnames)
    network_ids = [n.get("Target", "") for n in raw.get("Spec", {}).get("TaskTemplate", {}).get("Networks") or []]
    report.service = service = service_info(raw, report.tasks, nfs_path, _network_names(client, network_ids))
    if registry_config is None:
        text = service_config_yaml(client, raw, kept_dir)
        if text is not None:
            try:
                parsed = yaml.safe_load(text)
                registry_config = parsed if isinstance(parsed, dict) else None
            except yaml.YAMLError:
                registry_config = None
    report.config_readable = registry_config is not None
    report.findings += replica_findings(service)
    failing = any(t.failed for t in report.tasks)
    logs = _last_log_lines(client, service.id) if failing else None
    report.findings += task_findings(service, report.tasks, datetime.now(UTC), logs)
    report.findings += update_findings(service)
    report.findings += mount_findings(service, nfs_path)
    report.findings += secret_findings(service, container_spec(raw), registry_config, report.nodes)
