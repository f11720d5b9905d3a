"""A private Docker engine in Swarm mode running the registry as the Swarm service ``registry``.

Used by ``python -m devstack up --swarm``. What it does, all through the docker SDK:

1. start ``dockerd`` (Debian ``docker.io``) with its own data root, exec root, pid file
   and socket, no iptables, no bridge, the ``vfs`` storage driver, and an empty
   ``--config-file`` (so the host's ``/etc/docker/daemon.json`` is never read); its pid is
   recorded by :mod:`devstack.procs` as ``dockerd``;
2. ``swarm init`` on loopback (``--listen-addr 127.0.0.1:FREEPORT``);
3. ``docker import`` of a registry image built from this machine's
   ``/usr/bin/docker-registry`` and the libraries ``ldd`` names (nothing is pulled);
4. the registry as a replicated service on the host network: the storage root (which
   stands for the NFS share) bind-mounted at the same path, ``config.yml`` as a versioned
   Swarm config, the TLS certificate and key as versioned Swarm secrets.

Layout: ``DIR/docker/`` holds ``daemon.json``, ``engine.json`` (where everything is) and
the data root ``root/``. A unix socket path must stay under 108 bytes, and containerd puts
its sockets deep below the exec root: when ``DIR`` is long, the exec root, pid file and
socket go to ``/tmp/berth-docker-HASH`` (a hash of ``DIR``) instead of ``DIR/docker``.

:func:`stop` stops that engine by its recorded pid, then whatever containerd or shim
processes it left (only those whose command line names its exec root or data root, and the
container processes under those shims), lazily unmounts what it left mounted, and removes
its directories. Other engines on the machine are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import yaml
from docker.models.resource import Model
from docker.types import (
    ConfigReference,
    EndpointSpec,
    Mount,
    RestartPolicy,
    RollbackConfig,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

from devstack import procs
from devstack.ports import LOOPBACK, free_port
from devstack.registry import REGISTRY, render_config

DOCKERD = "/usr/sbin/dockerd"
IMAGE = "berth-registry:2"
SERVICE = "registry"
LABEL = "berth.devstack"
CONFIG_TARGET = "/etc/docker/registry/config.yml"
CERT_TARGET = "/run/secrets/registry.crt"
KEY_TARGET = "/run/secrets/registry.key"
ENTRYPOINT = '["/bin/docker-registry"]'
CMD = '["serve","/etc/docker/registry/config.yml"]'
#: Libraries of /usr/bin/docker-registry when ``ldd`` is not available (Debian 12, amd64).
FALLBACK_LIBS = ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")
#: Longest run directory kept under the state dir; containerd adds ~40 bytes of socket path.
MAX_RUN_DIR = 56
GWBRIDGE_SYSFS = Path("/sys/class/net/docker_gwbridge")
_NANO = 1_000_000_000
_PORT_ATTEMPTS = 3
_ENGINE_PROGRAMS = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2"}


class SwarmError(RuntimeError):
    """The engine, the Swarm or the registry service could not be set up."""

    def __init__(self, component: str, reason: str, log: Path | str | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log = str(log) if log else None
        super().__init__(reason)


@dataclass(frozen=True)
class EnginePaths:
    """Where one private engine keeps its files."""

    state_root: Path
    base: Path
    run: Path
    data_root: Path
    exec_root: Path
    socket: Path
    pidfile: Path
    config_file: Path
    record: Path
    log: Path

    @property
    def docker_host(self) -> str:
        """The ``DOCKER_HOST`` value of this engine."""
        return f"unix://{self.socket}"

    def markers(self) -> tuple[str, ...]:
        """Strings that appear in the command line of every process this engine started."""
        return (str(self.exec_root), str(self.data_root), str(self.socket))


def engine_paths(state_root: Path | str) -> EnginePaths:
    """The engine paths for the state directory ``state_root`` (an absolute path)."""
    root = Path(state_root).expanduser().resolve()
    base = root / "docker"
    if len(str(base)) <= MAX_RUN_DIR:
        run = base
    else:
        run = Path("/tmp") / f"berth-docker-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    data_root = base / "root"
    if len(str(data_root / "swarm" / "control.sock")) >= 100:
        data_root = run / "root"
    return EnginePaths(
        state_root=root,
        base=base,
        run=run,
        data_root=data_root,
        exec_root=run / "exec",
        socket=run / "docker.sock",
        pidfile=run / "dockerd.pid",
        config_file=base / "daemon.json",
        record=base / "engine.json",
        log=root / "logs" / "dockerd.log",
    )


def missing_reason() -> str | None:
    """Why no engine can be started here (a missing program or privilege), or None."""
    if not os.access(DOCKERD, os.X_OK):
        return f"{DOCKERD} is not installed (Debian package docker.io)"
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    for program in ("containerd", "containerd-shim-runc-v2", "runc"):
        if not shutil.which(program, path=search):
            return f"{program} is not installed (Debian packages docker.io, containerd, runc)"
    if os.geteuid() != 0:
        return "dockerd needs root"
    return None


# --- the engine -------------------------------------------------------------------------


def client_for(paths: EnginePaths, timeout: float = 30.0) -> docker.DockerClient:
    """A docker SDK client of the engine at ``paths`` (connects: raises if it is down)."""
    return docker.DockerClient(base_url=paths.docker_host, timeout=timeout)


def start_engine(paths: EnginePaths, timeout: float = 30.0, wrapper: Sequence[str] = ()) -> docker.DockerClient:
    """Start ``dockerd`` for ``paths``, wait until it answers and return a client of it.

    ``wrapper`` is a command that execs ``dockerd`` in the end (namespaces, mounts of a node).
    """
    for directory in (paths.base, paths.run, paths.data_root, paths.exec_root):
        directory.mkdir(parents=True, exist_ok=True)
    paths.run.chmod(0o700)
    # Nothing from the host's /etc/docker/daemon.json; the trust key inside, else dockerd
    # 20.10 writes /etc/docker/key.json.
    paths.config_file.write_text(json.dumps({"deprecated-key-path": str(paths.base / "key.json")}) + "\n")
    record_data = {k: str(v) for k, v in vars(paths).items()} | {
        "docker_host": paths.docker_host,
        # Swarm makes the host bridge docker_gwbridge; stop() removes it only if it was not there.
        "gwbridge_preexisting": GWBRIDGE_SYSFS.exists(),
    }
    if paths.record.exists():  # a restart over leftovers: keep what was there before the first start
        with contextlib.suppress(OSError, ValueError, KeyError):
            record_data["gwbridge_preexisting"] = json.loads(paths.record.read_text())["gwbridge_preexisting"]
    paths.record.write_text(json.dumps(record_data, indent=2) + "\n")
    argv = [
        DOCKERD,
        "--config-file",
        str(paths.config_file),
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--storage-driver=vfs",
        "--data-root",
        str(paths.data_root),
        "--exec-root",
        str(paths.exec_root),
        "--pidfile",
        str(paths.pidfile),
        "-H",
        paths.docker_host,
    ]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(paths.base),
        "LANG": "C.UTF-8",
        # Use the imported image as it is: no pull attempt (there is no outside network).
        "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1",
    }
    argv = [*wrapper, *argv]
    record = procs.start(paths.state_root, "dockerd", argv, paths.log, env=env, cwd=paths.base, binary="dockerd")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not procs.is_running(record):
            raise SwarmError("dockerd", f"dockerd exited: {procs.log_tail(paths.log, 2) or 'no output'}", paths.log)
        if paths.socket.exists():
            try:
                client = client_for(paths)
                client.ping()
                return client
            except (docker.errors.DockerException, requests.RequestException) as exc:
                last = str(exc)[:200]
        if time.monotonic() > deadline:
            raise SwarmError("dockerd", f"no answer on {paths.socket} in {timeout:.0f}s ({last})", paths.log)
        time.sleep(0.05)


def init_swarm(client: docker.DockerClient) -> int:
    """Make the engine a single-node Swarm manager on loopback; return its listen port."""
    last: Exception | None = None
    for _ in range(_PORT_ATTEMPTS):
        port = free_port()
        try:
            client.swarm.init(advertise_addr=LOOPBACK, listen_addr=f"{LOOPBACK}:{port}")
            return port
        except docker.errors.APIError as exc:
            last = exc
            if "address already in use" not in str(exc).lower():
                break
    raise SwarmError("swarm", f"swarm init failed: {last}")


# --- the registry image -----------------------------------------------------------------


def _libraries(binary: str) -> list[str]:
    """The shared libraries (and loader) ``binary`` needs, from ``ldd``."""
    try:
        done = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return [lib for lib in FALLBACK_LIBS if os.path.exists(lib)]
    if "not a dynamic executable" in done.stdout + done.stderr:
        return []
    found = re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", done.stdout)
    return list(dict.fromkeys(found)) if found else [lib for lib in FALLBACK_LIBS if os.path.exists(lib)]


def registry_rootfs_tar(binary: str = REGISTRY) -> bytes:
    """A tar of a minimal root filesystem holding ``/bin/docker-registry`` and its libraries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()

        def directory(path: str, mode: int = 0o755) -> None:
            parts = Path(path).parts[1:]
            for i in range(1, len(parts) + 1):
                name = "/".join(parts[:i])
                if name in made:
                    continue
                made.add(name)
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = mode if i == len(parts) else 0o755
                tar.addfile(info)

        def regular(source: str, target: str, mode: int) -> None:
            directory(os.path.dirname(target))
            data = Path(source).read_bytes()  # follows symlinks: the loader is one
            info = tarfile.TarInfo(target.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for path in ("/etc/docker/registry", "/run/secrets", "/var/lib/registry"):
            directory(path)
        directory("/tmp", 0o1777)
        regular(binary, "/bin/docker-registry", 0o755)
        for library in _libraries(binary):
            regular(library, library, 0o755)
    return buffer.getvalue()


def import_registry_image(client: docker.DockerClient, tag: str = IMAGE) -> str:
    """``docker import`` the registry root filesystem as ``tag``; return the image id."""
    repository, _, version = tag.rpartition(":")
    client.api.import_image_from_data(
        registry_rootfs_tar(),
        repository=repository,
        tag=version,
        changes=[f"ENTRYPOINT {ENTRYPOINT}", f"CMD {CMD}"],
    )
    return _id(client.images.get(tag))


# --- the registry service ---------------------------------------------------------------


def render_swarm_config(port: int, data_dir: Path, http_secret: str) -> str:
    """The registry ``config.yml`` for the service: TLS from the secrets' paths, shared secret."""
    config = yaml.safe_load(render_config(port, data_dir, Path(CERT_TARGET), Path(KEY_TARGET)))
    config["http"]["secret"] = http_secret
    config["http"].setdefault("headers", {})["X-Content-Type-Options"] = ["nosniff"]
    config["storage"].setdefault("delete", {})["enabled"] = True
    config["health"] = {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}}
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return "# Generated by devstack for the Swarm service `registry`; rewritten at every `up --swarm`.\n" + body


def _id(obj: Model) -> str:
    """The ID of an object the engine returned (docker-py types ``id`` as optional)."""
    if obj.id is None:
        raise docker.errors.DockerException(f"the engine returned {obj!r} without an ID")
    return obj.id


def _versioned(prefix: str, data: bytes) -> str:
    return f"{prefix}-{hashlib.sha256(data).hexdigest()[:12]}"


def _ensure_config(client: docker.DockerClient, name: str, data: bytes, labels: dict[str, str]) -> str:
    found = [c for c in client.configs.list(filters={"name": name}) if c.name == name]
    if found:
        return _id(found[0])
    return _id(client.configs.create(name=name, data=data, labels=labels))


def _ensure_secret(client: docker.DockerClient, name: str, data: bytes, labels: dict[str, str]) -> str:
    found = [s for s in client.secrets.list(filters={"name": name}) if s.name == name]
    if found:
        return found[0].id
    return client.secrets.create(name=name, data=data, labels=labels).id


def find_service(client: docker.DockerClient, name: str) -> Any | None:
    """The service named exactly ``name`` (with its ServiceStatus), or None."""
    for service in client.services.list(filters={"name": name}, status=True):
        if service.name == name:
            return service
    return None


def deploy_registry(
    client: docker.DockerClient,
    *,
    config_text: str,
    data_dir: Path,
    cert: bytes,
    key: bytes,
    image: str = IMAGE,
    name: str = SERVICE,
    replicas: int = 1,
) -> Any:
    """Create the registry service (replacing one of that name); return it.

    With several ``replicas``, at most one runs on a node (each binds the port of its node).
    """
    config_data = config_text.encode()
    config_name = _versioned("registry-config", config_data)
    cert_name = _versioned("registry-crt", cert)
    key_name = _versioned("registry-key", key)
    config_id = _ensure_config(client, config_name, config_data, {LABEL: "registry-config"})
    cert_id = _ensure_secret(client, cert_name, cert, {LABEL: "registry-certificate"})
    key_id = _ensure_secret(client, key_name, key, {LABEL: "registry-key"})
    old = find_service(client, name)
    if old is not None:
        old.remove()
    return client.services.create(
        image,
        name=name,
        labels={LABEL: "registry"},
        networks=["host"],
        endpoint_spec=EndpointSpec(mode="dnsrr"),  # host network: nothing to publish
        mode=ServiceMode("replicated", replicas=replicas),
        maxreplicas=1 if replicas > 1 else None,
        mounts=[Mount(target=str(data_dir), source=str(data_dir), type="bind")],
        configs=[ConfigReference(config_id, config_name, filename=CONFIG_TARGET, mode=0o444)],
        secrets=[
            SecretReference(cert_id, cert_name, filename=CERT_TARGET, mode=0o444),
            SecretReference(key_id, key_name, filename=KEY_TARGET, mode=0o400),
        ],
        restart_policy=RestartPolicy(condition="any", delay=_NANO, max_attempts=0),
        # The port is on the host network: a second task could not bind it, so stop first.
        update_config=UpdateConfig(parallelism=1, failure_action="rollback", monitor=5 * _NANO, order="stop-first"),
        rollback_config=RollbackConfig(parallelism=1, failure_action="pause", monitor=5 * _NANO, order="stop-first"),
    )


def service_logs(client: docker.DockerClient, service_id: str, lines: int = 20) -> str:
    """The last ``lines`` lines the service's tasks wrote (empty if unavailable)."""
    try:
        chunks = client.api.service_logs(service_id, stdout=True, stderr=True, tail=str(lines), follow=False)
        return b"".join(chunks).decode(errors="replace")
    except (docker.errors.DockerException, requests.RequestException):
        return ""


def _log_gist(logs: str) -> str:
    """The telling lines of a registry's output: its error or panic, else the last two lines."""
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"panic:|level=(fatal|error)|\berror\b", line, re.I)]
    return " | ".join((telling or lines)[-2:])[:500]


def _task_summary(service: Any) -> str:
    states = []
    for task in sorted(service.tasks(), key=lambda t: t.get("CreatedAt", ""), reverse=True)[:3]:
        status = task.get("Status", {})
        states.append(f"{status.get('State')}: {status.get('Err') or status.get('Message', '')}".strip())
    return "; ".join(states) or "no task"


def wait_converged(
    client: docker.DockerClient, name: str, base_url: str, ca_cert: Path, timeout: float = 60.0
) -> float:
    """Wait until service ``name`` runs all its tasks and ``GET /v2/`` answers; return seconds.

    Raises :class:`SwarmError` naming the tasks' last state and error when it does not.
    """
    began = time.monotonic()
    deadline = began + timeout
    last = "not converged"
    with requests.Session() as session:
        session.trust_env = False
        while True:
            service = find_service(client, name)
            if service is None:
                raise SwarmError("registry", f"service {name} vanished")
            status = service.attrs.get("ServiceStatus") or {}
            update = (service.attrs.get("UpdateStatus") or {}).get("State", "completed")
            running = status.get("RunningTasks", 0)
            desired = status.get("DesiredTasks", 0)
            converged = desired > 0 and running >= desired and update in ("completed", "rollback_completed")
            if not converged:
                last = f"{running}/{desired} tasks running, update {update}; {_task_summary(service)}"
            else:
                try:
                    response = session.get(f"{base_url}/v2/", verify=str(ca_cert), timeout=2)
                    if response.status_code == 200:
                        return time.monotonic() - began
                    last = f"GET /v2/: HTTP {response.status_code}"
                except requests.RequestException as exc:
                    last = f"GET /v2/: {type(exc).__name__}"
            if time.monotonic() > deadline:
                raise SwarmError("registry", f"service {name} not ready in {timeout:.0f}s ({last})")
            time.sleep(0.1)


@dataclass
class SwarmStack:
    """What :func:`start` made: the engine, the registry's port and how long each step took."""

    paths: EnginePaths
    registry_port: int
    swarm_port: int
    config_text: str
    timings: dict[str, float] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The settings this adds to the devstack environment (``BERTH_CA_DIR`` is the caller's)."""
        return {
            "DOCKER_HOST": self.paths.docker_host,
            "BERTH_REGISTRY_IMAGE": IMAGE,
            "BERTH_SWARM_SERVICE": SERVICE,
            "BERTH_SWARM_HOST_NETWORK": "true",  # this engine has no bridge or ingress network
            "DEVSTACK_SWARM": "1",
        }


def start(
    state_root: Path | str,
    *,
    data_dir: Path,
    server_cert: Path,
    server_key: Path,
    ca_cert: Path,
    http_secret: str,
    config_copy: Path | None = None,
) -> SwarmStack:
    """Start the engine, init the Swarm, import the image and run the registry service.

    ``config_copy``, if given, receives the registry ``config.yml`` the service runs with.
    On failure raises :class:`SwarmError`; the caller stops what was started (:func:`stop`).
    """
    reason = missing_reason()
    if reason:
        raise SwarmError("dockerd", reason)
    paths = engine_paths(state_root)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    client = start_engine(paths)
    try:
        timings["engine"] = time.monotonic() - mark
        mark = time.monotonic()
        swarm_port = init_swarm(client)
        timings["swarm_init"] = time.monotonic() - mark
        mark = time.monotonic()
        try:
            import_registry_image(client)
        except (OSError, docker.errors.DockerException) as exc:
            raise SwarmError("image", f"docker import of {IMAGE} failed: {exc}", paths.log) from exc
        timings["image"] = time.monotonic() - mark
        cert, key = Path(server_cert).read_bytes(), Path(server_key).read_bytes()
        data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            config_text = render_swarm_config(port, data_dir, http_secret)
            mark = time.monotonic()
            service = deploy_registry(client, config_text=config_text, data_dir=data_dir, cert=cert, key=key)
            try:
                timings["service_converge"] = wait_converged(client, SERVICE, f"https://{LOOPBACK}:{port}", ca_cert)
            except SwarmError as exc:
                logs = service_logs(client, service.id, lines=80)
                if attempt + 1 < _PORT_ATTEMPTS and "address already in use" in logs.lower():
                    continue
                tail = _log_gist(logs)
                raise SwarmError("registry", f"{exc}{'; logs: ' + tail if tail else ''}", paths.log) from exc
            if config_copy is not None:
                config_copy.write_text(config_text)
            return SwarmStack(paths, port, swarm_port, config_text, timings)
        raise AssertionError("unreachable")
    except docker.errors.DockerException as exc:
        raise SwarmError("swarm", f"engine request failed: {exc}", paths.log) from exc
    finally:
        client.close()


# --- stopping ---------------------------------------------------------------------------


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) != os.getpid()]


def engine_processes(state_root: Path | str) -> list[int]:
    """Pids of the dockerd, containerd and shim processes of the engine of ``state_root``.

    Only processes whose command line names this engine's exec root, data root or socket.
    """
    markers = engine_paths(state_root).markers()
    found = []
    for pid in _pids():
        argv = _proc_cmdline(pid)
        if argv and os.path.basename(argv[0]) in _ENGINE_PROGRAMS and any(m in arg for arg in argv for m in markers):
            found.append(pid)
    return found


def _children(parents: set[int]) -> list[int]:
    return [pid for pid in _pids() if _proc_ppid(pid) in parents]


def _kill_all(pids: list[int], timeout: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _unescape_mount(field_text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mounts_under(roots: list[Path]) -> list[str]:
    """Mount points at or below any of ``roots``, deepest first."""
    prefixes = [str(root) for root in roots]
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape_mount(fields[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def _remove_gwbridge(paths: EnginePaths) -> None:
    """Delete the host bridge ``docker_gwbridge`` if this engine made it and no engine runs now."""
    try:
        record = json.loads(paths.record.read_text())
    except (OSError, ValueError):
        return
    if record.get("gwbridge_preexisting", True) or not GWBRIDGE_SYSFS.exists():
        return
    for pid in _pids():
        argv = _proc_cmdline(pid)
        if argv and os.path.basename(argv[0]) == "dockerd":
            return  # another engine may use it
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "delete", "docker_gwbridge"], capture_output=True, check=False)


def stop(state_root: Path | str, timeout: float = 20.0) -> None:
    """Stop the engine of ``state_root`` and everything it left; remove its directories.

    Quiet when nothing runs. SIGTERM to the recorded ``dockerd`` (it stops its containers
    and containerd), SIGKILL after ``timeout``; then any leftover containerd/shim of this
    engine and the container processes under those shims; then the host bridge
    ``docker_gwbridge`` if this engine made it and no other engine runs; then ``umount -l``
    of whatever is still mounted under its directories, and removal of those directories.
    """
    paths = engine_paths(state_root)
    procs.stop(paths.state_root, "dockerd", timeout=timeout)
    leftovers = engine_processes(paths.state_root)
    if leftovers:
        shims = {pid for pid in leftovers if "shim" in os.path.basename((_proc_cmdline(pid) or [""])[0])}
        containers = [pid for pid in _children(shims) if pid not in leftovers]
        _kill_all(containers, 0.0)  # the container init: SIGKILL ends its pid namespace
        _kill_all(leftovers, 3.0)
    _remove_gwbridge(paths)
    roots = [paths.data_root, paths.exec_root, paths.run, paths.base]
    for point in mounts_under(roots):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for directory in (paths.data_root, paths.exec_root, paths.run, paths.base):
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
