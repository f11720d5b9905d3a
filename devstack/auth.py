"""Extra Distribution registries that require authentication, for tests of Berth's client.

Each one is a real ``docker-registry serve`` on a free loopback port, serving TLS with the
devstack server certificate (so the devstack CA verifies it), with its files under
``STATE/auth/NAME/`` and its pid recorded by :mod:`devstack.procs` in ``STATE/pids/`` -
so ``devstack.down(STATE)`` stops it too, or :func:`stop` does it alone. ``STATE`` is a
devstack state directory (it must hold ``ca/`` and ``tls/`` from ``devstack.up``).

- :func:`start_basic_auth_registry`: ``auth.htpasswd`` with a bcrypt file. The bcrypt
  hash comes from the system's ``crypt(3)`` (libxcrypt, method ``$2b$``) through ctypes,
  falling back to ``htpasswd -B`` (apache2-utils) when that is installed; no Python
  package is needed.
- :func:`start_token_auth_registry`: ``auth.token`` and a small real token server
  (:class:`TokenServer`, HTTPS in a thread of the calling process) that checks HTTP Basic
  and issues ES256 JWTs whose ``x5c`` header holds a self-signed signing certificate that
  is the registry's ``rootcertbundle``.
- :func:`start_plain_registry`: no auth, its own storage (e.g. for a catalog written
  directly into the storage layout).

Each auth registry is seeded with a few images (:data:`SEEDED`).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import datetime as dt
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from devstack import procs, seed, tls
from devstack.files import write_private
from devstack.ports import LOOPBACK, free_ports
from devstack.registry import REGISTRY, render_config

SERVICE = "berth-test"
ISSUER = "berth-test-issuer"
TOKEN_LIFETIME = 300
BCRYPT_COST = 5  # Distribution checks the hash on every request: keep it cheap (Go's minimum is 4)
_PORT_ATTEMPTS = 3

#: What every auth registry is seeded with: repository -> tags (specs from the demo seed).
SEEDED = {"team/app/api": ("1.0.0", "1.1.0"), "centos": ("7",)}


class AuthRegistryError(RuntimeError):
    """An auth registry or its token server could not be set up or did not become ready."""


# --- bcrypt for htpasswd ----------------------------------------------------------------

_crypt_lock = threading.Lock()


def bcrypt_hash(password: str, cost: int = BCRYPT_COST) -> str:
    """A bcrypt hash (``$2b$``/``$2y$``) of ``password``, as Distribution's htpasswd wants."""
    hashed = _libcrypt_bcrypt(password, cost) or _htpasswd_bcrypt(password, cost)
    if not hashed:
        raise AuthRegistryError("no bcrypt available: libcrypt lacks $2b$ and htpasswd (apache2-utils) is missing")
    return hashed


def _libcrypt_bcrypt(password: str, cost: int) -> str | None:
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.crypt_gensalt.restype = ctypes.c_char_p
        lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    except (OSError, AttributeError):
        return None
    with _crypt_lock:  # crypt() and crypt_gensalt() return static buffers
        setting = lib.crypt_gensalt(b"$2b$", cost, None, 0)  # NULL: libcrypt draws the salt from the OS
        result = lib.crypt(password.encode(), setting) if setting else None
    text = result.decode() if result else ""
    return text if text.startswith("$2b$") and len(text) == 60 else None


def _htpasswd_bcrypt(password: str, cost: int) -> str | None:
    binary = shutil.which("htpasswd")
    if not binary:
        return None
    done = subprocess.run(
        [binary, "-niBC", str(cost), "user"], input=password, capture_output=True, text=True, check=False
    )
    line = done.stdout.strip()
    return line.split(":", 1)[1] if done.returncode == 0 and ":" in line else None


# --- starting registries ----------------------------------------------------------------


def _devstack_files(state_dir: Path) -> dict[str, Path]:
    root = Path(state_dir).resolve()
    files = {
        "root": root,
        "ca_cert": root / "ca" / "ca.crt",
        "ca_key": root / "ca" / "ca.key",
        "cert": root / "tls" / "server.crt",
        "key": root / "tls" / "server.key",
    }
    for what in ("ca_cert", "cert", "key"):
        if not files[what].is_file():
            raise AuthRegistryError(f"{files[what]} is missing: run devstack.up({str(root)!r}) first")
    return files


def _wait_ready(record: procs.ProcRecord, base_url: str, ca_cert: Path, timeout: float = 15.0) -> None:
    """Wait until ``GET /v2/`` answers (200, or 401 with a challenge) over verified TLS."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as session:
        session.trust_env = False
        while True:
            if not procs.is_running(record):
                raise AuthRegistryError(f"registry exited: {procs.log_tail(record.log, 2) or 'no output'}")
            try:
                response = session.get(f"{base_url}/v2/", verify=str(ca_cert), timeout=2)
                if response.status_code == 200 or (
                    response.status_code == 401 and response.headers.get("WWW-Authenticate")
                ):
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() > deadline:
                raise AuthRegistryError(f"GET {base_url}/v2/ not ready in {timeout:.0f}s ({last})")
            time.sleep(0.05)


def _start(state_dir: Path, name: str, auth_yaml: str) -> str:
    """Start registry ``name`` with ``auth_yaml`` appended to its config; return its base URL."""
    files = _devstack_files(state_dir)
    work = files["root"] / "auth" / name
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = files["root"] / "logs" / f"{name}.log"
    procs.stop(files["root"], name)  # a leftover of an earlier run under the same name
    for attempt in range(_PORT_ATTEMPTS):
        (port,) = free_ports(1)
        config = work / "config.yml"
        config.write_text(render_config(port, data, files["cert"], files["key"]) + auth_yaml)
        record = procs.start(files["root"], name, [REGISTRY, "serve", str(config)], log)
        base_url = f"https://{LOOPBACK}:{port}"
        try:
            _wait_ready(record, base_url, files["ca_cert"])
            return base_url
        except AuthRegistryError as exc:
            procs.stop(files["root"], name)
            taken = "address already in use" in procs.log_tail(log, 5).lower()
            if attempt + 1 < _PORT_ATTEMPTS and taken:
                continue
            raise AuthRegistryError(f"{name}: {exc} (log: {log})") from exc
    raise AssertionError("unreachable")


def start_registry(state_dir: Path | str, name: str, auth_yaml: str) -> str:
    """Start registry ``name`` with ``auth_yaml`` (an ``auth:`` section) appended to its config; return its URL.

    For a registry whose token server is not :class:`TokenServer` (e.g. Berth itself).
    """
    return _start(Path(state_dir), name, auth_yaml)


def stop(state_dir: Path | str, name: str) -> None:
    """Stop registry ``name`` started under ``state_dir`` (by its recorded pid)."""
    procs.stop(Path(state_dir).resolve(), name)


def data_dir(state_dir: Path | str, name: str) -> Path:
    """The storage root of registry ``name``."""
    return Path(state_dir).resolve() / "auth" / name / "data"


def start_plain_registry(state_dir: Path | str, name: str = "plain-registry") -> str:
    """Start a registry without auth and with its own (initially empty) storage; return its URL."""
    return _start(Path(state_dir), name, "")


def seed_images(session: requests.Session, base_url: str) -> dict[str, dict[str, str]]:
    """Push :data:`SEEDED` through ``session`` (already authenticated); return repo -> tag -> digest."""
    demo = seed.demo_images()
    result: dict[str, dict[str, str]] = {}
    for repo, tags in SEEDED.items():
        result[repo] = {}
        for tag in tags:
            spec = demo[repo][tag]
            assert isinstance(spec, seed.ImageSpec)
            pushed = seed.push_image(session, base_url, repo, seed.build_image(spec), [tag], oci=True)
            result[repo][tag] = pushed.digest
    return result


def start_basic_auth_registry(
    state_dir: Path | str, username: str, password: str, *, name: str = "basic-registry", seed_it: bool = True
) -> tuple[str, str]:
    """Start a registry with ``auth.htpasswd`` for one user; return ``(base_url, name)``."""
    files = _devstack_files(Path(state_dir))
    work = files["root"] / "auth" / name
    work.mkdir(parents=True, exist_ok=True)
    htpasswd = work / "htpasswd"
    write_private(htpasswd, f"{username}:{bcrypt_hash(password)}\n")
    auth_yaml = f"auth:\n  htpasswd:\n    realm: {SERVICE}\n    path: {json.dumps(str(htpasswd))}\n"
    base_url = _start(files["root"], name, auth_yaml)
    if seed_it:
        try:
            with seed.registry_session(str(files["ca_cert"])) as session:
                session.auth = (username, password)
                seed_images(session, base_url)
        except BaseException:
            stop(files["root"], name)
            raise
    return base_url, name


def start_token_auth_registry(
    state_dir: Path | str,
    users: Mapping[str, str],
    *,
    pushers: tuple[str, ...] = (),
    name: str = "token-registry",
    seed_it: bool = True,
) -> tuple[str, TokenServer]:
    """Start a registry with ``auth.token`` and its token server; return ``(registry_url, token_server)``.

    ``users`` maps usernames to passwords; every user may pull and list the catalog,
    ``pushers`` may also push. Seeding uses an extra, internal pusher account; the token
    server's counters are reset afterwards. Close the token server and :func:`stop` the
    registry when done (``devstack.down`` stops the registry, not the server thread).
    """
    files = _devstack_files(Path(state_dir))
    work = files["root"] / "auth" / name
    work.mkdir(parents=True, exist_ok=True)
    seeder = ("devstack-seeder", secrets.token_urlsafe(16))
    accounts = {**users, seeder[0]: seeder[1]} if seed_it else dict(users)
    signing_cert = work / "token-signing.crt"
    server = TokenServer(
        accounts,
        pushers=(*pushers, seeder[0]) if seed_it else pushers,
        cert=files["cert"],
        key=files["key"],
        signing_cert_path=signing_cert,
    )
    try:
        auth_yaml = (
            "auth:\n  token:\n"
            f"    realm: {json.dumps(server.realm)}\n"
            f"    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    rootcertbundle: {json.dumps(str(signing_cert))}\n"
        )
        base_url = _start(files["root"], name, auth_yaml)
        if seed_it:
            try:
                scopes = [f"repository:{repo}:pull,push" for repo in SEEDED]
                with seed.registry_session(str(files["ca_cert"])) as session:
                    response = session.get(
                        server.realm, params={"service": SERVICE, "scope": scopes}, auth=seeder, timeout=10
                    )
                    response.raise_for_status()
                    session.headers["Authorization"] = f"Bearer {response.json()['token']}"
                    seed_images(session, base_url)
            except BaseException:
                stop(files["root"], name)
                raise
            server.reset_counts()
    except BaseException:
        server.close()
        raise
    return base_url, server


# --- the token server -------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _make_signing_cert(path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed P-256 certificate for token signing; written to ``path`` (the rootcertbundle)."""
    key = tls.new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Berth devstack token signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tls.write_certificate(cert, path)
    return key, cert


class TokenServer:
    """A Docker token server (HTTPS, in a daemon thread): HTTP Basic in, ES256 JWT out.

    ``requests`` counts every token request, ``by_scope`` counts them per requested scope
    (``""`` for none), ``refused`` counts answered 401s.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        pushers: tuple[str, ...] = (),
        cert: Path,
        key: Path,
        signing_cert_path: Path,
        service: str = SERVICE,
        issuer: str = ISSUER,
        lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        self.users = dict(users)
        self.pushers = set(pushers)
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self._signing_key, signing_cert = _make_signing_cert(signing_cert_path)
        self._x5c = base64.b64encode(signing_cert.public_bytes(serialization.Encoding.DER)).decode()
        self._lock = threading.Lock()
        self.requests = 0
        self.refused = 0
        self.by_scope: Counter[str] = Counter()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._httpd = _TLSServer((LOOPBACK, 0), _TokenHandler, context)
        self._httpd.token_server = self
        self.port = self._httpd.server_address[1]
        self.realm = f"https://{LOOPBACK}:{self.port}/token"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="token-server", daemon=True
        )
        self._thread.start()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = self.refused = 0
            self.by_scope.clear()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- called from the handler thread ---

    def grant(self, user: str, scopes: list[str]) -> list[dict[str, object]]:
        """The ``access`` claim for ``user`` asking for ``scopes`` (``type:name:actions``)."""
        access: list[dict[str, object]] = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, wanted = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if kind == "repository":
                allowed = {"pull", "push"} if user in self.pushers else {"pull"}
            elif kind == "registry" and name == "catalog":
                allowed = {"*"}
            else:
                allowed = set()
            actions = [action for action in wanted if action in allowed]
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        return access

    def issue(self, user: str, access: list[dict[str, object]]) -> dict[str, object]:
        """A signed token and the JSON answer carrying it."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self._signing_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        token = f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        issued = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": token, "access_token": token, "expires_in": self.lifetime, "issued_at": issued}


class _TLSServer(ThreadingHTTPServer):
    """Threaded HTTP server doing the TLS handshake in each connection's own thread."""

    daemon_threads = True
    token_server: TokenServer

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _answer(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.token_server
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        scopes = query.get("scope", [])
        with owner._lock:
            owner.requests += 1
            for scope in scopes or [""]:
                owner.by_scope[scope] += 1
        if parts.path != "/token":
            self._answer(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            return
        if query.get("service", [None])[0] != owner.service:
            self._answer(400, {"errors": [{"code": "INVALID_REQUEST", "message": "unknown service"}]})
            return
        user = self._basic_user(owner.users)
        if user is None:
            with owner._lock:
                owner.refused += 1
            self._answer(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                {"WWW-Authenticate": f'Basic realm="{owner.service}"'},
            )
            return
        self._answer(200, owner.issue(user, owner.grant(user, scopes)))

    def _basic_user(self, users: Mapping[str, str]) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = users.get(user)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return None
        return user
