"""What a Swarm inspection holds: nodes, the registry service, its tasks, and the report.

Plain dataclasses, each with ``as_dict`` for the JSON of ``/api/v1/status``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from berth.report import ComponentReport

_FAILED_STATES = frozenset({"failed", "rejected", "orphaned"})


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


@dataclass(kw_only=True)
class SwarmReport(ComponentReport):
    """What :func:`inspect_swarm` saw. ``ok`` when there is no error and no critical finding."""

    docker_host: str
    service_name: str
    manager: bool = False
    local_node_state: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    service: ServiceInfo | None = None
    tasks: list[TaskInfo] = field(default_factory=list)
    config_readable: bool = False

    def detail_dict(self) -> dict:
        """The engine, its nodes, the service and its tasks."""
        return {
            "docker_host": self.docker_host,
            "service_name": self.service_name,
            "manager": self.manager,
            "local_node_state": self.local_node_state,
            "nodes": [n.as_dict() for n in self.nodes],
            "service": self.service.as_dict() if self.service else None,
            "tasks": [t.as_dict() for t in self.tasks],
            "config_readable": self.config_readable,
        }
