"""Checks and small actions shared by the setup and rotation jobs.

Connecting to the Swarm manager, naming certificate secrets, judging Berth's held
certificate (``ca_dir/server.crt``), and verifying what the registry serves: a TLS
handshake verified against Berth's CA with the expected fingerprint, and ``GET /v2/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from berth.config import Settings
from berth.errors import JobFailed, NotFound, UpstreamUnavailable
from berth.jobs.runner import StepContext
from berth.swarm import deploy as sd
from berth.swarm.inspect import describe_host, docker_client
from berth.tls.certs import CertificateInfo, describe, matches_hostname, served_certificate
from berth.tls.issue import load_ca

#: A held certificate with fewer days left than this is replaced by setup.
RENEW_DAYS = 30


def connect(settings: Settings) -> docker.DockerClient:
    """A client of the Swarm manager; UpstreamUnavailable when there is none."""
    try:
        return docker_client(settings.docker_host, timeout=30)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise UpstreamUnavailable(
            f"No Docker engine answers at {describe_host(settings.docker_host)}: {exc}", upstream="docker"
        ) from None


def secret_names(settings: Settings, fingerprint: str) -> tuple[str, str]:
    """The Swarm secret names of a certificate and its key (both by the certificate's fingerprint)."""
    return (
        sd.versioned_name(settings.swarm_service, "crt", fingerprint),
        sd.versioned_name(settings.swarm_service, "key", fingerprint),
    )


def held_path(settings: Settings) -> Path:
    """Berth's copy of the certificate the registry should serve (public)."""
    return settings.ca_dir / "server.crt"


def chains_to(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether ``cert`` is signed by ``ca_cert``'s key."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_served(settings: Settings, fingerprint: str, ctx: StepContext, wait: float = 15.0) -> CertificateInfo:
    """Wait until every replica serves the certificate ``fingerprint``, verified against the CA.

    Behind a balancer each handshake may reach another replica, so one good handshake
    proves little: it takes :func:`handshakes_needed` good ones in a row.
    """
    ca_file = settings.ca_dir / "ca.crt"
    needed = handshakes_needed(settings)
    deadline = time.monotonic() + wait
    in_a_row = 0
    while True:
        served = served_certificate(settings.registry_url, ca_file)
        if served.verified and served.info and served.info.sha256 == fingerprint:
            in_a_row += 1
            if in_a_row >= needed:
                ctx.log(f"TLS handshakes verified against {ca_file}: {needed} in a row serve {fingerprint}.")
                return served.info
            continue
        in_a_row = 0
        if time.monotonic() > deadline:
            if served.info is None or not served.verified:
                raise JobFailed(served.error or f"No verified TLS handshake with {settings.registry_url}.")
            raise JobFailed(
                f"{settings.registry_url} serves the certificate {served.info.sha256}, not the expected {fingerprint}."
            )
        time.sleep(0.25)


def handshakes_needed(settings: Settings) -> int:
    """Handshakes in a row that reach every replica behind a round-robin balancer (two per replica, plus one)."""
    return 2 * (settings.registry_replicas or 1) + 1


def check_api(settings: Settings, ctx: StepContext) -> None:
    """``GET /v2/`` answers as a Distribution registry (TLS verified against Berth's CA)."""
    auth = (settings.registry_username, settings.registry_password or "") if settings.registry_username else None
    try:
        response = requests.get(
            f"{settings.registry_url}/v2/", verify=str(settings.ca_dir / "ca.crt"), auth=auth, timeout=10
        )
    except requests.RequestException as exc:
        raise JobFailed(f"GET {settings.registry_url}/v2/ failed: {type(exc).__name__}: {exc}") from None
    version = response.headers.get("Docker-Distribution-API-Version")
    if response.status_code not in (200, 401) or version != "registry/2.0":
        raise JobFailed(f"GET /v2/ answered HTTP {response.status_code} with API version {version!r}.")
    ctx.log(f"GET /v2/: HTTP {response.status_code}, Docker-Distribution-API-Version: {version}.")


def write_held(settings: Settings, pem: bytes, ctx: StepContext) -> None:
    """Write ``ca_dir/server.crt`` when it differs (public, 0644)."""
    path = held_path(settings)
    if path.is_file() and path.read_bytes() == pem:
        return
    path.write_bytes(pem)
    ctx.log(f"Wrote {path} (the certificate Berth expects the registry to serve).")


def held_certificate(settings: Settings, client: docker.DockerClient) -> tuple[x509.Certificate | None, str]:
    """Berth's held certificate if setup may keep it, else None; and why."""
    path = held_path(settings)
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        ca_cert, _ = load_ca(settings.ca_dir)
    except (OSError, ValueError, NotFound):
        return None, f"Berth holds no usable certificate at {path}"
    info = describe(cert)
    missing = [h for h in settings.registry_hostnames if not matches_hostname(info, h)]
    if not chains_to(cert, ca_cert):
        return None, f"the held certificate {info.sha256[:23]} does not chain to the CA"
    if missing:
        return None, f"the held certificate does not name {', '.join(missing)}"
    if info.days_left() <= RENEW_DAYS:
        return None, f"the held certificate has only {info.days_left():.0f} days left"
    absent = [n for n in secret_names(settings, info.sha256) if sd.find_object(client, "secret", n) is None]
    if absent:
        return None, f"its key is not in the Swarm (no secret {absent[0]})"
    return cert, f"{info.sha256[:23]}…, valid for {', '.join(info.names())} until {info.not_after:%Y-%m-%d}"


class DeployRun:
    """What the setup and rotation runs share: settings, the Swarm manager, the new certificate and key.

    The key stays in memory only (it goes into a Swarm secret, never to disk or a log).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client: docker.DockerClient | None = None
        self.cert: x509.Certificate | None = None
        self.key_pem: bytes | None = None

    def swarm(self) -> docker.DockerClient:
        """The Swarm manager's client, connected on first use."""
        if self.client is None:
            self.client = connect(self.settings)
        return self.client
