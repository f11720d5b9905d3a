"""Berth as the registry's token server: who asks, what the rules grant, a signed token.

One request: check the ``service``; find who asks (nobody, an access token, a
recently seen password, or a directory bind through the login throttle); decide each
scope by the access rules; audit what matters; sign. Grants with push or delete and
every denial are audited one row per request; plain pulls only count in Prometheus.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prometheus_client import Counter

from berth.audit import AuditLog
from berth.auth.access_tokens import AccessTokens, looks_like_token
from berth.auth.directory import Directory, DirectoryUser, throttle_key
from berth.auth.login import BasicAuthCache, LoginService
from berth.auth.rules import AccessRules, Principal
from berth.auth.scope import Scope
from berth.auth.tokens import IssuedToken, TokenIssuer
from berth.errors import BerthError, InvalidCredentials, LoginThrottled

GRANTS = Counter(
    "berth_registry_token_grants",
    "Registry scopes granted by Berth's token server, by action (pulls are counted here, not audited).",
    ["action"],
)
WRITE_ACTIONS = frozenset({"push", "delete", "*"})
LOOKUP_TTL = 60.0


class InvalidTokenRequest(BerthError):
    """The token request itself is wrong (unknown service, mismatched account)."""


@dataclass(frozen=True)
class TokenRequest:
    """A token request as the view parsed it."""

    service: str | None
    scopes: tuple[Scope, ...]
    username: str | None
    password: str | None
    address: str
    account: str | None = None


def principal_of(user: DirectoryUser) -> Principal:
    """The rules' view of a directory user."""
    return Principal(user.username, user.role, user.groups)


class TokenServer:
    """Answers token requests for one registry service."""

    def __init__(
        self,
        issuer: TokenIssuer,
        rules: AccessRules,
        login: LoginService,
        cache: BasicAuthCache,
        directory: Directory,
        access_tokens: AccessTokens,
        audit: AuditLog,
    ):
        self.issuer = issuer
        self.rules = rules
        self._login = login
        self._cache = cache
        self._directory = directory
        self._access_tokens = access_tokens
        self._audit = audit
        self._lookups: dict[str, tuple[float, DirectoryUser]] = {}
        self._lock = threading.Lock()

    def token(self, request: TokenRequest) -> IssuedToken:
        """A signed token with what ``request``'s principal may have of its scopes."""
        if request.service is not None and request.service != self.issuer.service:
            raise InvalidTokenRequest(f"This token server serves {self.issuer.service!r}, not that service.")
        if request.account and request.username is not None and request.account != request.username:
            raise InvalidTokenRequest("account does not match the credentials.")
        who, limit = self._authenticate(request)
        decisions = []
        for scope in request.scopes:
            decided = self.rules.decide(who, scope)
            decisions.append(decided if limit is None else decided.with_actions(_limited(decided, limit)))
        self._account_for(who, request, decisions)
        return self.issuer.issue(who.username or "", decisions)

    def _authenticate(self, request: TokenRequest) -> tuple[Principal, frozenset[str] | None]:
        """Who asks, and the access token's action limit when one was used."""
        if request.username is None:
            return Principal(None), None
        username, password = request.username, request.password or ""
        if looks_like_token(password):
            return self._by_access_token(username, password, request.address)
        user = self._cache.get_or_login(
            username, password, lambda: self._login.login(username, password, request.address, channel="registry")
        )
        return principal_of(user), None

    def _by_access_token(self, username: str, secret: str, address: str) -> tuple[Principal, frozenset[str]]:
        throttle = self._login.throttle
        try:
            attempt = throttle.begin(address)
            throttle.claim(attempt, throttle_key(username, None))
        except LoginThrottled:
            self._audit.record("login", "throttled", username, address, "registry: access token")
            raise
        try:
            token = self._access_tokens.verify(username, secret, address)
        except InvalidCredentials:
            throttle.finish(attempt, "failure")
            self._audit.record("login", "failure", username, address, "registry: access token")
            raise
        throttle.finish(attempt, "success")
        return principal_of(self._lookup(token.username)), token.actions

    def principal_for(self, username: str) -> Principal:
        """The rules' view of a logged-in user, groups read from the directory (cached)."""
        return principal_of(self._lookup(username))

    def _lookup(self, username: str) -> DirectoryUser:
        """The owner's current groups and role (a directory read, kept LOOKUP_TTL seconds)."""
        key = username.lower()
        with self._lock:
            hit = self._lookups.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        user = self._directory.lookup(username)
        with self._lock:
            if len(self._lookups) > 1024:
                self._lookups.clear()
            self._lookups[key] = (time.monotonic() + LOOKUP_TTL, user)
        return user

    def _account_for(self, who: Principal, request: TokenRequest, decisions: list[Scope]) -> None:
        """Audit writes and denials (one row each per request); count pulls and catalog reads."""
        writes, denials = [], []
        for asked, got in zip(request.scopes, decisions, strict=True):
            if got.actions & WRITE_ACTIONS:
                writes.append(str(got))
            if asked.actions - got.actions:
                denials.append(str(asked.with_actions(asked.actions - got.actions)))
            if "pull" in got.actions:
                GRANTS.labels("pull").inc()
            if got.is_catalog and got.actions:
                GRANTS.labels("catalog").inc()
        name = who.username or "(anonymous)"
        if writes:
            self._audit.record("registry-token", "granted", name, request.address, " ".join(writes))
        if denials:
            self._audit.record("registry-token", "denied", name, request.address, " ".join(denials))


def _limited(scope: Scope, limit: frozenset[str]) -> frozenset[str]:
    """The actions of ``scope`` an access token with ``limit`` may carry (catalog rides on pull)."""
    if scope.is_catalog:
        return scope.actions if "pull" in limit else frozenset()
    return scope.actions & limit


SELF_SUBJECT = "berth"
SELF_ACTIONS = frozenset({"pull", "*"})  # pull repositories, list the catalog; never push
#: What an admin action or job (deleting an image, retention) may add, asked for explicitly.
DELETE_ACTIONS = SELF_ACTIONS | {"delete"}


def self_token_provider(issuer: TokenIssuer, realm: str | None, actions: frozenset[str] = SELF_ACTIONS):
    """A RegistryClient token provider: Berth's own tokens, minted in-process, for ``actions`` at most.

    It answers only challenges whose realm is ``realm`` (Berth's /auth/token) and whose
    service is the issuer's, so Berth never needs a directory account to read the
    registry it serves tokens for; any other realm falls back to the normal flow. The
    browsing client gets :data:`SELF_ACTIONS`; only the client built for admin actions
    and jobs passes :data:`DELETE_ACTIONS`.
    """
    from berth.auth.scope import parse_scopes

    def provide(challenge, scope: str | None) -> tuple[str, float] | None:
        if realm is None or challenge.realm != realm or challenge.service not in (None, issuer.service):
            return None
        scopes = [s.with_actions(s.actions & actions) for s in parse_scopes([scope] if scope else [])]
        minted = issuer.issue(SELF_SUBJECT, scopes)
        return minted.token, float(minted.expires_in)

    return provide
