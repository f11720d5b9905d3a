"""Registry authentication: parsing ``WWW-Authenticate`` and the bearer-token flow.

Tokens are cached per scope and reused until shortly before they expire, so browsing
costs one token request per repository per token lifetime, not one per call.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from berth.errors import BadUpstreamResponse, Unauthorized, UpstreamUnavailable
from berth.registry.http import origin, read_bounded

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
EXPIRY_MARGIN = 10.0
DEFAULT_LIFETIME = 60.0
MAX_TOKEN_BYTES = 1024 * 1024  # a JWT with many scopes is a few kB


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic with these credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class Challenge:
    """What a registry's 401 asks for."""

    scheme: str  # "basic" or "bearer"
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


def parse_challenge(header: str) -> Challenge | None:
    """The challenge in a ``WWW-Authenticate`` header, or None if it is neither Basic nor Bearer."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    if scheme.lower() == "basic":
        return Challenge("basic", realm=params.get("realm"))
    if scheme.lower() == "bearer" and params.get("realm"):
        return Challenge("bearer", params["realm"], params.get("service"), params.get("scope"))
    return None


class TokenCache:
    """Bearer tokens by scope, fetched from the challenge's realm."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.fetched = 0

    def get(self, scope: str) -> str | None:
        """A token for ``scope`` that is still valid, if any."""
        with self._lock:
            hit = self._tokens.get(scope)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        return None

    def put(self, scope: str | None, token: str, lifetime: float) -> None:
        """Remember a token minted without a request (Berth's own, see RegistryClient)."""
        with self._lock:
            self._tokens[scope or ""] = (token, time.monotonic() + max(1.0, lifetime - EXPIRY_MARGIN))

    def forget(self, scope: str | None) -> None:
        """Drop the token for ``scope`` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(scope or "", None)

    def fetch(
        self,
        session: requests.Session,
        challenge: Challenge,
        scope: str | None,
        credentials: tuple[str, str] | None,
        timeout: tuple[float, float],
        allow_plain_http: bool = False,
        allowed_realms: tuple[str, ...] = (),
    ) -> str:
        """Ask the token server for a token for ``scope`` and remember it.

        Only a realm in ``allowed_realms`` (URLs, compared by origin: the registry's own and
        any configured) is asked: a registry cannot send Berth's credentials elsewhere.
        """
        realm = challenge.realm or ""
        if urlsplit(realm).scheme != "https" and not (allow_plain_http and realm.startswith("http://")):
            raise Unauthorized(f"The registry's token server {realm!r} is not HTTPS; Berth will not send credentials.")
        if origin(realm) not in {origin(allowed) for allowed in allowed_realms}:
            raise Unauthorized(
                f"The registry names a token server on another host ({urlsplit(realm).netloc[:100]}); Berth sends its"
                " credentials only to the registry itself or a realm listed in BERTH_REGISTRY_TOKEN_REALMS."
            )
        params = {k: v for k, v in (("service", challenge.service), ("scope", scope)) if v}
        headers = {}
        if credentials:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        host = urlsplit(realm).netloc
        try:
            response = session.get(
                realm, params=params, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
            read_bounded(response, MAX_TOKEN_BYTES, host)
        except requests.exceptions.RequestException:
            raise UpstreamUnavailable(f"Cannot reach the registry's token server {host}.", upstream=host) from None
        if response.status_code in (401, 403):
            raise Unauthorized(f"The registry's token server {host} refused Berth's credentials.")
        if response.status_code != 200:
            raise BadUpstreamResponse(f"The token server {host} answered {response.status_code}.", upstream=host)
        try:
            body = json.loads(response.content)
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise BadUpstreamResponse(f"The token server {host} answered without a token.", upstream=host)
        with self._lock:
            self.fetched += 1
            self._tokens[scope or ""] = (token, time.monotonic() + max(1.0, lifetime - EXPIRY_MARGIN))
        return token
