"""Checks on every Swarm node, through a ``global-job`` service that runs one probe task per node.

A node's mount table and ``/etc/docker/certs.d`` can only be read on that node, and Berth
runs on one. So Berth creates a Swarm service in mode ``global-job`` (one task on each
node, run to completion) of ``BERTH_NODE_CHECK_IMAGE`` running :mod:`berth.swarm.node_probe`
with the storage path bind-mounted read-only and the node's certs.d bind-mounted; each task
prints one JSON line, read back from the service's logs, then the service is removed.
The same job, given a PEM bundle, writes it as the node's ``ca.crt`` first (distribute-ca).

:func:`apply_storage_labels` labels a node whose storage is critical
``berth.registry.storage=bad`` (the registry service is constrained away from it, see
:data:`berth.swarm.noderules.STORAGE_CONSTRAINT`) and lifts the label when it passes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import docker
import requests
from docker.types import ContainerSpec, Mount, RestartPolicy, ServiceMode, TaskTemplate

from berth.config import Settings
from berth.errors import BerthError, JobFailed
from berth.swarm import noderules
from berth.swarm.inspect import docker_client
from berth.swarm.noderules import NodeReport

log = logging.getLogger(__name__)
PROBE_SOURCE = (Path(__file__).parent / "node_probe.py").read_text()
CERTS_D = "/etc/docker/certs.d"
IN_TASK_CERTS_D = "/berth/certs.d"
LABEL = "berth.managed"
#: Repository names passed to each probe (the first ones of the catalog, sorted).
MAX_REPOSITORIES = 50
_TERMINAL = {"complete", "failed", "rejected", "shutdown", "orphaned"}

__all__ = ["check_nodes", "apply_storage_labels", "run_probes"]


def _spec(settings: Settings, repositories: list[str], write_ca: str | None) -> TaskTemplate:
    env = {
        "BERTH_PROBE_NODE": "{{.Node.Hostname}}",
        "BERTH_PROBE_PATH": str(settings.nfs_path),
        "BERTH_PROBE_REPOS": json.dumps(sorted(repositories)[:MAX_REPOSITORIES]),
        "BERTH_PROBE_CA_DIR": f"{IN_TASK_CERTS_D}/{settings.registry_host}",
    }
    if write_ca:
        env["BERTH_PROBE_WRITE_CA"] = write_ca
    mounts = [
        Mount(str(settings.nfs_path), str(settings.nfs_path), type="bind", read_only=True),
        Mount(IN_TASK_CERTS_D, CERTS_D, type="bind", read_only=not write_ca),
    ]
    container = ContainerSpec(settings.node_check_image, ["python3", "-I", "-S", "-c", PROBE_SOURCE],
                              env=[f"{k}={v}" for k, v in env.items()], mounts=mounts)  # fmt: skip
    return TaskTemplate(container, restart_policy=RestartPolicy(condition="none"))


def _wait_done(client: docker.DockerClient, service_id: str, nodes: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = client.api.tasks(filters={"service": service_id})
        if len(tasks) >= nodes and all(t["Status"]["State"] in _TERMINAL for t in tasks):
            return tasks
        if time.monotonic() > deadline:
            states = sorted(t["Status"]["State"] for t in tasks)
            raise JobFailed(f"The node checks did not finish within {timeout:g} s ({len(tasks)} tasks: {states}).")
        time.sleep(0.3)


def run_probes(client: docker.DockerClient, settings: Settings, repositories: list[str],
               write_ca: str | None = None, timeout: float = 90.0) -> list[dict]:  # fmt: skip
    """Run the probe once on every ready node; return each node's JSON (a failed task: its error)."""
    nodes = [n for n in client.api.nodes() if n["Status"]["State"] == "ready" and n["Spec"]["Availability"] == "active"]
    name = f"berth-node-check-{int(time.time() * 1000) % 10**9}"
    created = client.api.create_service(_spec(settings, repositories, write_ca), name=name,
                                        mode=ServiceMode("global-job"), labels={LABEL: "node-check"})  # fmt: skip
    try:
        tasks = _wait_done(client, created["ID"], len(nodes), timeout)
        raw = b"".join(client.api.service_logs(created["ID"], stdout=True, stderr=True, follow=False))
    finally:
        client.api.remove_service(created["ID"])
    found: dict[str, dict] = {}
    for line in raw.decode(errors="replace").splitlines():
        start = line.find("{")
        try:
            item = json.loads(line[start:]) if start >= 0 else None
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("berth_probe") == 1:
            found[str(item.get("node"))] = item
    names = {n["ID"]: n["Description"]["Hostname"] for n in nodes}
    for task in tasks:  # a node whose task failed still gets an entry
        host = names.get(task.get("NodeID"), str(task.get("NodeID")))
        if host not in found:
            error = task["Status"].get("Err") or task["Status"]["State"]
            found[host] = {"node": host, "storage": {"error": error}, "ca": {"error": error}}
    return [found[k] for k in sorted(found)]


def check_nodes(client: docker.DockerClient, settings: Settings, repositories: list[str], wanted_ca: list[str],
                write_ca: str | None = None) -> list[NodeReport]:  # fmt: skip
    """Every node's report: storage and CA, with its current labels."""
    labels = {n["Description"]["Hostname"]: n["Spec"].get("Labels") or {} for n in client.api.nodes()}
    seen = run_probes(client, settings, repositories, write_ca)
    return [noderules.judge(item, wanted_ca, labels.get(item["node"], {})) for item in seen]


def node_status(settings: Settings, repositories: list[str]) -> dict:
    """The health row of the node checks: ``{"nodes": [...]}``, labels applied; no nodes when single-node."""
    from berth.jobs.distribute import trust_bundle

    try:
        client = docker_client(settings.docker_host, timeout=30)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        return {"nodes": None, "error": f"No Docker engine answers: {type(exc).__name__}"}
    try:
        if len(client.api.nodes()) < 2:
            return {"nodes": None}
        wanted = trust_bundle(settings)[1] if (settings.ca_dir / "ca.crt").is_file() else []
        reports = check_nodes(client, settings, repositories, wanted)
        for change in apply_storage_labels(client, reports):
            log.warning("node check: %s", change)
        return {"nodes": [r.as_dict() for r in reports]}
    except (BerthError, docker.errors.DockerException, requests.RequestException) as exc:
        return {"nodes": None, "error": str(exc)[:300]}
    finally:
        client.close()


def apply_storage_labels(client: docker.DockerClient, reports: list[NodeReport]) -> list[str]:
    """Label nodes with bad storage, lift the label from nodes that pass; say what changed."""
    by_name = {n["Description"]["Hostname"]: n for n in client.api.nodes()}
    changes = []
    for report in reports:
        node = by_name.get(report.node)
        if node is None:
            continue
        spec = node["Spec"]
        labels = dict(spec.get("Labels") or {})
        wanted = noderules.storage_label(report)
        if labels.get(noderules.STORAGE_LABEL) == wanted:
            continue
        if wanted is None:
            labels.pop(noderules.STORAGE_LABEL, None)
            changes.append(f"{report.node}: storage passes, label {noderules.STORAGE_LABEL} lifted")
        else:
            labels[noderules.STORAGE_LABEL] = wanted
            changes.append(f"{report.node}: labelled {noderules.STORAGE_LABEL}={wanted}, the registry moves off it")
        client.api.update_node(node["ID"], node["Version"]["Index"], {**spec, "Labels": labels})
        report.labels.clear()
        report.labels.update(labels)
    return changes
