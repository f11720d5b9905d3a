"""Registry bearer tokens: Berth's signing keys and the JWTs Distribution accepts.

Distribution (``auth.token``) trusts a token when its ``x5c`` header holds a certificate
that chains to ``rootcertbundle``, ``iss`` equals its configured issuer, ``aud`` its
service (a *string*: 2.8's ``ClaimSet.Audience`` is one), and ``nbf <= now < exp``.
Tokens are signed with PyJWT (ES256) rather than by hand: the JOSE encoding of an
ECDSA signature (raw r||s, not DER) is exactly the kind of detail a library gets right.

Keys live in ``DIR/current.{key,crt}`` (key 0600), made on first use under a file lock
so gunicorn workers agree. A rotation stages ``next`` (trusted, not yet signing), then
promotes it: ``current`` becomes ``previous`` and stays trusted until the next rotation.
:func:`SigningKeys.bundle_pem` is what the registry's ``rootcertbundle`` must hold. A
signer notices a promotion made by another process (a job, another gunicorn worker) by
the current certificate's file changing, and reloads before it signs.
"""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from berth.auth.scope import Scope
from berth.tls.issue import private_pem, self_signed, write_private

ISSUER = "berth"
LIFETIME = 300
SIGNING_DAYS = 5 * 365
SLOTS = ("current", "next", "previous")


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and the facts a token response carries."""

    token: str
    expires_in: int
    issued_at: str
    granted: tuple[Scope, ...]


def _new_signing_pair(days: int) -> tuple[bytes, bytes]:
    """A P-256 key and a self-signed certificate for it, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        self_signed(key, "Berth registry token signer", days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return private_pem(key), cert.public_bytes(serialization.Encoding.PEM)


class SigningKeys:
    """The token-signing key pairs under one directory."""

    def __init__(self, directory: Path, days: int = SIGNING_DAYS):
        self.directory = Path(directory)
        self.days = days
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._x5c: str = ""
        self._slot = "current"
        self._stamp: tuple[int, int] | None = None

    @contextmanager
    def _locked(self):
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _paths(self, slot: str) -> tuple[Path, Path]:
        return self.directory / f"{slot}.key", self.directory / f"{slot}.crt"

    def _write(self, slot: str, key_pem: bytes, cert_pem: bytes) -> None:
        key_path, cert_path = self._paths(slot)
        temporary = key_path.with_suffix(".key.tmp")
        write_private(temporary, key_pem)
        os.replace(temporary, key_path)
        cert_path.write_bytes(cert_pem)

    def load(self, slot: str = "current") -> SigningKeys:
        """Read the key of ``slot``; the current one is created (once, under the lock) when there is none."""
        with self._locked():
            key_path, cert_path = self._paths(slot)
            if slot == "current" and not (key_path.is_file() and cert_path.is_file()):
                self._write("current", *_new_signing_pair(self.days))
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            self._stamp = self._stamp_of(cert_path)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC key")
        self._key, self._slot = key, slot
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        return self

    @staticmethod
    def _stamp_of(path: Path) -> tuple[int, int] | None:
        try:
            status = path.stat()
        except OSError:
            return None
        return status.st_ino, status.st_mtime_ns

    def bundle_pem(self, slots: Iterable[str] = SLOTS) -> bytes:
        """The certificates of ``slots`` the registry should trust (default: all), PEM.

        They are sorted, so the same set of certificates is always the same bytes (and the
        same versioned Swarm secret), whichever slot each one sits in.
        """
        pems = {p.read_bytes() for slot in slots if (p := self._paths(slot)[1]).is_file()}
        return b"".join(sorted(pems))

    def stage_next(self) -> None:
        """Make the key a rotation will switch to; it is in the bundle but signs nothing yet."""
        with self._locked():
            self._write("next", *_new_signing_pair(self.days))

    def promote_next(self) -> None:
        """Sign with the staged key from now on; the old one stays trusted as ``previous``."""
        with self._locked():
            next_key, next_cert = self._paths("next")
            if not next_key.is_file():
                raise FileNotFoundError("no staged signing key: stage_next() first")
            current_key, current_cert = self._paths("current")
            os.replace(current_cert, self._paths("previous")[1])
            current_key.unlink()
            os.replace(next_key, current_key)
            os.replace(next_cert, current_cert)
        self.load()

    def discard_next(self) -> None:
        """Forget a staged key (a rotation that failed before promoting it)."""
        with self._locked():
            for path in self._paths("next"):
                path.unlink(missing_ok=True)

    def sign(self, claims: dict) -> str:
        """The compact JWS of ``claims`` under the current key, with ``x5c``."""
        current = self._slot == "current"
        if self._key is None or (current and self._stamp != self._stamp_of(self._paths("current")[1])):
            self.load()  # another process promoted a new key: sign with it too
        assert self._key is not None  # load() sets it or raises
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c]})


def access_claim(scopes: Iterable[Scope]) -> list[dict]:
    """The ``access`` claim: only scopes with granted actions."""
    claim = []
    for scope in scopes:
        if scope.actions:
            entry = {"type": scope.type, "name": scope.name, "actions": sorted(scope.actions)}
            if scope.resource_class:
                entry["class"] = scope.resource_class
            claim.append(entry)
    return claim


class TokenIssuer:
    """Mints registry tokens for one service."""

    def __init__(self, keys: SigningKeys, service: str, issuer: str = ISSUER, lifetime: int = LIFETIME):
        self.keys = keys
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime

    def issue(self, subject: str, scopes: Iterable[Scope]) -> IssuedToken:
        """A token for ``subject`` holding exactly the granted ``scopes``."""
        granted = tuple(s for s in scopes if s.actions)
        now = datetime.now(UTC).replace(microsecond=0)
        stamp = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": stamp + self.lifetime,
            "nbf": stamp - 1,
            "iat": stamp,
            "jti": secrets.token_urlsafe(16),
            "access": access_claim(granted),
        }
        issued_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return IssuedToken(self.keys.sign(claims), self.lifetime, issued_at, granted)


def signing_dir(data_dir: Path) -> Path:
    """Where the token-signing keys live under BERTH_DATA_DIR."""
    return Path(data_dir) / "token-signing"


def signing_bundle_pem(data_dir: Path) -> bytes:
    """The registry's ``auth.token.rootcertbundle``: every trusted signing certificate, PEM.

    Creates the first signing key when there is none, so setup can call this before
    Berth ever issued a token.
    """
    return SigningKeys(signing_dir(data_dir)).load().bundle_pem()
