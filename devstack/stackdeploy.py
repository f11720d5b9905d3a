"""Berth deployed as users deploy it: ``docker stack deploy -c stack.yml`` on the devstack Swarm.

:class:`BerthStack` does what the README's deployment section tells an operator to do,
with the devstack's slapd, registry, CA and engine in place of the real ones: the Swarm
secrets, the node label, the existing CA copied into Berth's volume with the image itself,
then ``docker stack deploy`` with settings from the environment. The front runs
``deploy/nginx.conf`` with only its two ports changed (it listens on a free loopback port,
:attr:`BerthStack.front_url`, and proxies to Berth's) in Debian's nginx
(``berth-front:devstack``, since nothing can be pulled here); the tests also talk to
Berth's loopback port directly, as the front does. It uses Debian's docker CLI
(``/usr/bin/docker``, 20.10) when there is one, since that is what the file must suit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import requests

from devstack.ports import LOOPBACK, free_port

PROJECT = Path(__file__).resolve().parent.parent
STACK = "berth"
SERVICE = f"{STACK}_berth"
VOLUME = f"{STACK}_berth-data"
#: devstack settings that stack.yml passes through to Berth unchanged.
PASSED = (
    "BERTH_LDAP_URL",
    "BERTH_LDAP_BIND_DN",
    "BERTH_LDAP_USER_BASE",
    "BERTH_LDAP_GROUP_BASE",
    "BERTH_LDAP_ADMIN_GROUP",
    "BERTH_LDAP_OPS_GROUP",
    "BERTH_REGISTRY_URL",
    "BERTH_REGISTRY_IMAGE",
    "BERTH_SWARM_SERVICE",
    "BERTH_SWARM_HOST_NETWORK",
    "BERTH_NFS_PATH",
)


class DeployError(RuntimeError):
    """A docker command failed or Berth did not become healthy."""


def docker_cli() -> str:
    """Debian's docker CLI if installed, else whatever ``docker`` is on PATH."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


class BerthStack:
    """Berth's stack on the devstack engine described by ``env`` (a devstack environment)."""

    def __init__(self, env: dict[str, str], image: str) -> None:
        self.env = env
        self.image = image
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.front_port = free_port()
        self.front_url = f"https://{LOOPBACK}:{self.front_port}"
        self.front_image = env.get("DEVSTACK_FRONT_IMAGE")
        self.socket = env["DOCKER_HOST"].removeprefix("unix://")
        self.warnings = ""

    def docker(self, *args: str, stdin: bytes | None = None, timeout: float = 120) -> str:
        """Run the docker CLI against the devstack engine; its stdout, or DeployError."""
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
        environ["DOCKER_HOST"] = self.env["DOCKER_HOST"]
        done = subprocess.run(
            [docker_cli(), *args], input=stdin, capture_output=True, env=environ, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise DeployError(f"docker {' '.join(args[:3])}: {done.stderr.decode(errors='replace').strip()[-500:]}")
        return done.stdout.decode(errors="replace")

    def prepare(self) -> None:
        """Secrets, the node label and the CA in Berth's volume, as the README says."""
        state = Path(self.env["DEVSTACK_STATE_DIR"])
        self.docker("secret", "create", "berth_secret_key", "-", stdin=self.env["BERTH_SECRET_KEY"].encode())
        password = self.env["BERTH_LDAP_BIND_PASSWORD"].encode()
        self.docker("secret", "create", "berth_ldap_bind_password", "-", stdin=password)
        self.docker("secret", "create", "berth_tls_crt", str(state / "tls" / "server.crt"))
        self.docker("secret", "create", "berth_tls_key", str(state / "tls" / "server.key"))
        node = self.docker("info", "--format", "{{.Swarm.NodeID}}").strip()
        self.docker("node", "update", "--label-add", "berth=true", node)
        self.docker("volume", "create", VOLUME)
        copy = (
            "install -d -o 10001 -m 700 /data/ca && install -o 10001 -m 600 /import/ca.key /data/ca/"
            " && install -o 10001 -m 644 /import/ca.crt /data/ca/"
            " && install -o 10001 -m 644 /import/ca.crt /data/directory-ca.crt"
        )
        mounts = ["-v", f"{VOLUME}:/data", "-v", f"{state / 'ca'}:/import:ro"]
        self.docker("run", "--rm", "--network", "none", "--user", "0", *mounts, self.image, "sh", "-c", copy)

    def front_config(self) -> Path:
        """``deploy/nginx.conf`` with this stack's ports (listen, Berth's), written to the state directory."""
        conf = (PROJECT / "deploy" / "nginx.conf").read_text()
        for old, new in {
            "listen 443 ssl;": f"listen {LOOPBACK}:{self.front_port} ssl;",
            "server 127.0.0.1:8000;": f"server {LOOPBACK}:{self.port};",
        }.items():
            if old not in conf:
                raise DeployError(f"deploy/nginx.conf no longer has {old!r}")
            conf = conf.replace(old, new)
        path = Path(self.env["DEVSTACK_STATE_DIR"]) / "front-nginx.conf"
        path.write_text(conf)
        return path

    def stack_env(self) -> dict[str, str]:
        """The variables ``docker stack deploy`` reads stack.yml's ``${...}`` from."""
        socket_gid = str(os.stat(self.socket).st_gid)
        front = {"BERTH_FRONT_REPLICAS": "0", "BERTH_FRONT_IMAGE": self.image}  # any local image: nothing is pulled
        if self.front_image:
            front = {
                "BERTH_FRONT_REPLICAS": "1",
                "BERTH_FRONT_IMAGE": self.front_image,
                "BERTH_NGINX_CONF": str(self.front_config()),
            }
        return {k: self.env[k] for k in PASSED if k in self.env} | {
            "BERTH_IMAGE": self.image,
            "BERTH_BIND": f"{LOOPBACK}:{self.port}",
            "BERTH_PUBLIC_URL": self.base_url,
            "BERTH_SECURE_COOKIES": "false",  # plain HTTP to Berth's port: no front here
            "BERTH_TRUSTED_PROXIES": "127.0.0.1/32",
            "BERTH_LDAP_START_TLS": self.env.get("BERTH_LDAP_START_TLS", "false"),
            # the devstack CA signed slapd's certificate; a copy apart from Berth's CA dir, which rotate-ca rewrites
            "BERTH_LDAP_CA": "/data/directory-ca.crt",
            **front,
            "DOCKER_GID": socket_gid,
            "DOCKER_SOCKET": self.socket,
        }

    def deploy(self) -> None:
        """``docker stack deploy -c stack.yml berth`` with :meth:`stack_env` only."""
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
        environ |= {"DOCKER_HOST": self.env["DOCKER_HOST"]} | self.stack_env()
        argv = [docker_cli(), "stack", "deploy", "--resolve-image", "never", "-c", "stack.yml", STACK]
        done = subprocess.run(argv, cwd=PROJECT, capture_output=True, env=environ, timeout=120, check=False)
        if done.returncode != 0:
            raise DeployError(f"docker stack deploy: {done.stderr.decode(errors='replace').strip()[-500:]}")
        self.warnings = done.stderr.decode(errors="replace")

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds until ``/healthz`` answers 200; DeployError naming the task's state if never."""
        began = time.monotonic()
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() - began < timeout:
                try:
                    if session.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                        return time.monotonic() - began
                except requests.RequestException:
                    pass
                time.sleep(0.1)
        tasks = self.docker("service", "ps", "--no-trunc", SERVICE)
        raise DeployError(f"Berth not healthy in {timeout:.0f}s: {tasks[-800:]}")

    def wait_front(self, ca: Path, timeout: float = 60) -> float:
        """Seconds until the front answers ``/healthz`` over TLS verified with ``ca``; DeployError if never."""
        began = time.monotonic()
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() - began < timeout:
                try:
                    if session.get(f"{self.front_url}/healthz", timeout=2, verify=str(ca)).status_code == 200:
                        return time.monotonic() - began
                except requests.RequestException:
                    pass
                time.sleep(0.2)
        tasks = self.docker("service", "ps", "--no-trunc", f"{STACK}_nginx")
        raise DeployError(f"the front did not answer in {timeout:.0f}s: {tasks[-800:]}")

    def container(self) -> str:
        """The ID of Berth's running container."""
        found = self.docker("ps", "-q", "--filter", f"name={SERVICE}.", "--filter", "status=running").split()
        if len(found) != 1:
            raise DeployError(f"expected one running Berth container, found {found}")
        return found[0]

    def exec(self, *argv: str, timeout: float = 60) -> str:
        """Run a command in Berth's container (as its user, with its environment)."""
        return self.docker("exec", self.container(), *argv, timeout=timeout)

    def remove(self) -> None:
        """``docker stack rm``; quiet if it is gone already."""
        with contextlib.suppress(DeployError):
            self.docker("stack", "rm", STACK)
