"""The Swarm side of the registry: the engine, its nodes, the registry service and its tasks.

Everything goes through the docker SDK's low-level API (plain dicts) against the engine
at ``DOCKER_HOST`` (a Swarm manager). :func:`inspect_swarm` never raises for a problem of
the engine or the Swarm: an unreachable engine, a worker node, a missing service are
findings in the :class:`SwarmReport`, each with what to do about it.

Helpers shared with the jobs (setup, certificate rotation): :func:`docker_client`,
:func:`find_service`, :func:`service_config_yaml`.
"""

from __future__ import annotations

import base64
import binascii
import os
import posixpath
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import yaml

from berth.findings import Finding, Level, worst

#: Where the registry image reads its configuration unless the service says otherwise.
DEFAULT_CONFIG_PATH = "/etc/docker/registry/config.yml"
#: How many of the service's tasks a report shows (newest first).
MAX_TASKS = 20
#: Failed or rejected tasks in this window that make a restart loop.
RESTART_LOOP_COUNT = 3
RESTART_WINDOW = timedelta(minutes=15)
_FAILED_STATES = frozenset({"failed", "rejected", "orphaned"})
_FRACTION = re.compile(r"(\.\d{6})\d+")
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
    return docker.DockerClient.from_env(timeout=timeout, environment=environment)


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


def _parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 time with nanoseconds -> aware datetime (None if absent or odd)."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None


# --- what the report holds -------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """One Swarm node as the manager sees it."""

    id: str
    hostname: str
    role: str
    leader: bool
    availability: str
    state: str
    engine_version: str
    address: str
    reachability: str = ""
    message: str = ""

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class MountInfo:
    """A mount of the service's containers."""

    source: str
    target: str
    type: str
    read_only: bool
    on_nfs_path: bool

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class FileReference:
    """A Swarm secret or config given to the service, and where its file appears."""

    name: str
    id: str
    target: str
    mode: int | None = None

    def as_dict(self) -> dict:
        """JSON-ready; ``mode`` as an octal string (``"0400"``)."""
        return {**asdict(self), "mode": f"{self.mode:04o}" if self.mode is not None else None}


@dataclass(frozen=True)
class PortInfo:
    """A published port of the service."""

    published: int | None
    target: int | None
    protocol: str
    mode: str

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class UpdateInfo:
    """The service's last update (or rollback), as Swarm reports it."""

    state: str
    message: str
    started_at: str | None
    completed_at: str | None

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class ServiceInfo:
    """The registry service: what it runs and how many of it."""

    id: str
    name: str
    image: str
    mode: str
    replicas_desired: int | None
    replicas_running: int
    ports: list[PortInfo]
    mounts: list[MountInfo]
    secrets: list[FileReference]
    configs: list[FileReference]
    networks: list[str]
    update_status: UpdateInfo | None
    created_at: str | None
    updated_at: str | None
    args: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "mode": self.mode,
            "replicas_desired": self.replicas_desired,
            "replicas_running": self.replicas_running,
            "ports": [p.as_dict() for p in self.ports],
            "mounts": [m.as_dict() for m in self.mounts],
            "secrets": [s.as_dict() for s in self.secrets],
            "configs": [c.as_dict() for c in self.configs],
            "networks": list(self.networks),
            "update_status": self.update_status.as_dict() if self.update_status else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "args": list(self.args),
        }


@dataclass(frozen=True)
class TaskInfo:
    """One task of the service (a container on some node, present or past)."""

    id: str
    slot: int | None
    node_id: str
    node: str
    desired_state: str
    state: str
    message: str
    error: str
    exit_code: int | None
    created_at: str | None
    updated_at: str | None

    @property
    def failed(self) -> bool:
        """The task ended badly (failed, rejected or orphaned)."""
        return self.state in _FAILED_STATES

    def as_dict(self) -> dict:
        """JSON-ready."""
        return {**asdict(self), "failed": self.failed}


@dataclass
class SwarmReport:
    """What :func:`inspect_swarm` saw. ``ok`` when there is no error and no critical finding."""

    docker_host: str
    service_name: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    manager: bool = False
    local_node_state: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    service: ServiceInfo | None = None
    tasks: list[TaskInfo] = field(default_factory=list)
    config_readable: bool = False
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """No error and no critical finding."""
        return self.error is None and worst(self.findings) != Level.CRITICAL

    @property
    def level(self) -> Level:
        """The worst finding's level (critical when there is an error)."""
        return Level.CRITICAL if self.error else worst(self.findings)

    def as_dict(self) -> dict:
        """JSON-ready, in the shape of the ``/api/v1/status`` parts: ok, error, findings, details."""
        return {
            "ok": self.ok,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "details": {
                "docker_host": self.docker_host,
                "service_name": self.service_name,
                "manager": self.manager,
                "local_node_state": self.local_node_state,
                "nodes": [n.as_dict() for n in self.nodes],
                "service": self.service.as_dict() if self.service else None,
                "tasks": [t.as_dict() for t in self.tasks],
                "config_readable": self.config_readable,
            },
            "checked_at": self.checked_at.isoformat(),
        }


# --- reading the Swarm -----------------------------------------------------------------


def find_service(client: docker.DockerClient, name: str) -> dict | None:
    """The service named exactly ``name`` (inspect dict with ``ServiceStatus``), or None.

    The engine's ``name`` filter matches prefixes; only the exact name counts here.
    """
    for service in client.api.services(filters={"name": name}, status=True):
        if service.get("Spec", {}).get("Name") == name:
            return service
    return None


def _container_spec(service: Any) -> dict:
    attrs = getattr(service, "attrs", service) or {}
    return attrs.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})


def registry_config_path(service: Any) -> str:
    """The path the service's registry reads its ``config.yml`` from (``serve PATH``)."""
    spec = _container_spec(service)
    args = list(spec.get("Args") or [])
    command = list(spec.get("Command") or [])
    words = command + args
    if "serve" in words:
        following = words[words.index("serve") + 1 :]
        if following:
            return following[0]
    return DEFAULT_CONFIG_PATH


def service_config_yaml(client: docker.DockerClient, service: Any) -> str | None:
    """The registry ``config.yml`` the service runs with, read from its Swarm config.

    ``service`` is an inspect dict or a docker SDK ``Service``. Returns None when the
    configuration does not come from a Swarm config (baked into the image, a bind mount)
    or cannot be read. Secrets are never read: Swarm does not give their data back.
    """
    path = registry_config_path(service)
    references = _container_spec(service).get("Configs") or []
    chosen = [r for r in references if (r.get("File") or {}).get("Name") == path]
    if not chosen:
        chosen = [r for r in references if str((r.get("File") or {}).get("Name", "")).endswith(("config.yml", ".yaml"))]
    for reference in chosen:
        try:
            data = client.api.inspect_config(reference["ConfigID"])["Spec"]["Data"]
            return base64.b64decode(data).decode()
        except (docker.errors.DockerException, requests.RequestException, KeyError, binascii.Error, ValueError):
            continue
    return None


def _env_has(spec: dict, name: str) -> bool:
    return any(str(item).split("=", 1)[0] == name for item in spec.get("Env") or [])


def _node_info(node: dict) -> NodeInfo:
    spec, description = node.get("Spec", {}), node.get("Description", {})
    status, manager = node.get("Status", {}), node.get("ManagerStatus") or {}
    return NodeInfo(
        id=node.get("ID", ""),
        hostname=description.get("Hostname", ""),
        role=spec.get("Role", ""),
        leader=bool(manager.get("Leader")),
        availability=spec.get("Availability", ""),
        state=status.get("State", ""),
        engine_version=description.get("Engine", {}).get("EngineVersion", ""),
        address=manager.get("Addr") or status.get("Addr", ""),
        reachability=manager.get("Reachability", ""),
        message=status.get("Message", ""),
    )


def _is_under(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _service_info(
    service: dict, tasks: list[TaskInfo], nfs_path: Path, network_names: dict[str, str] | None = None
) -> ServiceInfo:
    spec = service.get("Spec", {})
    container = _container_spec(service)
    mode_spec = spec.get("Mode", {})
    status = service.get("ServiceStatus") or {}
    if "Replicated" in mode_spec:
        mode = "replicated"
        desired: int | None = int(mode_spec["Replicated"].get("Replicas", 1))
    elif "Global" in mode_spec:
        mode = "global"
        desired = status.get("DesiredTasks")
    else:
        mode = next(iter(mode_spec), "unknown").lower()
        desired = status.get("DesiredTasks")
    if status:
        running = int(status.get("RunningTasks", 0))
    else:
        running = sum(1 for t in tasks if t.state == "running" and t.desired_state == "running")
    ports_spec = (service.get("Endpoint") or {}).get("Ports") or (spec.get("EndpointSpec") or {}).get("Ports") or []
    ports = [
        PortInfo(p.get("PublishedPort"), p.get("TargetPort"), p.get("Protocol", "tcp"), p.get("PublishMode", "ingress"))
        for p in ports_spec
    ]
    mounts = [
        MountInfo(
            source=str(m.get("Source", "")),
            target=str(m.get("Target", "")),
            type=str(m.get("Type", "volume")),
            read_only=bool(m.get("ReadOnly")),
            on_nfs_path=m.get("Type", "volume") == "bind" and _is_under(str(m.get("Source", "")), str(nfs_path)),
        )
        for m in container.get("Mounts") or []
    ]

    def refs(items: list[dict], id_key: str, name_key: str) -> list[FileReference]:
        return [
            FileReference(
                name=item.get(name_key, ""),
                id=item.get(id_key, ""),
                target=(item.get("File") or {}).get("Name", ""),
                mode=(item.get("File") or {}).get("Mode"),
            )
            for item in items or []
        ]

    update = service.get("UpdateStatus")
    return ServiceInfo(
        id=service.get("ID", ""),
        name=spec.get("Name", ""),
        image=str(container.get("Image", "")).split("@sha256:", 1)[0],
        mode=mode,
        replicas_desired=desired,
        replicas_running=running,
        ports=ports,
        mounts=mounts,
        secrets=refs(container.get("Secrets"), "SecretID", "SecretName"),
        configs=refs(container.get("Configs"), "ConfigID", "ConfigName"),
        networks=[
            (network_names or {}).get(n.get("Target", ""), n.get("Target", ""))
            for n in spec.get("TaskTemplate", {}).get("Networks") or []
        ],
        update_status=UpdateInfo(
            state=update.get("State", ""),
            message=update.get("Message", ""),
            started_at=update.get("StartedAt"),
            completed_at=update.get("CompletedAt"),
        )
        if update
        else None,
        created_at=service.get("CreatedAt"),
        updated_at=service.get("UpdatedAt"),
        args=[str(a) for a in (container.get("Command") or []) + (container.get("Args") or [])],
    )


def _network_names(client: docker.DockerClient, ids: list[str]) -> dict[str, str]:
    """Network id -> name for ``ids`` (Swarm ids of local networks such as ``host`` need an inspect)."""
    names: dict[str, str] = {}
    for network_id in ids:
        try:
            names[network_id] = client.api.inspect_network(network_id).get("Name", network_id)
        except (docker.errors.DockerException, requests.RequestException):
            names[network_id] = network_id
    return names


def _task_info(task: dict, hostnames: dict[str, str]) -> TaskInfo:
    status = task.get("Status", {})
    node_id = task.get("NodeID", "")
    exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
    return TaskInfo(
        id=task.get("ID", ""),
        slot=task.get("Slot"),
        node_id=node_id,
        node=hostnames.get(node_id, node_id[:12]),
        desired_state=task.get("DesiredState", ""),
        state=status.get("State", ""),
        message=status.get("Message", ""),
        error=status.get("Err", ""),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        created_at=task.get("CreatedAt"),
        updated_at=status.get("Timestamp") or task.get("UpdatedAt"),
    )


def _tasks(client: docker.DockerClient, service_id: str, hostnames: dict[str, str]) -> list[TaskInfo]:
    raw = client.api.tasks(filters={"service": service_id})
    raw.sort(key=lambda t: (t.get("CreatedAt") or "", t.get("UpdatedAt") or ""), reverse=True)
    return [_task_info(task, hostnames) for task in raw[:MAX_TASKS]]


def _last_log_lines(client: docker.DockerClient, service_id: str, lines: int = 3) -> str:
    """The telling last lines of the service's log (errors, panics first), '' when none are kept."""
    try:
        chunks = client.api.service_logs(service_id, stdout=True, stderr=True, tail=60, follow=False)
        text = b"".join(chunks).decode(errors="replace")
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return ""
    seen: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if line and line not in seen[-8:]:
            seen.append(line)
    telling = [line for line in seen if _TELLING.search(line)]
    return "\n".join((telling or seen)[-lines:])[:2000]


# --- judging ---------------------------------------------------------------------------


def _manager_findings(info: dict, host: str) -> tuple[bool, str, list[Finding]]:
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive") or "inactive"
    control = bool(swarm.get("ControlAvailable"))
    name = info.get("Name", "this engine")
    if state == "active" and control:
        return True, state, [Finding(Level.OK, f"{name} is a Swarm manager.")]
    if state == "active":
        return (
            False,
            state,
            [
                Finding(
                    Level.CRITICAL,
                    f"The engine at {host} ({name}) is a Swarm worker, not a manager: services cannot be read from it.",
                    "Point DOCKER_HOST at a manager node (`docker node ls` on a manager lists them).",
                )
            ],
        )
    if state == "locked":
        return (
            False,
            state,
            [
                Finding(
                    Level.CRITICAL,
                    f"The Swarm on {host} is locked (autolock) since the engine restarted.",
                    "Unlock it on the manager with `docker swarm unlock` and the unlock key.",
                )
            ],
        )
    if state in ("pending", "error"):
        detail = swarm.get("Error", "")
        return (
            False,
            state,
            [
                Finding(
                    Level.CRITICAL,
                    f"The engine at {host} is in Swarm state {state!r}{': ' + detail if detail else ''}.",
                    "Check the engine's log; the node may be unable to reach the other managers.",
                    detail,
                )
            ],
        )
    return (
        False,
        state,
        [
            Finding(
                Level.CRITICAL,
                f"The engine at {host} is not part of a Swarm.",
                "Run `docker swarm init` on it (or `docker swarm join` to an existing Swarm), "
                "or point DOCKER_HOST at a Swarm manager.",
            )
        ],
    )


def _node_findings(nodes: list[NodeInfo]) -> list[Finding]:
    findings = []
    for node in nodes:
        label = f"Node {node.hostname or node.id[:12]} ({node.role})"
        if node.state != "ready":
            findings.append(
                Finding(
                    Level.WARNING,
                    f"{label} is {node.state or 'in an unknown state'}"
                    + (f": {node.message}" if node.message else "."),
                    "Check that its engine runs and reaches the managers; its tasks move to other nodes.",
                )
            )
        if node.availability in ("drain", "pause"):
            findings.append(
                Finding(
                    Level.WARNING,
                    f"{label} is set to {node.availability}: no new tasks are placed on it.",
                    "When its maintenance is over: "
                    f"`docker node update --availability active {node.hostname or node.id}`.",
                )
            )
        if node.role == "manager" and node.reachability and node.reachability != "reachable":
            findings.append(
                Finding(
                    Level.WARNING,
                    f"{label} is {node.reachability} as a manager.",
                    "A Swarm needs a majority of its managers: bring it back or demote and replace it.",
                )
            )
    return findings


def _replica_findings(service: ServiceInfo) -> list[Finding]:
    desired, running = service.replicas_desired, service.replicas_running
    if desired is None:
        return []
    if desired == 0:
        return [
            Finding(
                Level.CRITICAL,
                f"Service {service.name} is scaled to 0 replicas: the registry does not run.",
                f"`docker service scale {service.name}=1`, or run the setup job.",
            )
        ]
    if running == 0:
        return [
            Finding(
                Level.CRITICAL,
                f"Service {service.name} runs 0 of {desired} tasks: the registry is down.",
                "Look at the tasks below for the error; fix it and the Swarm restarts the task.",
            )
        ]
    if running < desired:
        return [
            Finding(
                Level.WARNING,
                f"Service {service.name} runs {running} of {desired} tasks.",
                "Look at the tasks below: a node may be down or a task may be failing.",
            )
        ]
    return [Finding(Level.OK, f"Service {service.name} runs {running}/{desired} tasks.")]


def _task_findings(service: ServiceInfo, tasks: list[TaskInfo], now: datetime, logs: str | None) -> list[Finding]:
    recent = []
    for task in tasks:
        when = _parse_time(task.updated_at) or _parse_time(task.created_at)
        if task.failed and (when is None or now - when <= RESTART_WINDOW):
            recent.append(task)
    if not recent:
        return []
    last = recent[0]
    error = last.error or last.message or "no error given"
    code = f" (exit code {last.exit_code})" if last.exit_code and "exit" not in error else ""
    minutes = int(RESTART_WINDOW.total_seconds() // 60)
    if len(recent) >= RESTART_LOOP_COUNT:
        return [
            Finding(
                Level.CRITICAL,
                f"Tasks of service {service.name} keep failing: {len(recent)} failed in the last {minutes} min; "
                f"last error: {error}{code}.",
                f"Read the task's log (`docker service logs {service.name}`), fix the cause (configuration, "
                "secrets, mounts), then update the service.",
                logs or "",
            )
        ]
    return [
        Finding(
            Level.WARNING,
            f"{len(recent)} task(s) of service {service.name} failed in the last {minutes} min; "
            f"last error: {error}{code}.",
            f"`docker service ps --no-trunc {service.name}` shows every attempt.",
            logs or "",
        )
    ]


def _update_findings(service: ServiceInfo) -> list[Finding]:
    update = service.update_status
    if update is None or update.state in ("", "completed"):
        return []
    message = f": {update.message}" if update.message else ""
    name = service.name
    if update.state == "updating":
        return [Finding(Level.INFO, f"Service {name} is being updated{message}.")]
    if update.state == "paused":
        return [
            Finding(
                Level.WARNING,
                f"The update of service {name} is paused{message}.",
                f"Fix the cause, then `docker service update {name}` to resume, or `--rollback` to go back.",
            )
        ]
    if update.state == "rollback_started":
        return [
            Finding(
                Level.WARNING,
                f"Service {name} is rolling back its last update{message}.",
                "Wait for the rollback; then look at why the update failed.",
            )
        ]
    if update.state == "rollback_paused":
        return [
            Finding(
                Level.CRITICAL,
                f"The rollback of service {name} is paused{message}.",
                "The service is half-way between versions: "
                f"fix the cause and `docker service update --rollback {name}`.",
            )
        ]
    if update.state == "rollback_completed":
        return [
            Finding(
                Level.WARNING,
                f"The last update of service {name} was rolled back{message}.",
                "The previous version serves; look at why the update failed before trying again.",
            )
        ]
    return [Finding(Level.INFO, f"Service {name}: update state {update.state}{message}.")]


def _mount_findings(service: ServiceInfo, nfs_path: Path) -> list[Finding]:
    findings = []
    for mount in service.mounts:
        if not mount.on_nfs_path:
            findings.append(
                Finding(
                    Level.WARNING,
                    f"Mount {mount.source or '(anonymous)'} -> {mount.target} ({mount.type}) is not from the NFS path "
                    f"{nfs_path}.",
                    "Registry data outside the NFS share stays on one node and is lost when the task moves: "
                    f"bind-mount {nfs_path} instead.",
                )
            )
    if not any(m.on_nfs_path for m in service.mounts):
        findings.append(
            Finding(
                Level.WARNING,
                f"Service {service.name} does not mount the NFS path {nfs_path}.",
                "Without it the registry keeps its images inside the container; run the setup job to mount it.",
            )
        )
    elif not findings:
        findings.append(Finding(Level.OK, f"The registry's storage is bind-mounted from {nfs_path}."))
    return findings


def _secret_findings(
    service: ServiceInfo, container: dict, registry_config: dict | None, nodes: list[NodeInfo]
) -> list[Finding]:
    replicas = service.replicas_desired or 0
    if service.mode == "global":
        replicas = max(replicas, sum(1 for n in nodes if n.availability == "active"))
    if replicas <= 1:
        return []
    if _env_has(container, "REGISTRY_HTTP_SECRET"):
        return [Finding(Level.OK, "The replicas share http.secret (REGISTRY_HTTP_SECRET).")]
    if registry_config is None:
        return [
            Finding(
                Level.WARNING,
                f"Service {service.name} runs {replicas} replicas and its config.yml cannot be read "
                "to check http.secret.",
                "Every replica needs the same http.secret, else pushes fail when they switch replicas.",
            )
        ]
    http = registry_config.get("http") if isinstance(registry_config, dict) else None
    secret = http.get("secret") if isinstance(http, dict) else None
    if not secret:
        return [
            Finding(
                Level.CRITICAL,
                f"Service {service.name} runs {replicas} replicas without a shared http.secret: "
                "uploads started on one replica fail on another (pushes break).",
                "Set the same http.secret in the registry config.yml (the setup job does) and update the service.",
            )
        ]
    return [Finding(Level.OK, f"The {replicas} replicas share http.secret.")]


def inspect_swarm(
    docker_host: str | None,
    service_name: str,
    nfs_path: Path,
    *,
    timeout: float = 5.0,
    registry_config: dict | None = None,
) -> SwarmReport:
    """Inspect the engine at ``docker_host``, its Swarm and the service ``service_name``.

    ``nfs_path`` is the registry root every node should mount from NFS; ``registry_config``
    is the parsed registry ``config.yml`` when Berth can read it (otherwise it is read
    from the service's Swarm config where possible). Each request waits at most ``timeout``
    seconds. Never raises for engine or Swarm problems: they become findings.
    """
    host = describe_host(docker_host)
    report = SwarmReport(docker_host=host, service_name=service_name)
    try:
        client = docker_client(docker_host, timeout)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        reason = _short_error(exc)
        report.error = f"Docker engine unreachable at {host}: {reason}"
        report.findings.append(
            Finding(
                Level.CRITICAL,
                f"Docker engine unreachable at {host}: {reason}.",
                "Check that dockerd runs on the Swarm manager and that DOCKER_HOST points at it "
                "(for tcp:// also DOCKER_TLS_VERIFY and DOCKER_CERT_PATH).",
                str(exc)[:1000],
            )
        )
        return report
    try:
        _inspect(client, report, service_name, Path(nfs_path), registry_config)
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        reason = _short_error(exc)
        report.error = f"Docker engine at {host} failed a request: {reason}"
        report.findings.append(
            Finding(
                Level.CRITICAL,
                f"The Docker engine at {host} stopped answering during the check: {reason}.",
                "Check the engine's load and log; a manager that is slow to answer may have lost quorum.",
                str(exc)[:1000],
            )
        )
    finally:
        client.close()
    return report


def _inspect(
    client: docker.DockerClient,
    report: SwarmReport,
    service_name: str,
    nfs_path: Path,
    registry_config: dict | None,
) -> None:
    info = client.api.info()
    report.manager, report.local_node_state, findings = _manager_findings(info, report.docker_host)
    report.findings += findings
    if not report.manager:
        return
    report.nodes = [_node_info(node) for node in client.api.nodes()]
    report.nodes.sort(key=lambda n: (n.role != "manager", not n.leader, n.hostname))
    report.findings += _node_findings(report.nodes)
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
    report.service = service = _service_info(raw, report.tasks, nfs_path, _network_names(client, network_ids))
    if registry_config is None:
        text = service_config_yaml(client, raw)
        if text is not None:
            try:
                parsed = yaml.safe_load(text)
                registry_config = parsed if isinstance(parsed, dict) else None
            except yaml.YAMLError:
                registry_config = None
    report.config_readable = registry_config is not None
    report.findings += _replica_findings(service)
    failing = any(t.failed for t in report.tasks)
    logs = _last_log_lines(client, service.id) if failing else None
    report.findings += _task_findings(service, report.tasks, datetime.now(UTC), logs)
    report.findings += _update_findings(service)
    report.findings += _mount_findings(service, nfs_path)
    report.findings += _secret_findings(service, _container_spec(raw), registry_config, report.nodes)
