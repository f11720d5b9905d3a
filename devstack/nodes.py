"""A multi-node Swarm on one machine: ``python -m devstack up --nodes N``.

Each node is a ``dockerd`` in namespaces of its own, started as
``nsenter --net=NETNS unshare --mount --uts --propagation private sh -c '...' dockerd ...``:

- its **network** namespace from :mod:`devstack.netns` (an address on the stack's bridge);
  ``nsenter --net`` and not ``ip netns exec``, which remounts ``/sys`` and leaves dockerd
  without its cgroups ("Devices cgroup isn't mounted");
- its **UTS** namespace, so its hostname (and Swarm node name) is ``node1``, ``node2``...;
- its **mount** namespace, private, where ``/etc/docker/certs.d`` is the node's own
  directory (``DIR/nodes/NODE/certs.d``) and the registry storage path (the "NFS" path,
  ``DIR/registry/data``) is a bind of the one shared directory, so per-node differences
  are real: :func:`set_storage` can put an empty local directory over it on one node,
  which is what a node that booted before the NFS server answered (fstab ``bg``) has.

``node1`` inits the Swarm on its address and is the manager (``DOCKER_HOST``); the others
join as workers. The registry image and a python3 image for the per-node checks
(:mod:`devstack.checkimage`) are imported on every node. The registry service runs
on the host network of its nodes (at most one replica per node, ``http.addr :PORT``) and
:mod:`devstack.balancer` listens on loopback at the same port, in front of every node.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import yaml

from devstack import balancer, checkimage, netns, procs, swarm
from devstack.ports import LOOPBACK, free_port

CERTS_D = Path("/etc/docker/certs.d")
SWARM_PORT = 2377
#: Run inside the node's new mount and UTS namespaces, then exec dockerd ("$@").
_NODE_SHELL = 'set -e; mount --bind "$1" /etc/docker/certs.d; mount --bind "$2" "$2"; hostname "$3"; shift 3; exec "$@"'


def node_root(state_root: Path, name: str) -> Path:
    """The directory of node ``name``: its engine, its certs.d, its local storage."""
    return state_root / "nodes" / name


def net_record(state_root: Path) -> Path:
    """Where the network's names are recorded."""
    return state_root / "nodes" / "net.json"


def wrapper(node: netns.NodeNet, root: Path, storage: Path) -> list[str]:
    """The command that puts ``dockerd`` (appended) in the node's namespaces and mounts."""
    return ["nsenter", f"--net={node.netns_path}", "unshare", "--mount", "--uts", "--propagation", "private",
            "/bin/sh", "-c", _NODE_SHELL, "node-wrapper", str(root / "certs.d"), str(storage), node.name]  # fmt: skip


def start_node(state_root: Path, node: netns.NodeNet, storage: Path) -> docker.DockerClient:
    """Start the engine of ``node`` in its namespaces; return a client of it."""
    root = node_root(state_root, node.name)
    for directory in (root / "certs.d", root / "local-storage"):
        directory.mkdir(parents=True, exist_ok=True)
    return swarm.start_engine(swarm.engine_paths(root), wrapper=wrapper(node, root, storage))


def form_swarm(clients: list[docker.DockerClient], network: netns.Network) -> None:
    """``swarm init`` on the first node (its address), ``swarm join`` of the others as workers."""
    first = network.nodes[0].address
    clients[0].swarm.init(advertise_addr=first, listen_addr=f"{first}:{SWARM_PORT}")
    token = clients[0].swarm.attrs["JoinTokens"]["Worker"]
    for client, node in zip(clients[1:], network.nodes[1:], strict=True):
        client.swarm.join(
            remote_addrs=[f"{first}:{SWARM_PORT}"],
            join_token=token,
            listen_addr=f"{node.address}:{SWARM_PORT}",
            advertise_addr=node.address,
        )
    deadline = time.monotonic() + 30
    while sum(n.attrs["Status"]["State"] == "ready" for n in clients[0].nodes.list()) < len(clients):
        if time.monotonic() > deadline:
            raise swarm.SwarmError("swarm", f"not every node became ready in 30 s ({len(clients)} expected)")
        time.sleep(0.2)


def trust_ca(state_root: Path, names: list[str], registry_host: str, ca_cert: Path) -> None:
    """Put the CA in each node's ``certs.d/HOST:PORT/ca.crt`` (what ``docker pull`` reads)."""
    for name in names:
        target = node_root(state_root, name) / "certs.d" / registry_host
        target.mkdir(parents=True, exist_ok=True)
        (target / "ca.crt").write_bytes(ca_cert.read_bytes())


@dataclass
class NodesStack:
    """What :func:`start` made: the network, the registry's port and how long each step took."""

    state_root: Path
    network: netns.Network
    registry_port: int
    timings: dict[str, float] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The settings this adds to the devstack environment (``BERTH_CA_DIR`` is the caller's)."""
        manager = swarm.engine_paths(node_root(self.state_root, self.network.nodes[0].name))
        return {
            "DOCKER_HOST": manager.docker_host,
            "BERTH_REGISTRY_IMAGE": swarm.IMAGE,
            "BERTH_SWARM_SERVICE": swarm.SERVICE,
            "BERTH_SWARM_HOST_NETWORK": "true",
            "BERTH_REGISTRY_REPLICAS": "2",
            "BERTH_NODE_CHECK_IMAGE": checkimage.IMAGE,
            "DEVSTACK_SWARM": "1",
            "DEVSTACK_NODES": ",".join(f"{n.name}={n.address}" for n in self.network.nodes),
        }


def _registry_config(port: int, data_dir: Path, http_secret: str) -> str:
    """The devstack's registry config, listening on every address of its node."""
    config = yaml.safe_load(swarm.render_swarm_config(port, data_dir, http_secret))
    config["http"]["addr"] = f":{port}"
    return "# Generated by devstack for the multi-node Swarm.\n" + yaml.safe_dump(config, sort_keys=False)


def start(state_root: Path, count: int, *, data_dir: Path, server_cert: Path, server_key: Path,
          ca_cert: Path, http_secret: str) -> NodesStack:  # fmt: skip
    """Make the network, start ``count`` engines, form the Swarm, run the balancer and the registry.

    On failure raises :class:`devstack.swarm.SwarmError`; the caller runs :func:`stop`.
    """
    reason = swarm.missing_reason() or balancer.missing_reason() or checkimage.missing_reason()
    if reason:
        raise swarm.SwarmError("nodes", reason)
    network = netns.plan(state_root, count, netns.pick_subnet())
    net_record(state_root).parent.mkdir(parents=True, exist_ok=True)
    network.save(net_record(state_root))
    timings: dict[str, float] = {}
    mark = time.monotonic()
    try:
        netns.create(network)
    except netns.NetworkError as exc:
        raise swarm.SwarmError("network", str(exc)) from exc
    CERTS_D.mkdir(parents=True, exist_ok=True)  # the mount point each node binds its own over
    data_dir.mkdir(parents=True, exist_ok=True)
    clients = [start_node(state_root, node, data_dir) for node in network.nodes]
    timings["engines"] = time.monotonic() - mark
    try:
        return _run_registry(state_root, network, clients, timings, data_dir, server_cert, server_key, ca_cert,
                             http_secret)  # fmt: skip
    except docker.errors.DockerException as exc:
        raise swarm.SwarmError("swarm", f"engine request failed: {exc}") from exc
    finally:
        for client in clients:
            client.close()


def _run_registry(state_root: Path, network: netns.Network, clients: list[docker.DockerClient],
                  timings: dict[str, float], data_dir: Path, server_cert: Path, server_key: Path,
                  ca_cert: Path, http_secret: str) -> NodesStack:  # fmt: skip
    mark = time.monotonic()
    form_swarm(clients, network)
    timings["swarm"] = time.monotonic() - mark
    mark = time.monotonic()
    for client in clients:
        swarm.import_registry_image(client)
    checkimage.import_image(clients)
    timings["image"] = time.monotonic() - mark
    port = free_port()
    log = state_root / "logs" / "balancer.log"
    balancer.start(state_root, f"{LOOPBACK}:{port}", [f"{n.address}:{port}" for n in network.nodes], log)
    trust_ca(state_root, [n.name for n in network.nodes], f"{LOOPBACK}:{port}", ca_cert)
    mark = time.monotonic()
    swarm.deploy_registry(clients[0], config_text=_registry_config(port, data_dir, http_secret), data_dir=data_dir,
                          cert=server_cert.read_bytes(), key=server_key.read_bytes(), replicas=2)  # fmt: skip
    timings["service_converge"] = swarm.wait_converged(clients[0], swarm.SERVICE, f"https://{LOOPBACK}:{port}", ca_cert)
    return NodesStack(state_root, network, port, timings)


def _dockerd_pid(state_root: Path, name: str) -> int:
    record = procs.load(node_root(state_root, name), "dockerd")
    if record is None or not procs.is_running(record):
        raise swarm.SwarmError(name, "its engine does not run")
    return record.pid


def set_storage(state_root: Path, name: str, storage: Path, *, local: bool) -> None:
    """On node ``name``, put its empty local directory over the storage path, or take it away."""
    pid = _dockerd_pid(state_root, name)
    layers = [line for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
              if line.split()[4] == str(storage)]  # fmt: skip
    enter = ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--"]
    if local and len(layers) < 2:
        command = [*enter, "mount", "--bind", str(node_root(state_root, name) / "local-storage"), str(storage)]
    elif not local and len(layers) >= 2:
        command = [*enter, "umount", str(storage)]
    else:
        return
    done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    if done.returncode != 0:
        raise swarm.SwarmError(name, f"{' '.join(command[3:])}: {done.stderr.strip()}")


def stop(state_root: Path) -> None:
    """Stop the balancer and every node's engine, then remove namespaces, veths and bridge."""
    balancer.stop(state_root)
    network = netns.Network.load(net_record(state_root))
    nodes_dir = state_root / "nodes"
    names = [n.name for n in network.nodes] if network else []
    names += [p.name for p in nodes_dir.glob("node*") if p.is_dir() and p.name not in names]
    for name in names:
        swarm.stop(node_root(state_root, name))
    if network is not None:
        netns.destroy(network)
        with contextlib.suppress(OSError):
            net_record(state_root).unlink()
