"""The local stack (devstack) starts real slapd and registry processes, seeded, and stops them."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
import requests

import devstack
from devstack import ldap as dsldap
from devstack import procs, registry, seed

_INSTALLED = all(os.access(p, os.X_OK) for p in (dsldap.SLAPD, dsldap.SLAPADD, registry.REGISTRY))
_IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.stack,
    # Locally a machine without the packages skips; under CI the tests run and fail loudly.
    pytest.mark.skipif(not _INSTALLED and not _IN_CI, reason="needs the Debian packages slapd and docker-registry"),
]

REPOSITORIES = ["centos", "debian", "node", "team/app/api", "wordpress"]
ACCEPT = ", ".join(
    [
        seed.OCI_INDEX,
        seed.DOCKER_MANIFEST_LIST,
        seed.OCI_MANIFEST,
        seed.DOCKER_MANIFEST,
    ]
)


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """One running stack of this module's own (not conftest's), in a state dir it can inspect."""
    state_dir = tmp_path_factory.mktemp("devstack")
    try:
        yield state_dir, devstack.up(state_dir)
    finally:
        devstack.down(state_dir)


def _get(env: dict[str, str], path: str, **kwargs: object) -> requests.Response:
    return requests.get(env["BERTH_REGISTRY_URL"] + path, verify=env["BERTH_REGISTRY_CA"], timeout=10, **kwargs)


def _bind(url: str, dn: str, password: str, ca: str, start_tls: bool = False) -> ldap3.Connection:
    tls = ldap3.Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED)
    conn = ldap3.Connection(ldap3.Server(url, tls=tls, get_info=ldap3.NONE), dn, password)
    if start_tls:
        conn.open()
        assert conn.start_tls()
    return conn


def test_env_names_and_absolute_paths(own_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = own_stack
    assert env["DEVSTACK_STATE_DIR"] == str(state_dir.resolve())
    for name in ("BERTH_DATA_DIR", "BERTH_REGISTRY_CA", "BERTH_LDAP_CA", "BERTH_NFS_PATH"):
        assert os.path.isabs(env[name]) and os.path.exists(env[name]), name
    assert env["BERTH_LDAP_USER_FILTER"] == "(uid={username})"
    assert env["BERTH_REGISTRY_URL"].startswith("https://127.0.0.1:")
    assert env["BERTH_LDAP_URL"].startswith("ldap://127.0.0.1:")
    assert env["DEVSTACK_LDAPS_URL"].startswith("ldaps://127.0.0.1:")
    env_file = (state_dir / "env").read_text()
    assert env_file == devstack.stack.format_env(env)
    assert devstack.env(state_dir) == env


def test_private_keys_are_0600(own_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, _ = own_stack
    for key in (state_dir / "ca" / "ca.key", state_dir / "tls" / "server.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_catalog_lists_the_seeded_repositories(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    response = _get(env, "/v2/_catalog")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert sorted(response.json()["repositories"]) == REPOSITORIES


def test_seeded_manifests(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack

    def head(repo: str, ref: str) -> tuple[str, str]:
        r = requests.head(
            f"{env['BERTH_REGISTRY_URL']}/v2/{repo}/manifests/{ref}",
            headers={"Accept": ACCEPT},
            verify=env["BERTH_REGISTRY_CA"],
            timeout=10,
        )
        assert r.status_code == 200, (repo, ref)
        return r.headers["Docker-Content-Digest"], r.headers["Content-Type"]

    assert head("centos", "8") == head("centos", "latest")
    assert head("centos", "7")[0] != head("centos", "8")[0]
    assert head("centos", "7")[1] == seed.DOCKER_MANIFEST
    assert head("debian", "bullseye")[1] == seed.OCI_MANIFEST
    assert head("node", "22") == head("node", "lts")
    assert head("node", "22")[1] == seed.OCI_INDEX
    assert head("wordpress", "6.5")[1] == seed.DOCKER_MANIFEST_LIST
    assert head("team/app/api", "main")[1] == seed.OCI_MANIFEST

    index = _get(env, "/v2/node/manifests/22", headers={"Accept": seed.OCI_INDEX}).json()
    platforms = sorted(
        "/".join(
            filter(
                None,
                (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")),
            )
        )
        for m in index["manifests"]
    )
    assert platforms == ["linux/amd64", "linux/arm64/v8"]
    created = set()
    for entry in index["manifests"]:
        manifest = _get(env, f"/v2/node/manifests/{entry['digest']}", headers={"Accept": entry["mediaType"]}).json()
        config = _get(env, f"/v2/node/blobs/{manifest['config']['digest']}").json()
        assert config["rootfs"]["diff_ids"] and config["history"] and config["config"]["Entrypoint"]
        created.add(config["created"])
    assert len(created) == 2

    tags = _get(env, "/v2/team/app/api/tags/list").json()["tags"]
    assert sorted(tags) == ["1.0.0", "1.1.0", "main"]


def test_seeding_again_changes_nothing(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    first = seed.seed_demo(env["BERTH_REGISTRY_URL"], env["BERTH_REGISTRY_CA"])
    second = seed.seed_demo(env["BERTH_REGISTRY_URL"], env["BERTH_REGISTRY_CA"])
    assert first == second
    assert first["centos"]["8"] == first["centos"]["latest"]


@pytest.mark.parametrize("start_tls", [False, True])
def test_alice_binds_on_ldap(own_stack: tuple[Path, dict[str, str]], start_tls: bool) -> None:
    _, env = own_stack
    conn = _bind(
        env["BERTH_LDAP_URL"],
        f"uid=alice,{env['BERTH_LDAP_USER_BASE']}",
        "alice-pw",
        env["BERTH_LDAP_CA"],
        start_tls=start_tls,
    )
    assert conn.bind(), conn.result
    assert conn.extend.standard.who_am_i() == f"dn:uid=alice,{env['BERTH_LDAP_USER_BASE']}"
    conn.unbind()


def test_alice_binds_on_ldaps_with_the_ca(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    conn = _bind(
        env["DEVSTACK_LDAPS_URL"],
        f"uid=alice,{env['BERTH_LDAP_USER_BASE']}",
        "alice-pw",
        env["BERTH_LDAP_CA"],
    )
    assert conn.bind(), conn.result
    conn.unbind()


def test_wrong_password_is_refused(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    conn = _bind(
        env["BERTH_LDAP_URL"],
        f"uid=alice,{env['BERTH_LDAP_USER_BASE']}",
        "wrong",
        env["BERTH_LDAP_CA"],
    )
    assert not conn.bind()
    assert conn.result["result"] == 49


def test_service_account_finds_users_and_groups(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    conn = _bind(
        env["BERTH_LDAP_URL"],
        env["BERTH_LDAP_BIND_DN"],
        env["BERTH_LDAP_BIND_PASSWORD"],
        env["BERTH_LDAP_CA"],
    )
    assert conn.bind(), conn.result
    conn.search(env["BERTH_LDAP_USER_BASE"], "(uid=twin)", attributes=["uid"])
    assert len(conn.entries) == 2
    conn.search(env["BERTH_LDAP_USER_BASE"], "(uid=dave)", attributes=["displayName", "mail"])
    assert [str(e.displayName) for e in conn.entries] == ["Dave Developer"]
    alice = f"uid=alice,{env['BERTH_LDAP_USER_BASE']}"
    olivia = f"uid=olivia,{env['BERTH_LDAP_USER_BASE']}"
    conn.search(env["BERTH_LDAP_ADMIN_GROUP"], "(objectClass=*)", ldap3.BASE, attributes=["member"])
    assert [str(v) for v in conn.entries[0].member.values] == [alice]
    conn.search(env["BERTH_LDAP_OPS_GROUP"], "(objectClass=*)", ldap3.BASE, attributes=["uniqueMember"])
    nested = f"cn=platform-team,{env['BERTH_LDAP_GROUP_BASE']}"  # erin's team, inside registry-ops
    assert sorted(str(v) for v in conn.entries[0].uniqueMember.values) == sorted([alice, olivia, nested])
    conn.unbind()


def test_anonymous_cannot_search(own_stack: tuple[Path, dict[str, str]]) -> None:
    _, env = own_stack
    conn = ldap3.Connection(ldap3.Server(env["BERTH_LDAP_URL"], get_info=ldap3.NONE), auto_bind=True)
    conn.search(env["BERTH_LDAP_USER_BASE"], "(uid=alice)")
    assert conn.entries == []
    conn.unbind()


def test_second_up_is_a_noop(own_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = own_stack
    before = {r.name: r for r in procs.load_all(state_dir)}
    assert devstack.up(state_dir) == env
    assert {r.name: r for r in procs.load_all(state_dir)} == before


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_up_restarts_a_dead_stack_and_down_stops_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "ds"
    try:
        env = devstack.up(state_dir)
        records = procs.load_all(state_dir)
        assert sorted(r.name for r in records) == ["registry", "slapd"]
        assert all(_alive(r.pid) for r in records)

        registry_record = procs.load(state_dir, "registry")
        assert registry_record is not None
        os.kill(registry_record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while procs.is_running(registry_record) and time.monotonic() < deadline:
            time.sleep(0.05)  # SIGKILL is asynchronous: wait until the kernel has ended it
        again = devstack.up(state_dir)
        assert again["BERTH_SECRET_KEY"] == env["BERTH_SECRET_KEY"]
        assert again["BERTH_LDAP_BIND_PASSWORD"] == env["BERTH_LDAP_BIND_PASSWORD"]
        assert _get(again, "/v2/_catalog").json()["repositories"] == REPOSITORIES
        records = procs.load_all(state_dir)
        assert all(_alive(r.pid) for r in records)
    finally:
        devstack.down(state_dir)
    assert not any(_alive(r.pid) for r in records)
    assert procs.load_all(state_dir) == []
    with pytest.raises(devstack.StackError):
        devstack.env(state_dir)
    devstack.down(state_dir)  # again: quiet
    devstack.down(tmp_path / "never-started")


def test_a_failing_component_is_named_and_the_rest_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "REGISTRY", "/bin/false")
    with pytest.raises(devstack.StackError) as failure:
        devstack.up(tmp_path)
    assert failure.value.component == "registry"
    assert failure.value.log and failure.value.log.endswith("registry.log")
    assert procs.load_all(tmp_path) == []


def test_down_never_kills_a_recycled_pid(tmp_path: Path) -> None:
    import json
    import subprocess

    bystander = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "pids").mkdir()
        record = {
            "name": "registry",
            "pid": bystander.pid,
            "binary": "sleep",
            "start_time": 1,  # not the bystander's: the pid was "recycled"
            "log": str(tmp_path / "registry.log"),
        }
        (tmp_path / "pids" / "registry.pid").write_text(json.dumps(record))
        devstack.down(tmp_path)
        assert bystander.poll() is None
        assert procs.load_all(tmp_path) == []
    finally:
        bystander.kill()
        bystander.wait()
