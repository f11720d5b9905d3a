"""Deploying the registry as a Swarm service: versioned configs and secrets, the service spec, convergence.

Swarm configs and secrets are immutable: a change is a new object under a new versioned
name (``SERVICE-config-HASH``, ``SERVICE-crt-FINGERPRINT``) swapped in at the same target
path. The service spec is built from the current spec (what Berth does not own, such as
resources, env or extra secrets, is kept) and sent whole, with the version read just
before, through the docker SDK's low-level API. The update and rollback policy is always
explicit: the SDK's defaults (all tasks at once, ``continue`` on failure) are not the
engine's. :func:`wait_converged` (from :mod:`berth.swarm.converge`) waits the way
``docker service update`` does.
"""

from __future__ import annotations

import copy

import docker

from berth.config import Settings
from berth.errors import NotFound
from berth.registry.config import DRAIN_SECONDS, registry_port
from berth.swarm.converge import (  # noqa: F401  (part of this module's interface)
    MONITOR_SECONDS,
    RESTORE_MIN_SECONDS,
    now_utc,
    wait_converged,
)
from berth.swarm.noderules import STORAGE_CONSTRAINT

LABEL = "berth.managed"
NANO = 1_000_000_000
RESTART_DELAY_SECONDS = 5


def versioned_name(service: str, kind: str, digest: str) -> str:
    """``SERVICE-KIND-xxxxxxxxxxxx``: a Swarm object name that changes with its content."""
    return f"{service}-{kind}-{digest.replace(':', '').lower()[:12]}"


# --- configs and secrets -------------------------------------------------------------------


def find_object(client: docker.DockerClient, kind: str, name: str) -> dict | None:
    """The secret (``kind="secret"``) or config named exactly ``name``, or None."""
    listing = client.api.secrets if kind == "secret" else client.api.configs
    return next((o for o in listing(filters={"name": name}) if o["Spec"]["Name"] == name), None)


def object_id(client: docker.DockerClient, kind: str, name: str) -> str:
    """The id of the existing secret or config ``name``; NotFound if it is not there."""
    found = find_object(client, kind, name)
    if found is None:
        raise NotFound(f"There is no {kind} {name} in Swarm.")
    return found["ID"]


def ensure_object(client: docker.DockerClient, kind: str, name: str, data: bytes, role: str) -> tuple[str, bool]:
    """The id of the secret or config ``name`` (created with ``data`` if missing) and whether it was created."""
    found = find_object(client, kind, name)
    if found is not None:
        return found["ID"], False
    create = client.api.create_secret if kind == "secret" else client.api.create_config
    return create(name=name, data=data, labels={LABEL: role})["ID"], True


def remove_secret(client: docker.DockerClient, name: str) -> str | None:
    """Remove the secret ``name``; None when done (or already gone), else why not."""
    return remove_object(client, "secret", name)


def remove_object(client: docker.DockerClient, kind: str, name: str) -> str | None:
    """Remove the secret or config ``name``; None when done (or already gone), else why not."""
    found = find_object(client, kind, name)
    if found is None:
        return None
    try:
        (client.api.remove_secret if kind == "secret" else client.api.remove_config)(found["ID"])
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    return None


def reference(kind: str, object_id: str, name: str, target: str, mode: int, like: dict | None = None) -> dict:
    """A secret or config reference at ``target`` (owner taken from ``like``, the one it replaces)."""
    file = {"Name": target, "UID": "0", "GID": "0", "Mode": mode}
    if like:
        file.update({k: like["File"][k] for k in ("UID", "GID") if k in like.get("File", {})})
    prefix = "Secret" if kind == "secret" else "Config"
    return {"File": file, f"{prefix}ID": object_id, f"{prefix}Name": name}


def references(spec: dict, kind: str) -> dict[str, dict]:
    """The service's secret (or config) references by target path."""
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    items = container.get("Secrets" if kind == "secret" else "Configs") or []
    return {item.get("File", {}).get("Name", ""): item for item in items}


def with_references(spec: dict, kind: str, new: list[dict]) -> dict:
    """A copy of ``spec`` whose references at the targets of ``new`` are replaced by ``new``.

    The list is sent whole: references at other targets are kept as they are.
    """
    result = copy.deepcopy(spec)
    container = result.setdefault("TaskTemplate", {}).setdefault("ContainerSpec", {})
    key = "Secrets" if kind == "secret" else "Configs"
    targets = {ref["File"]["Name"] for ref in new}
    container[key] = [r for r in container.get(key) or [] if r.get("File", {}).get("Name") not in targets] + new
    return result


# --- the service spec ------------------------------------------------------------------------


def desired_spec(current: dict | None, settings: Settings, secret_refs: list[dict]) -> dict:
    """The spec Berth wants, built on ``current`` (the service's spec, or None for a new one).

    A Swarm config at the target of one of ``secret_refs`` (the config.yml before it moved
    into a secret) is dropped from the spec.
    """
    spec = copy.deepcopy(current) if current else {"Mode": {"Replicated": {"Replicas": 1}}}
    spec["Name"] = settings.swarm_service
    spec["Labels"] = {**(spec.get("Labels") or {}), LABEL: "registry"}
    spec = with_references(spec, "secret", secret_refs)
    targets = {ref["File"]["Name"] for ref in secret_refs}
    container = spec["TaskTemplate"]["ContainerSpec"]
    configs = [r for r in container.get("Configs") or [] if r.get("File", {}).get("Name") not in targets]
    if configs or "Configs" in container:
        container["Configs"] = configs
    template = spec["TaskTemplate"]
    container = template["ContainerSpec"]
    container["Image"] = settings.registry_image
    nfs = str(settings.nfs_path)
    mounts = [m for m in container.get("Mounts") or [] if m.get("Target") != nfs]
    container["Mounts"] = [*mounts, {"Type": "bind", "Source": nfs, "Target": nfs}]
    container["StopGracePeriod"] = (DRAIN_SECONDS + 5) * NANO  # let the registry drain before SIGKILL
    template["RestartPolicy"] = {"Condition": "on-failure", "Delay": RESTART_DELAY_SECONDS * NANO, "MaxAttempts": 0}
    # Never on a node whose storage check failed (berth.swarm.nodecheck labels it).
    placement = template.setdefault("Placement", {})
    kept = settings.swarm_placement or [c for c in placement.get("Constraints") or [] if c != STORAGE_CONSTRAINT]
    placement["Constraints"] = [*kept, STORAGE_CONSTRAINT]
    _spread(spec, settings.registry_replicas)
    port = registry_port(settings)
    if settings.swarm_host_network:
        template["Networks"] = [{"Target": "host"}]
        spec["EndpointSpec"] = {"Mode": "dnsrr"}
        order = "stop-first"  # the port is the node's: a second task could not bind it
    else:
        template["Networks"] = [n for n in template.get("Networks") or [] if n.get("Target") != "host"] or None
        if template["Networks"] is None:
            del template["Networks"]
        published = {"Protocol": "tcp", "TargetPort": port, "PublishedPort": port, "PublishMode": "ingress"}
        spec["EndpointSpec"] = {"Mode": "vip", "Ports": [published]}
        order = "start-first"
    policy = {"Parallelism": 1, "Monitor": MONITOR_SECONDS * NANO, "MaxFailureRatio": 0, "Order": order}
    spec["UpdateConfig"] = {**policy, "FailureAction": "rollback"}
    spec["RollbackConfig"] = {**policy, "FailureAction": "pause"}
    return spec


def replica_count(spec: dict) -> int:
    """The replicas a replicated spec asks for (1 for any other mode)."""
    return int((spec.get("Mode") or {}).get("Replicated", {}).get("Replicas", 1))


def _spread(spec: dict, replicas: int | None) -> None:
    """Set the replica count (None keeps it); two or more run at most one per node.

    One per node: on the host network each replica binds its node's port, and a node that
    fails takes only one replica with it.
    """
    if replicas is not None:
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    placement = spec["TaskTemplate"].setdefault("Placement", {})
    if replica_count(spec) > 1:
        placement["MaxReplicas"] = 1


def _owned(client: docker.DockerClient, spec: dict, settings: Settings) -> dict[str, object]:
    """The parts of a spec Berth sets, normalised for comparison."""
    template = spec.get("TaskTemplate", {})
    container = template.get("ContainerSpec", {})
    networks = []
    for network in template.get("Networks") or spec.get("Networks") or []:
        try:
            networks.append(client.api.inspect_network(network["Target"])["Name"])
        except docker.errors.DockerException:
            networks.append(network["Target"])

    def policy(config: dict | None) -> tuple:
        config = config or {}
        keys = ("Parallelism", "FailureAction", "Monitor", "MaxFailureRatio", "Order")
        return tuple(config.get(k) or 0 for k in keys)

    def refs(kind: str) -> list[tuple]:
        return sorted(
            (t, r.get(f"{kind}Name"), r["File"].get("Mode")) for t, r in references(spec, kind.lower()).items()
        )

    return {
        "image": str(container.get("Image", "")).split("@", 1)[0],
        "config": refs("Config"),
        "secrets": refs("Secret"),
        "storage mount": [m for m in container.get("Mounts") or [] if m.get("Target") == str(settings.nfs_path)],
        "stop grace period": container.get("StopGracePeriod"),
        "restart policy": {k: (template.get("RestartPolicy") or {}).get(k) for k in ("Condition", "Delay")},
        "placement": (template.get("Placement") or {}).get("Constraints"),
        "replicas": replica_count(spec) if settings.registry_replicas else None,
        "replicas per node": (template.get("Placement") or {}).get("MaxReplicas") if replica_count(spec) > 1 else None,
        "networks": sorted(networks),
        "ports": [
            (p.get("TargetPort"), p.get("PublishedPort"), p.get("PublishMode", "ingress"))
            for p in (spec.get("EndpointSpec") or {}).get("Ports") or []
        ],
        "update policy": policy(spec.get("UpdateConfig")),
        "rollback policy": policy(spec.get("RollbackConfig")),
        "label": (spec.get("Labels") or {}).get(LABEL),
    }


def differences(client: docker.DockerClient, current: dict, desired: dict, settings: Settings) -> list[str]:
    """What Berth would change in the service: names of the differing parts (empty: nothing)."""
    have, want = _owned(client, current, settings), _owned(client, desired, settings)
    return [key for key in want if have.get(key) != want[key]]


def apply_spec(client: docker.DockerClient, service_id: str | None, spec: dict) -> str:
    """Create the service (``service_id`` None) or update it to ``spec``; return its id.

    The update carries the version read just now; the spec is sent whole (no merging).
    """
    fields = {
        "name": spec["Name"],
        "labels": spec.get("Labels"),
        "mode": spec.get("Mode"),
        "update_config": spec.get("UpdateConfig"),
        "rollback_config": spec.get("RollbackConfig"),
        "endpoint_spec": spec.get("EndpointSpec"),
    }
    if service_id is None:
        return client.api.create_service(spec["TaskTemplate"], **fields)["ID"]
    version = client.api.inspect_service(service_id)["Version"]["Index"]
    client.api.update_service(service_id, version, task_template=spec["TaskTemplate"], **fields)
    return service_id


def restore_replicas(spec: dict) -> list[str]:
    """Scale a replicated service found at 0 back to 1 (else setup would wait at "0/0"); what changed."""
    replicated = (spec.get("Mode") or {}).get("Replicated")
    if replicated is None or replicated.get("Replicas") != 0:
        return []
    replicated["Replicas"] = 1
    return ["replicas 0 → 1"]
