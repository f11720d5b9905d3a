"""The multi-node devstack's plan: names within the kernel's limits, a free subnet, the balancer's config."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from devstack import balancer, netns, nodes


def test_plan_names_fit_and_addresses_follow_the_host() -> None:
    network = netns.plan(Path("/tmp/some/state"), 3, "10.213.50")
    assert network.host_address == "10.213.50.1"
    assert [n.address for n in network.nodes] == ["10.213.50.2", "10.213.50.3", "10.213.50.4"]
    assert [n.name for n in network.nodes] == ["node1", "node2", "node3"]
    assert all(len(name) <= 15 for name in [network.bridge, *(n.veth for n in network.nodes)])  # IFNAMSIZ
    assert netns.plan(Path("/tmp/other"), 3, "10.213.50").bridge != network.bridge


def test_network_record_round_trips(tmp_path: Path) -> None:
    network = netns.plan(tmp_path, 2, "10.213.51")
    network.save(tmp_path / "net.json")
    assert netns.Network.load(tmp_path / "net.json") == network
    assert netns.Network.load(tmp_path / "absent.json") is None


def test_pick_subnet_avoids_what_the_host_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    used = [ipaddress.ip_network("10.213.47.0/24"), ipaddress.ip_network("10.213.48.128/25")]
    monkeypatch.setattr(netns, "used_networks", lambda: used)
    assert netns.pick_subnet() == "10.213.49"
    monkeypatch.setattr(netns, "used_networks", lambda: [ipaddress.ip_network("10.0.0.0/8")])
    with pytest.raises(netns.NetworkError):
        netns.pick_subnet()


def test_balancer_config_fails_over(tmp_path: Path) -> None:
    text = balancer.render("127.0.0.1:5000", ["10.213.50.2:5000", "10.213.50.3:5000"], tmp_path, tmp_path / "b.log")
    assert "listen 127.0.0.1:5000" in text and text.count("max_fails=0;") == 2  # never "no live upstreams"
    assert "proxy_next_upstream on;" in text and "master_process off;" in text


def test_node_wrapper_enters_the_namespace_without_remounting_sys(tmp_path: Path) -> None:
    node = netns.plan(tmp_path, 2, "10.213.52").nodes[1]
    argv = nodes.wrapper(node, tmp_path / "nodes" / "node2", tmp_path / "registry")
    assert argv[:2] == ["nsenter", f"--net=/var/run/netns/{node.netns}"] and "--uts" in argv
    assert argv[-3:] == [str(tmp_path / "nodes" / "node2" / "certs.d"), str(tmp_path / "registry"), "node2"]
