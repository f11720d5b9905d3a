"""Bring the whole local stack up or down, and describe it as environment variables.

``up`` makes (or reuses) the CA and server certificate, starts slapd and the registry on
free loopback ports, seeds the registry, writes ``DIR/env`` and returns the environment.
A second ``up`` while everything still runs changes nothing and returns the same
environment; if something died, the stack is stopped and started afresh (same secrets and
CA, possibly new ports). ``down`` stops exactly the processes ``up`` recorded.

``up(nodes=N)`` starts N engines in network namespaces of their own as one Swarm, with a
TCP balancer in front of the registry replicas (:mod:`devstack.nodes`); its
``BERTH_REGISTRY_URL`` is the balancer.

``up(swarm=True)`` starts, instead of the plain registry process, a private Docker engine
in Swarm mode running the registry as the Swarm service ``registry``
(:mod:`devstack.swarm`), and adds ``DOCKER_HOST``, ``BERTH_REGISTRY_IMAGE``,
``BERTH_SWARM_SERVICE``, ``BERTH_CA_DIR`` and ``DEVSTACK_SWARM=1`` to the environment.
``up(swarm=True, berth_image=True)`` also builds Berth's image on that engine from a
locally made base (:mod:`devstack.image`) and names it as ``BERTH_IMAGE``; on a running
Swarm stack without it, it builds the image there and adds it.
A plain ``up`` on a running Swarm stack returns that stack's environment (a superset); an
``up(swarm=True)`` on a running plain stack restarts it with the engine.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack import ad, ldap, procs, registry, seed, tls
from devstack.files import write_private
from devstack.ports import LOOPBACK, free_ports

COMPONENTS = ("slapd", "registry")  # start order; stopped in reverse
SWARM_COMPONENTS = ("slapd", "dockerd")  # with --swarm the registry is a task of dockerd
_STOP_ORDER = ("dockerd", "registry", "slapd", "samba")
DIRECTORIES = ("openldap", "ad")
MIN_NODES, MAX_NODES = 2, 4
DEFAULT_STATE_DIR = ".devstack"
_PORT_ATTEMPTS = 3


class StackError(RuntimeError):
    """A component failed; ``str()`` is one line naming it and its log file."""

    def __init__(self, component: str, reason: str, log: Path | str | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log = str(log) if log else None
        where = f" (log: {self.log})" if self.log else ""
        super().__init__(f"{component}: {reason}{where}")


class _Paths:
    """Where everything lives under one state directory."""

    def __init__(self, state_dir: Path | str) -> None:
        self.root = Path(state_dir).expanduser().resolve()
        self.ca_dir = self.root / "ca"
        self.ca_cert = self.ca_dir / "ca.crt"
        self.ca_key = self.ca_dir / "ca.key"
        self.tls_dir = self.root / "tls"
        self.server_cert = self.tls_dir / "server.crt"
        self.server_key = self.tls_dir / "server.key"
        # The CA that signed slapd's certificate, apart from Berth's CA directory: a company's
        # directory CA is its own, and rotate-ca replaces Berth's ca.crt.
        self.directory_ca = self.tls_dir / "directory-ca.crt"
        self.ldap_dir = self.root / "ldap"
        self.registry_dir = self.root / "registry"
        self.registry_data = self.registry_dir / "data"
        self.berth_dir = self.root / "berth"
        self.logs = self.root / "logs"
        self.secrets = self.root / "secrets.json"
        self.state = self.root / "state.json"
        self.env_file = self.root / "env"
        self.lock = self.root / ".lock"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


@contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    """Serialize ``up``/``down`` on one state directory."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _secrets(paths: _Paths) -> dict[str, str]:
    """Load the stack's secrets, generating (once) any that are missing."""
    try:
        values = json.loads(paths.secrets.read_text())
    except (OSError, ValueError):
        values = {}
    wanted = {
        "secret_key": lambda: secrets.token_urlsafe(48),
        "ldap_root_password": lambda: secrets.token_urlsafe(24),
        "ldap_service_password": lambda: secrets.token_urlsafe(24),
        "registry_http_secret": lambda: secrets.token_urlsafe(32),
    }
    changed = False
    for name, make in wanted.items():
        if not isinstance(values.get(name), str) or not values[name]:
            values[name] = make()
            changed = True
    if changed:
        write_private(paths.secrets, json.dumps(values, indent=2) + "\n")
    return values


def _ensure_tls(paths: _Paths) -> None:
    """Make the CA unless both its files exist; issue the server certificate when needed."""
    if not (paths.ca_cert.is_file() and paths.ca_key.is_file()):
        tls.make_ca(paths.ca_cert, paths.ca_key)
    if not (paths.server_key.is_file() and tls.server_cert_usable(paths.server_cert, paths.ca_cert)):
        tls.issue_server_cert(paths.ca_cert, paths.ca_key, paths.server_cert, paths.server_key)
        paths.directory_ca.write_bytes(paths.ca_cert.read_bytes())
    if not paths.directory_ca.is_file():
        paths.directory_ca.write_bytes(paths.ca_cert.read_bytes())


def _environment(paths: _Paths, ports: dict[str, int], values: dict[str, str], directory: str) -> dict[str, str]:
    common = {
        "BERTH_SECRET_KEY": values["secret_key"],
        "BERTH_DATA_DIR": str(paths.berth_dir),
        "BERTH_REGISTRY_URL": f"https://{LOOPBACK}:{ports['registry']}",
        "BERTH_REGISTRY_CA": str(paths.ca_cert),
        "BERTH_LDAP_URL": f"ldap://{LOOPBACK}:{ports['ldap']}",
        "BERTH_LDAP_START_TLS": "true",  # slapd offers StartTLS with the devstack CA
        "BERTH_LDAP_CA": str(paths.directory_ca),
        "BERTH_LDAP_BIND_DN": ldap.SERVICE_DN,
        "BERTH_LDAP_BIND_PASSWORD": values["ldap_service_password"],
        "BERTH_LDAP_USER_BASE": ldap.PEOPLE_BASE,
        "BERTH_LDAP_USER_FILTER": ldap.USER_FILTER,
        "BERTH_LDAP_GROUP_BASE": ldap.GROUP_BASE,
        "BERTH_LDAP_ADMIN_GROUP": ldap.ADMIN_GROUP,
        "BERTH_LDAP_OPS_GROUP": ldap.OPS_GROUP,
        "BERTH_NFS_PATH": str(paths.registry_data),
        "DEVSTACK_LDAPS_URL": f"ldaps://{LOOPBACK}:{ports['ldaps']}",
        "DEVSTACK_LDAP_ROOT_DN": ldap.ROOT_DN,
        "DEVSTACK_LDAP_ROOT_PASSWORD": values["ldap_root_password"],
        "DEVSTACK_STATE_DIR": str(paths.root),
    }
    if directory == "ad":  # devstack.ad's environment replaces the OpenLDAP settings
        return {k: v for k, v in common.items() if not k.startswith(("BERTH_LDAP_", "DEVSTACK_LDAP"))}
    return common


def format_env(environment: dict[str, str]) -> str:
    """Return ``export NAME=value`` lines, values shell-quoted."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())


def _components_running(paths: _Paths, environment: dict[str, str]) -> bool:
    """Whether every process of the recorded stack is still the one that was started."""
    directory = "samba" if environment.get("DEVSTACK_DIRECTORY", "openldap") == "ad" else "slapd"
    if environment.get("DEVSTACK_NODES"):
        from devstack import nodes

        names = [item.split("=", 1)[0] for item in environment["DEVSTACK_NODES"].split(",")]
        records = [procs.load(paths.root, n) for n in (directory, "balancer")]
        records += [procs.load(nodes.node_root(paths.root, n), "dockerd") for n in names]
    else:
        chosen = SWARM_COMPONENTS if environment.get("DEVSTACK_SWARM") == "1" else COMPONENTS
        records = [procs.load(paths.root, directory if name == "slapd" else name) for name in chosen]
    return all(record is not None and procs.is_running(record) for record in records)


def _running_env(
    paths: _Paths, swarm: bool = False, directory: str | None = None, nodes: int = 0
) -> dict[str, str] | None:
    """Return the recorded environment if every component is still the process we started.

    With ``swarm``, only a stack that runs the Swarm engine counts as running; with
    ``directory``, only one with that directory server.
    """
    try:
        state = json.loads(paths.state.read_text())
        environment = dict(state["env"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    with_swarm = environment.get("DEVSTACK_SWARM") == "1"
    count = len(environment.get("DEVSTACK_NODES", "").split(",")) if environment.get("DEVSTACK_NODES") else 0
    if (swarm and not with_swarm) or (nodes and nodes != count):
        return None
    running_directory = environment.get("DEVSTACK_DIRECTORY", "openldap")
    if directory is not None and directory != running_directory:
        return None
    return environment if _components_running(paths, environment) else None


def _port_taken(record: procs.ProcRecord) -> bool:
    return "address already in use" in procs.log_tail(record.log, 5).lower()


def _start_slapd(paths: _Paths, values: dict[str, str]) -> dict[str, int]:
    try:
        conf = ldap.prepare(
            paths.ldap_dir,
            values["ldap_root_password"],
            values["ldap_service_password"],
            paths.ca_cert,
            paths.server_cert,
            paths.server_key,
        )
    except (ldap.LdapError, OSError) as exc:
        raise StackError("slapd", f"cannot prepare the directory: {exc}", paths.ldap_dir / "slapadd.log") from exc
    for attempt in range(_PORT_ATTEMPTS):
        ldap_port, ldaps_port = free_ports(2)
        record = ldap.start(paths.root, conf, ldap_port, ldaps_port, paths.log("slapd"))
        try:
            ldap.wait_ready(record, ldap_port, ldaps_port, paths.ca_cert, values["ldap_service_password"])
            return {"ldap": ldap_port, "ldaps": ldaps_port}
        except ldap.LdapError as exc:
            procs.stop(paths.root, "slapd")
            if attempt + 1 < _PORT_ATTEMPTS and _port_taken(record):
                continue
            raise StackError("slapd", f"failed to start: {exc}", record.log) from exc
    raise AssertionError("unreachable")


def _start_registry(paths: _Paths) -> int:
    log = paths.log("registry")
    for attempt in range(_PORT_ATTEMPTS):
        (port,) = free_ports(1)
        try:
            config = registry.prepare(paths.registry_dir, port, paths.server_cert, paths.server_key, log)
        except OSError as exc:
            raise StackError("registry", f"cannot write its configuration: {exc}", log) from exc
        record = registry.start(paths.root, config, log)
        try:
            registry.wait_ready(record, f"https://{LOOPBACK}:{port}", paths.ca_cert)
            return port
        except registry.RegistryError as exc:
            procs.stop(paths.root, "registry")
            if attempt + 1 < _PORT_ATTEMPTS and _port_taken(record):
                continue
            raise StackError("registry", f"failed to start: {exc}", log) from exc
    raise AssertionError("unreachable")


def _start_swarm(paths: _Paths, values: dict[str, str]) -> tuple[dict[str, int], dict[str, str], dict[str, float]]:
    """Start the engine and the registry service; return its ports, env additions and timings."""
    from devstack import swarm

    paths.registry_dir.mkdir(parents=True, exist_ok=True)
    try:
        started = swarm.start(
            paths.root,
            data_dir=paths.registry_data,
            server_cert=paths.server_cert,
            server_key=paths.server_key,
            ca_cert=paths.ca_cert,
            http_secret=values["registry_http_secret"],
            config_copy=paths.registry_dir / "config.yml",
        )
    except swarm.SwarmError as exc:
        raise StackError(exc.component, exc.reason, exc.log) from exc
    except OSError as exc:
        raise StackError("dockerd", f"cannot prepare the engine: {exc}", paths.log("dockerd")) from exc
    extra = started.environment() | {"BERTH_CA_DIR": str(paths.ca_dir)}
    return {"registry": started.registry_port, "swarm": started.swarm_port}, extra, started.timings


def _start_nodes(paths: _Paths, values: dict[str, str], count: int) -> tuple[dict[str, int], dict[str, str], dict]:
    """Start the multi-node Swarm and its balancer; return ports, env additions and timings."""
    from devstack import nodes, swarm

    try:
        started = nodes.start(paths.root, count, data_dir=paths.registry_data, server_cert=paths.server_cert,
                              server_key=paths.server_key, ca_cert=paths.ca_cert,
                              http_secret=values["registry_http_secret"])  # fmt: skip
    except swarm.SwarmError as exc:
        raise StackError(exc.component, exc.reason, exc.log) from exc
    except OSError as exc:
        raise StackError("nodes", f"cannot prepare the nodes: {exc}", paths.log("balancer")) from exc
    extra = started.environment() | {"BERTH_CA_DIR": str(paths.ca_dir)}
    return {"registry": started.registry_port}, extra, started.timings


def _check_binaries(directory: str) -> None:
    needed = [("slapd", ldap.SLAPD), ("slapd", ldap.SLAPADD)] if directory == "openldap" else []
    needed += [("samba", ad.SAMBA), ("samba", ad.SAMBA_TOOL)] if directory == "ad" else []
    for component, binary in [*needed, ("registry", registry.REGISTRY)]:
        if not os.access(binary, os.X_OK):
            raise StackError(component, f"{binary} is not installed (Debian packages slapd, samba, docker-registry)")


def _start_directory(paths: _Paths, values: dict[str, str], directory: str) -> tuple[dict[str, int], dict[str, str]]:
    """Start slapd, or with ``directory="ad"`` a Samba AD DC; its ports and environment overrides."""
    if directory == "openldap":
        return _start_slapd(paths, values), {}
    try:
        extra = ad.up(paths.root, paths.ca_cert, paths.ca_key, paths.log("samba"), values["ldap_service_password"])
    except (ad.AdError, OSError) as exc:
        raise StackError("samba", str(exc), paths.log("samba")) from exc
    return {"ldap": ad.LDAP_PORT, "ldaps": ad.LDAPS_PORT}, extra


def up(
    state_dir: Path | str = DEFAULT_STATE_DIR,
    swarm: bool = False,
    directory: str = "openldap",
    nodes: int = 0,
    berth_image: bool = False,
) -> dict[str, str]:
    """Start the stack under ``state_dir`` (or find it running) and return its environment.

    With ``swarm`` the registry runs as a Swarm service of a private Docker engine; with
    ``nodes`` (2..4) as replicas on that many engines, each in its own namespaces. With
    ``directory="ad"`` the directory is a Samba AD domain controller (:mod:`devstack.ad`)
    instead of OpenLDAP. With ``berth_image`` (implies ``swarm``) Berth's image is built on
    that engine (``BERTH_IMAGE``). Raises :class:`StackError` after stopping whatever it
    started if a component fails.
    """
    swarm = swarm or berth_image
    if directory not in DIRECTORIES:
        raise StackError("directory", f"must be one of {', '.join(DIRECTORIES)}, not {directory!r}")
    paths = _Paths(state_dir)
    with _locked(paths):
        if nodes and not MIN_NODES <= nodes <= MAX_NODES:
            raise StackError("nodes", f"--nodes takes {MIN_NODES} to {MAX_NODES}, not {nodes}")
        running = _running_env(paths, swarm, directory, nodes)
        if running is not None:
            if berth_image and "BERTH_IMAGE" not in running:
                return _add_berth_image(paths, running)
            return running
        _stop_all(paths)  # whatever is left of a half-dead stack
        _check_binaries(directory)
        if swarm or nodes:
            from devstack import swarm as swarm_engine

            reason = swarm_engine.missing_reason()
            if reason:
                raise StackError("dockerd", reason)
        timings: dict[str, float] = {}
        try:
            for folder in (paths.berth_dir, paths.logs, paths.tls_dir, paths.ca_dir):
                folder.mkdir(parents=True, exist_ok=True)
            paths.ca_dir.chmod(0o700)
            values = _secrets(paths)
            try:
                _ensure_tls(paths)
            except Exception as exc:
                raise StackError("tls", f"cannot make the CA or server certificate: {exc}") from exc
            ports, extra = _start_directory(paths, values, directory)
            if nodes:
                swarm_ports, swarm_extra, timings = _start_nodes(paths, values, nodes)
            elif swarm:
                swarm_ports, swarm_extra, timings = _start_swarm(paths, values)
            if swarm or nodes:
                ports.update(swarm_ports)
                extra |= swarm_extra
            else:
                ports["registry"] = _start_registry(paths)
            environment = _environment(paths, ports, values, directory) | extra
            try:
                seed.seed_demo(environment["BERTH_REGISTRY_URL"], str(paths.ca_cert))
            except Exception as exc:
                log = paths.log("balancer" if nodes else "dockerd" if swarm else "registry")
                raise StackError("seed", f"pushing the demo images failed: {exc}", log) from exc
        except BaseException:
            _stop_all(paths)
            raise
        _record(paths, ports, environment, timings if (swarm or nodes) else None)
        if berth_image:
            return _add_berth_image(paths, environment)
        return environment


def _record(paths: _Paths, ports: dict[str, int], environment: dict[str, str], timings: dict | None) -> None:
    state: dict[str, object] = {"ports": ports, "env": environment}
    if timings is not None:
        state["swarm_timings"] = timings
    paths.state.write_text(json.dumps(state, indent=2) + "\n")
    write_private(paths.env_file, format_env(environment))


def _add_berth_image(paths: _Paths, environment: dict[str, str]) -> dict[str, str]:
    """Build Berth's image on the running engine; record it in the state and env file."""
    import docker
    import docker.errors

    from devstack import image

    client = docker.DockerClient(base_url=environment["DOCKER_HOST"], timeout=120)
    try:
        steps = image.berth_image(client, paths.log("berth-image"))
    except image.ImageError as exc:
        raise StackError("berth-image", exc.reason, exc.log or paths.log("berth-image")) from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise StackError("berth-image", str(exc)[:300], paths.log("berth-image")) from exc
    finally:
        client.close()
    state = json.loads(paths.state.read_text())
    environment = environment | {"BERTH_IMAGE": image.BERTH_IMAGE, "DEVSTACK_FRONT_IMAGE": image.FRONT_IMAGE}
    timings = dict(state.get("swarm_timings", {})) | steps
    _record(paths, state["ports"], environment, timings)
    return environment


def _stop_all(paths: _Paths) -> None:
    recorded = [record.name for record in procs.load_all(paths.root)]
    order = [name for name in _STOP_ORDER if name in recorded]
    order += [name for name in recorded if name not in order]
    if (paths.root / "nodes").is_dir():
        from devstack import nodes  # balancer, engines, namespaces, veths, bridge

        nodes.stop(paths.root)
    if "dockerd" in recorded or (paths.root / "docker").exists():
        from devstack import swarm  # the engine, its leftovers, mounts and directories

        swarm.stop(paths.root)
    for name in order:
        procs.stop(paths.root, name)


def swarm_timings(state_dir: Path | str = DEFAULT_STATE_DIR) -> dict[str, float]:
    """How long the steps of the last ``up --swarm`` took (seconds), or ``{}``."""
    try:
        state = json.loads(_Paths(state_dir).state.read_text())
        return {str(k): float(v) for k, v in state.get("swarm_timings", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def down(state_dir: Path | str = DEFAULT_STATE_DIR) -> None:
    """Stop what ``up`` started under ``state_dir``; quiet if nothing runs or the dir is absent.

    Data (CA, secrets, registry storage) stays, so the next ``up`` reuses it.
    """
    paths = _Paths(state_dir)
    if not paths.root.is_dir():
        return
    with _locked(paths):
        _stop_all(paths)
        paths.state.unlink(missing_ok=True)


def env(state_dir: Path | str = DEFAULT_STATE_DIR) -> dict[str, str]:
    """Return the environment of the running stack under ``state_dir``.

    Raises :class:`StackError` if it is not (fully) running.
    """
    paths = _Paths(state_dir)
    running = _running_env(paths) if paths.root.is_dir() else None
    if running is None:
        raise StackError("env", f"not running under {paths.root}; run `python -m devstack up`")
    return running
