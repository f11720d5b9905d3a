"""Rules over what a Swarm inspection saw: the engine's role, nodes, replicas, tasks, updates, mounts, secrets.

Pure functions from the model (:mod:`berth.swarm.model`) to findings, each saying what to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from berth.findings import Finding, Level
from berth.swarm.model import NodeInfo, ServiceInfo, TaskInfo
from berth.swarm.parse import parse_time

#: Failed or rejected tasks in this window that make a restart loop.
RESTART_LOOP_COUNT = 3

RESTART_WINDOW = timedelta(minutes=15)


def _env_has(spec: dict, name: str) -> bool:
    return any(str(item).split("=", 1)[0] == name for item in spec.get("Env") or [])


def manager_findings(info: dict, host: str) -> tuple[bool, str, list[Finding]]:
    """Whether the engine is a Swarm manager: (manager, local node state, findings)."""
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState", "inactive") or "inactive"
    name = info.get("Name", "this engine")
    if state == "active" and swarm.get("ControlAvailable"):
        return True, state, [Finding(Level.OK, f"{name} is a Swarm manager.")]
    return False, state, [_not_manager_finding(state, host, name, swarm.get("Error", ""))]


def _not_manager_finding(state: str, host: str, name: str, detail: str) -> Finding:
    """Why the engine cannot serve as the Swarm manager Berth reads services from, and what to do."""
    if state == "active":
        return Finding(
            Level.CRITICAL,
            f"The engine at {host} ({name}) is a Swarm worker, not a manager: services cannot be read from it.",
            "Point DOCKER_HOST at a manager node (`docker node ls` on a manager lists them).",
        )
    if state == "locked":
        return Finding(
            Level.CRITICAL,
            f"The Swarm on {host} is locked (autolock) since the engine restarted.",
            "Unlock it on the manager with `docker swarm unlock` and the unlock key.",
        )
    if state in ("pending", "error"):
        return Finding(
            Level.CRITICAL,
            f"The engine at {host} is in Swarm state {state!r}{': ' + detail if detail else ''}.",
            "Check the engine's log; the node may be unable to reach the other managers.",
            detail,
        )
    return Finding(
        Level.CRITICAL,
        f"The engine at {host} is not part of a Swarm.",
        "Run `docker swarm init` on it (or `docker swarm join` to an existing Swarm), "
        "or point DOCKER_HOST at a Swarm manager.",
    )


def node_findings(nodes: list[NodeInfo]) -> list[Finding]:
    """Nodes that are down, drained or paused, and managers that are unreachable."""
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


def replica_findings(service: ServiceInfo) -> list[Finding]:
    """How many of the service's desired tasks run."""
    desired, running = service.replicas_desired, service.replicas_running
    if desired is None:
        return []
    if desired == 0:
        return [
            Finding(
                Level.CRITICAL,
                f"Service {service.name} is scaled to 0 replicas: the registry does not run.",
                f"`docker service scale {service.name}=1`",
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


def task_findings(service: ServiceInfo, tasks: list[TaskInfo], now: datetime, logs: str | None) -> list[Finding]:
    """Tasks that failed within the restart window: a warning, or critical for a restart loop."""
    recent = []
    for task in tasks:
        when = parse_time(task.updated_at) or parse_time(task.created_at)
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


def update_findings(service: ServiceInfo) -> list[Finding]:
    """What the service's last update (or rollback) state means."""
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


def mount_findings(service: ServiceInfo, nfs_path: Path) -> list[Finding]:
    """Mounts that are not from the NFS path, or no mount of it at all."""
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


def secret_findings(
    service: ServiceInfo, container: dict, registry_config: dict | None, nodes: list[NodeInfo]
) -> list[Finding]:
    """Whether several replicas share ``http.secret`` (pushes break otherwise)."""
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
