"""Access tokens for CI: named, expiring secrets that stand in for a directory password.

``docker login -u dave -p berth_...`` works because the token server checks this table
before binding to the directory. A token carries a subset of actions (pull, push,
delete); at use it grants what the access rules give its owner *now*, intersected with
that subset, so it never outlives a lost group membership.

Only the SHA-256 of a token is stored. The secret is 32 random bytes (256 bits), so no
guessing can invert its hash and a slow hash (argon2, bcrypt) would only cost every
registry token request time; a plain digest also makes the lookup one indexed query.
Revocation and expiry are checked on every use: they take effect at the next token
request (registry tokens already issued live on for their 5 minutes).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from berth.audit import AuditLog, printable
from berth.db import Database
from berth.errors import Conflict, InvalidCredentials, NotFound

PREFIX = "berth_"
ACTIONS = ("pull", "push", "delete")
MAX_NAME = 64
MAX_DAYS = 365
MAX_PER_USER = 50
LAST_USE_PRECISION = 30.0  # seconds: do not write on every single use

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    actions TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    last_used_at REAL,
    last_used_address TEXT,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS access_tokens_user ON access_tokens (username);
"""


@dataclass(frozen=True)
class AccessToken:
    """One access token as stored (never its secret)."""

    id: str
    username: str
    name: str
    actions: frozenset[str]
    created_at: float
    expires_at: float
    last_used_at: float | None
    last_used_address: str | None
    revoked_at: float | None

    def active(self, now: float | None = None) -> bool:
        """Whether the token may still be used."""
        return self.revoked_at is None and self.expires_at > (now or time.time())

    @property
    def created(self) -> datetime:
        """When it was made, UTC."""
        return datetime.fromtimestamp(self.created_at, UTC)

    @property
    def expires(self) -> datetime:
        """When it stops working, UTC."""
        return datetime.fromtimestamp(self.expires_at, UTC)

    @property
    def last_used(self) -> datetime | None:
        """When it last got a registry token (to within 30 s), UTC."""
        return datetime.fromtimestamp(self.last_used_at, UTC) if self.last_used_at else None


def looks_like_token(password: str) -> bool:
    """Whether a password is shaped like an access token (checked before any directory bind)."""
    return password.startswith(PREFIX) and 40 <= len(password) <= 80


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row) -> AccessToken:
    return AccessToken(
        row["id"],
        row["username"],
        row["name"],
        frozenset(row["actions"].split(",")),
        row["created_at"],
        row["expires_at"],
        row["last_used_at"],
        row["last_used_address"],
        row["revoked_at"],
    )


class AccessTokens:
    """Creates, checks, lists and revokes access tokens in SQLite."""

    def __init__(self, db: Database, audit: AuditLog):
        self._db = db
        self._audit = audit
        db.add_schema(SCHEMA)

    def create(self, username: str, name: str, actions: set[str], days: int, address: str) -> tuple[AccessToken, str]:
        """A new token and its secret (shown once; only its hash is kept)."""
        name = printable(name.strip(), MAX_NAME)
        if not name:
            raise Conflict("Give the token a name, so you can tell it apart later.")
        if not actions or not actions <= set(ACTIONS):
            raise Conflict(f"Choose at least one of {', '.join(ACTIONS)}.")
        if not 1 <= days <= MAX_DAYS:
            raise Conflict(f"A token lives between 1 and {MAX_DAYS} days.")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        token_id = secrets.token_hex(8)
        with self._db.connect(immediate=True) as conn:
            count = conn.execute(
                "SELECT COUNT(*) FROM access_tokens WHERE username = ? AND revoked_at IS NULL AND expires_at > ?",
                (username, now),
            ).fetchone()[0]
            if count >= MAX_PER_USER:
                raise Conflict(f"You already have {MAX_PER_USER} active tokens; revoke some first.")
            conn.execute(
                "INSERT INTO access_tokens (id, secret_hash, username, name, actions, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, _digest(secret), username, name, ",".join(sorted(actions)), now, now + days * 86400),
            )
        detail = f"{name} ({', '.join(sorted(actions))}, {days} d)"
        self._audit.record("access-token", "created", username, address, detail)
        return self.get(token_id), secret

    def get(self, token_id: str) -> AccessToken:
        """The token with this id; NotFound if there is none."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM access_tokens WHERE id = ?", (token_id[:32],)).fetchone()
        if row is None:
            raise NotFound("No such access token.")
        return _record(row)

    def verify(self, username: str, secret: str, address: str) -> AccessToken:
        """The active token ``secret`` is, if it belongs to ``username``; else InvalidCredentials."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM access_tokens WHERE secret_hash = ?", (_digest(secret),)).fetchone()
        if row is None or row["username"].lower() != username.lower():
            raise InvalidCredentials()
        token = _record(row)
        now = time.time()
        if not token.active(now):
            raise InvalidCredentials()
        if token.last_used_at is None or now - token.last_used_at > LAST_USE_PRECISION:
            with self._db.connect() as conn:
                conn.execute(
                    "UPDATE access_tokens SET last_used_at = ?, last_used_address = ? WHERE id = ?",
                    (now, printable(address), token.id),
                )
        return token

    def list(self, username: str | None = None) -> list[AccessToken]:
        """Tokens of ``username`` (everyone's when None), newest first."""
        with self._db.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM access_tokens WHERE ? IS NULL OR username = ? ORDER BY created_at DESC",
                (username, username),
            ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, token_id: str, username: str, address: str, any_owner: bool = False) -> AccessToken:
        """Revoke a token of ``username`` (of anyone with ``any_owner``); NotFound otherwise."""
        token = self.get(token_id)
        if token.username != username and not any_owner:
            raise NotFound("No such access token.")
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), token.id)
            )
        self._audit.record("access-token", "revoked", username, address, f"{token.name} of {token.username}")
        return self.get(token.id)
