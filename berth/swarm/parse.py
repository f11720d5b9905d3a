"""The engine's inspect dicts (nodes, the service, its tasks) -> the dataclasses of :mod:`berth.swarm.model`."""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from berth.swarm.model import FileReference, MountInfo, NodeInfo, PortInfo, ServiceInfo, TaskInfo, UpdateInfo

_FRACTION = re.compile(r"(\.\d{6})\d+")


def container_spec(service: Any) -> dict:
    """The ``ContainerSpec`` of a service (inspect dict or docker SDK ``Service``); {} when absent."""
    attrs = getattr(service, "attrs", service) or {}
    return attrs.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})


def node_info(node: dict) -> NodeInfo:
    """A node's inspect dict -> :class:`NodeInfo`."""
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


def service_info(
    service: dict, tasks: list[TaskInfo], nfs_path: Path, network_names: dict[str, str] | None = None
) -> ServiceInfo:
    """The service's inspect dict -> :class:`ServiceInfo` (mounts judged against ``nfs_path``)."""
    spec = service.get("Spec", {})
    container = container_spec(service)
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

    def refs(items: list[dict] | None, id_key: str, name_key: str) -> list[FileReference]:
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


def task_info(task: dict, hostnames: dict[str, str]) -> TaskInfo:
    """A task's inspect dict -> :class:`TaskInfo` (its node named through ``hostnames``)."""
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


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 time with nanoseconds -> aware datetime (None if absent or odd)."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value).replace("Z", "+00:00"))
    except ValueError:
        return None
