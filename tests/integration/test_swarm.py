"""The Swarm panel's inspection against a real private Docker engine in Swarm mode.

One ``devstack up --swarm`` per module: a real ``dockerd`` whose Swarm runs the registry
as the service ``registry`` (TLS from Swarm secrets, config.yml from a Swarm config, the
storage root bind-mounted). Locally a machine without Debian ``docker.io`` skips; under
CI=true the module fails instead.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

import devstack
from berth.findings import Level
from berth.swarm import model as sm
from berth.swarm import rules as sf
from berth.swarm.inspect import docker_client, find_service, inspect_swarm, service_config_yaml
from berth.swarm.model import SwarmReport
from devstack import swarm as dsswarm
from devstack.__main__ import main as devstack_main
from tests.helpers import running_devstack

pytestmark = [pytest.mark.swarm]


@pytest.fixture(scope="module")
def swarm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A running ``devstack up --swarm`` of this module, stopped at the end."""
    with running_devstack(tmp_path_factory, "swarm", swarm=True) as (state_dir, environment):
        yield state_dir, environment


def _inspect(env: dict[str, str], service: str | None = None, **kwargs: object) -> SwarmReport:
    return inspect_swarm(
        env["DOCKER_HOST"], service or env["BERTH_SWARM_SERVICE"], Path(env["BERTH_NFS_PATH"]), **kwargs
    )


def _critical(report: SwarmReport) -> list[str]:
    return [f.message for f in report.findings if f.level == Level.CRITICAL]


def test_env_names_the_engine_and_the_ca(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = swarm_stack
    assert env["DEVSTACK_SWARM"] == "1"
    assert env["DOCKER_HOST"].startswith("unix:///") and env["DOCKER_HOST"].endswith("/docker.sock")
    assert env["BERTH_SWARM_SERVICE"] == "registry"
    assert env["BERTH_REGISTRY_IMAGE"] == "berth-registry:2"
    ca_dir = Path(env["BERTH_CA_DIR"])
    assert (ca_dir / "ca.crt").is_file()
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert (state_dir / "env").read_text() == devstack.stack.format_env(env)
    # No plain registry process: the registry is the Swarm task.
    assert devstack.procs.load(state_dir.resolve(), "registry") is None


def test_healthy_service(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = swarm_stack
    report = _inspect(env)
    assert report.ok and report.error is None, report.as_dict()
    assert not _critical(report)
    assert report.manager
    assert [(n.role, n.leader, n.state, n.availability) for n in report.nodes] == [("manager", True, "ready", "active")]
    assert report.nodes[0].engine_version
    service = report.service
    assert service is not None
    assert (service.name, service.image, service.mode) == ("registry", "berth-registry:2", "replicated")
    assert (service.replicas_desired, service.replicas_running) == (1, 1)
    assert [(m.source, m.target, m.type, m.on_nfs_path) for m in service.mounts] == [
        (env["BERTH_NFS_PATH"], env["BERTH_NFS_PATH"], "bind", True)
    ]
    secrets = {s.target: s for s in service.secrets}
    assert set(secrets) == {"/run/secrets/registry.crt", "/run/secrets/registry.key"}
    assert secrets["/run/secrets/registry.key"].name.startswith("registry-key-")
    assert secrets["/run/secrets/registry.key"].mode == 0o400
    assert [(c.name[:16], c.target) for c in service.configs] == [
        ("registry-config-", "/etc/docker/registry/config.yml")
    ]
    assert "host" in service.networks
    assert report.config_readable
    assert report.tasks and report.tasks[0].state == "running" and report.tasks[0].node == report.nodes[0].hostname
    as_json = report.as_dict()
    assert as_json["ok"] is True and as_json["details"]["service"]["replicas_running"] == 1
    assert all(f["level"] in ("ok", "info") for f in as_json["findings"])

    catalog = requests.get(f"{env['BERTH_REGISTRY_URL']}/v2/_catalog", verify=env["BERTH_REGISTRY_CA"], timeout=10)
    assert catalog.status_code == 200
    assert {"centos", "debian", "node", "wordpress"} <= set(catalog.json()["repositories"])


def test_service_config_is_the_registry_config(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = swarm_stack
    client = docker_client(env["DOCKER_HOST"], 5.0)
    try:
        text = service_config_yaml(client, find_service(client, "registry"))
    finally:
        client.close()
    assert text == (state_dir / "registry" / "config.yml").read_text()
    assert "secret:" in text and "rootdirectory: " + env["BERTH_NFS_PATH"] in text
    assert "certificate: /run/secrets/registry.crt" in text


def test_second_up_changes_nothing(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = swarm_stack
    before = devstack.procs.load(state_dir.resolve(), "dockerd")
    began = time.monotonic()
    assert devstack.up(state_dir, swarm=True) == env
    assert devstack.up(state_dir) == env  # a plain `up` finds the Swarm stack running
    assert time.monotonic() - began < 2
    assert devstack.procs.load(state_dir.resolve(), "dockerd") == before


def test_failing_tasks_are_critical(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = swarm_stack
    client = docker.DockerClient(base_url=env["DOCKER_HOST"], timeout=10)
    name = "registry-broken"
    service = client.services.create(
        env["BERTH_REGISTRY_IMAGE"],
        name=name,
        args=["serve", "/nonexistent.yml"],
        networks=["host"],
        endpoint_spec=EndpointSpec(mode="dnsrr"),
        mode=ServiceMode("replicated", replicas=2),
        restart_policy=RestartPolicy(condition="on-failure", delay=100_000_000),
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            report = _inspect(env, name)
            if any("keep failing" in m for m in _critical(report)):
                break
            assert time.monotonic() < deadline, report.as_dict()
            time.sleep(0.5)
        assert not report.ok and report.error is None
        failed = [t for t in report.tasks if t.failed]
        assert len(failed) >= 3
        assert all(t.state == "failed" and "non-zero exit" in t.error and t.exit_code == 1 for t in failed)
        loop = next(f for f in report.findings if "keep failing" in f.message)
        assert "last error: task: non-zero exit (1)" in loop.message
        assert loop.fix and "/nonexistent.yml" in loop.detail  # the registry's own words, from the service log
        assert len(report.tasks) <= 20
        assert report.as_dict()["details"]["tasks"][0]["id"] == report.tasks[0].id
        # Two replicas, no Swarm config to read http.secret from: a warning; a config without it: critical.
        assert any("cannot be read" in f.message for f in report.findings if f.level == Level.WARNING)
        without = _inspect(env, name, registry_config={"http": {"addr": ":5000"}})
        assert any("http.secret" in m for m in _critical(without))
        with_secret = _inspect(env, name, registry_config={"http": {"secret": "s3cret"}})
        assert not any("http.secret" in m for m in _critical(with_secret))
        # The healthy service is not affected by its neighbour.
        assert _inspect(env).ok
    finally:
        service.remove()
        client.close()


def _service(**changes: object) -> sm.ServiceInfo:
    fields: dict = {
        "id": "abc",
        "name": "registry",
        "image": "registry:2",
        "mode": "replicated",
        "replicas_desired": 1,
        "replicas_running": 1,
        "ports": [],
        "mounts": [sm.MountInfo("/var/lib/registry", "/var/lib/registry", "bind", False, True)],
        "secrets": [],
        "configs": [],
        "networks": [],
        "update_status": None,
        "created_at": None,
        "updated_at": None,
    }
    return sm.ServiceInfo(**(fields | changes))


@pytest.mark.parametrize(
    ("state", "level"),
    [
        ("updating", Level.INFO),
        ("paused", Level.WARNING),
        ("rollback_started", Level.WARNING),
        ("rollback_paused", Level.CRITICAL),
        ("rollback_completed", Level.WARNING),
    ],
)
def test_update_states_are_judged(state: str, level: Level) -> None:
    update = sm.UpdateInfo(state, "update paused due to failure or early termination of task x", None, None)
    findings = sf.update_findings(_service(update_status=update))
    assert [f.level for f in findings] == [level]
    assert "early termination" in findings[0].message
    assert sf.update_findings(_service(update_status=sm.UpdateInfo("completed", "", None, None))) == []


def test_nodes_replicas_and_mounts_are_judged() -> None:
    drained = sm.NodeInfo("n2", "node2", "worker", False, "drain", "ready", "24.0", "10.0.0.2")
    down = sm.NodeInfo(
        "n3", "node3", "worker", False, "active", "down", "24.0", "10.0.0.3", message="heartbeat failure"
    )
    findings = sf.node_findings([drained, down])
    assert [f.level for f in findings] == [Level.WARNING, Level.WARNING]
    assert "drain" in findings[0].message and "heartbeat failure" in findings[1].message
    assert [f.level for f in sf.replica_findings(_service(replicas_desired=3, replicas_running=1))] == [Level.WARNING]
    assert [f.level for f in sf.replica_findings(_service(replicas_running=0))] == [Level.CRITICAL]
    local = sm.MountInfo("/srv/registry", "/var/lib/registry", "bind", False, False)
    findings = sf.mount_findings(_service(mounts=[local]), Path("/var/lib/registry"))
    assert [f.level for f in findings] == [Level.WARNING, Level.WARNING]
    assert "/srv/registry" in findings[0].message


def test_unreachable_engine_is_a_finding(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/no-such-docker.sock"
    began = time.monotonic()
    report = inspect_swarm(host, "registry", tmp_path, timeout=2.0)
    assert time.monotonic() - began < 5
    assert not report.ok
    assert report.error and report.error.startswith(f"Docker engine unreachable at {host}")
    assert [f.level for f in report.findings] == [Level.CRITICAL]
    assert report.findings[0].message.startswith("Docker engine unreachable at")
    assert report.as_dict()["ok"] is False and report.service is None


def test_engine_outside_a_swarm_is_critical(swarm_stack: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    paths = dsswarm.engine_paths(tmp_path)
    try:
        dsswarm.start_engine(paths).close()
        report = inspect_swarm(paths.docker_host, "registry", tmp_path)
        assert not report.ok and not report.manager and report.error is None
        assert any("not part of a Swarm" in m for m in _critical(report))
        assert report.service is None and report.nodes == []
    finally:
        dsswarm.stop(tmp_path)
    assert dsswarm.engine_processes(tmp_path) == []


def test_up_swarm_without_docker_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(dsswarm, "DOCKERD", str(tmp_path / "no-dockerd"))
    with pytest.raises(devstack.StackError, match="docker.io"):
        devstack.up(tmp_path / "state", swarm=True)
    assert devstack_main(["up", "--swarm", "--state-dir", str(tmp_path / "state")]) == 1
    assert "docker.io" in capsys.readouterr().err


def _stack_processes(markers: tuple[str, ...]) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline for m in markers):
            found.append(f"{entry}: {cmdline}")
    return found


def test_down_leaves_nothing_running(swarm_stack: tuple[Path, dict[str, str]]) -> None:
    """Last in the module: it takes the stack down (the fixture's own down is then a no-op)."""
    state_dir, env = swarm_stack
    paths = dsswarm.engine_paths(state_dir)
    markers = (*paths.markers(), str(state_dir.resolve()))
    assert any("dockerd" in line for line in _stack_processes(markers))
    began = time.monotonic()
    devstack.down(state_dir)
    assert time.monotonic() - began < 30
    assert _stack_processes(markers) == []
    assert not paths.data_root.exists() and not paths.exec_root.exists()
    assert dsswarm.mounts_under([paths.run, paths.base]) == []
    report = inspect_swarm(env["DOCKER_HOST"], "registry", Path(env["BERTH_NFS_PATH"]), timeout=2.0)
    assert not report.ok and "unreachable" in (report.error or "")
