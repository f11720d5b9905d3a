"""The network of a multi-node devstack: one bridge, one network namespace per node, a veth pair each.

Each node ``nodeI`` gets the namespace ``berth-TAG-nI`` whose ``eth0`` (the namespace end of
a veth pair) has ``SUBNET.(I+1)/24``; the host end joins the bridge ``bbTAG``, which holds
``SUBNET.1`` so the host (tests, the balancer) reaches every node directly. ``TAG`` is a
hash of the state directory, so two stacks never share names. The subnet is a private /24
that no address or route of the host overlaps, chosen at ``up`` and recorded with the names
(``net.json``) so ``down`` removes exactly what was made.

The bridge does not pass its frames through the host's iptables (``nf_call_iptables 0``):
the host's firewall rules are not this stack's business, and a DROP policy there would cut
the nodes off from each other.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
#: Candidate subnets, tried in order: the third octet varies, 10.213.X.0/24.
_CANDIDATES = tuple(f"10.213.{x}" for x in range(47, 80))


class NetworkError(RuntimeError):
    """A namespace, veth or bridge could not be made."""


@dataclass(frozen=True)
class NodeNet:
    """One node's share of the network."""

    name: str
    netns: str
    veth: str
    address: str

    @property
    def netns_path(self) -> str:
        """The namespace's file, for ``nsenter --net=``."""
        return str(NETNS_DIR / self.netns)


@dataclass(frozen=True)
class Network:
    """The bridge, the host's address on it, and the nodes."""

    bridge: str
    host_address: str
    nodes: tuple[NodeNet, ...]

    def save(self, path: Path) -> None:
        """Record the names, so ``down`` removes them even when ``up`` failed half way."""
        path.write_text(json.dumps({"bridge": self.bridge, "host_address": self.host_address,
                                    "nodes": [asdict(n) for n in self.nodes]}, indent=2) + "\n")  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Network | None:
        """The recorded network, or None."""
        try:
            data = json.loads(path.read_text())
            return cls(data["bridge"], data["host_address"], tuple(NodeNet(**n) for n in data["nodes"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The IPv4 networks the host's addresses and routes cover."""
    found = []
    for args in (("-j", "-4", "addr"), ("-j", "-4", "route", "show", "table", "all")):
        try:
            entries = json.loads(_ip(*args).stdout or "[]")
        except (NetworkError, ValueError):
            continue
        for entry in entries:
            for info in entry.get("addr_info", []):
                found.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
            dst = entry.get("dst")
            if dst and dst != "default" and ":" not in dst:
                found.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return found


def pick_subnet() -> str:
    """The first candidate /24 (``10.213.X``) that nothing on the host overlaps."""
    used = used_networks()
    for prefix in _CANDIDATES:
        subnet = ipaddress.ip_network(f"{prefix}.0/24")
        if not any(subnet.overlaps(other) for other in used if other.prefixlen > 0):
            return prefix
    raise NetworkError("no free private /24 among 10.213.47-79.0/24")


def plan(state_root: Path, count: int, prefix: str) -> Network:
    """Names and addresses for ``count`` nodes of the stack at ``state_root``."""
    tag = hashlib.sha256(str(state_root).encode()).hexdigest()[:6]
    nodes = tuple(
        NodeNet(f"node{i}", f"berth-{tag}-n{i}", f"bv{tag}n{i}", f"{prefix}.{i + 1}") for i in range(1, count + 1)
    )
    return Network(f"bb{tag}", f"{prefix}.1", nodes)


def create(network: Network) -> None:
    """Make the bridge (with the host's address), the namespaces and their veth pairs."""
    _ip("link", "add", network.bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0")
    _ip("addr", "add", f"{network.host_address}/24", "dev", network.bridge)
    _ip("link", "set", network.bridge, "up")
    for node in network.nodes:
        _ip("netns", "add", node.netns)
        _ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _ip("link", "set", node.veth, "master", network.bridge, "up")
        _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        _ip("-n", node.netns, "link", "set", "lo", "up")


def destroy(network: Network) -> None:
    """Remove the namespaces (their veth ends go with them), any host veth left, the bridge."""
    for node in network.nodes:
        if (NETNS_DIR / node.netns).exists():
            _ip("netns", "delete", node.netns, check=False)
        if Path(f"/sys/class/net/{node.veth}").exists():
            _ip("link", "delete", node.veth, check=False)
    if Path(f"/sys/class/net/{network.bridge}").exists():
        _ip("link", "delete", network.bridge, check=False)
