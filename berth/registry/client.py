"""Registry HTTP API v2 client: TLS against the configured CA, pagination, auth, typed errors.

One pooled ``requests.Session`` per client. TLS is always verified (against
``ca_bundle``, or the system store when None). ``trust_env`` is off, so proxy and
``REQUESTS_CA_BUNDLE`` variables cannot silently replace the configured CA.
Redirects and ``Link`` headers are followed only within the registry's own origin;
bodies are read up to a bound, so a registry answering nonsense cannot exhaust memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from berth.errors import (
    BadUpstreamResponse,
    DeleteUnsupported,
    NotFound,
    PageSizeRefused,
    Unauthorized,
    UpstreamUnavailable,
)
from berth.registry.auth import Challenge, TokenCache, basic_authorization, parse_challenge
from berth.registry.http import (
    check_status,
    json_object,
    media_type,
    origin,
    read_bounded,
    registry_error,
    tls_message,
)
from berth.registry.parse import ACCEPT_MANIFESTS  # OCI indexes included: Distribution 404s without
from berth.registry.references import DIGEST_RE, check_name, check_reference, is_digest

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # Distribution refuses larger manifests itself
MAX_BLOB_BYTES = 8 * 1024 * 1024  # image configs; layers are never fetched
MAX_LIST_BYTES = 16 * 1024 * 1024  # one page of _catalog or tags/list
MAX_PAGES = 100_000
MAX_REDIRECTS = 3

#: Mints ``(token, lifetime_seconds)`` for a challenge and scope, or None when it cannot.
TokenProvider = Callable[[Challenge, str | None], tuple[str, float] | None]


@dataclass(frozen=True)
class Ping:
    """The answer to ``GET /v2/``."""

    latency_seconds: float
    api_version: str | None


@dataclass(frozen=True)
class ManifestRef:
    """What a tag or digest points at, from a HEAD request."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class RawDocument:
    """A manifest as the registry served it."""

    digest: str
    media_type: str
    data: bytes


class RegistryClient:
    """Talks to one Distribution registry."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 3.05,
        pool_size: int = 20,
        observer: Callable[[str, str, float], None] | None = None,
        token_provider: TokenProvider | None = None,
        token_realms: tuple[str, ...] = (),
    ):
        self.base_url = base_url.rstrip("/")
        self.name = urlsplit(self.base_url).netloc
        self._origin = origin(self.base_url)
        self._ca_bundle = ca_bundle
        self._credentials = (username, password or "") if username else None
        self._timeout = (connect_timeout, timeout)
        self._tokens = TokenCache()
        self._token_realms = (self.base_url, *token_realms)  # where Berth's credentials may go
        self._challenge: Challenge | None = None
        self._lock = threading.Lock()
        self.requests_made = 0
        self._observer = observer
        self._token_provider = token_provider if not username else None
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ca_bundle) if ca_bundle else True
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "berth"

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    # --- the API -----------------------------------------------------------------

    def ping(self) -> Ping:
        """``GET /v2/``: is the registry up and speaking API v2."""
        started = time.perf_counter()
        response = self._request("GET", "/v2/", scope=None, limit=64 * 1024)
        return Ping(time.perf_counter() - started, response.headers.get("Docker-Distribution-API-Version"))

    def anonymous_status(self) -> int:
        """The status of ``GET /v2/`` sent with no credentials at all (200: anyone may push)."""
        return self._send("GET", "/v2/", {}, 64 * 1024).status_code

    def catalog(self, page_size: int = 1000) -> list[str]:
        """Every repository name, following ``Link`` to the last page."""
        try:
            return self._paged(f"/v2/_catalog?n={page_size}", "repositories", "registry:catalog:*")
        except PageSizeRefused:
            return self._paged("/v2/_catalog?n=100", "repositories", "registry:catalog:*")

    def tags(self, name: str) -> list[str]:
        """Every tag of repository ``name`` (empty when it has none)."""
        check_name(name)
        path = f"/v2/{name}/tags/list?n=1000"
        try:
            return self._paged(path, "tags", f"repository:{name}:pull", what=f"repository {name}")
        except PageSizeRefused:
            return self._paged(f"/v2/{name}/tags/list", "tags", f"repository:{name}:pull", what=f"repository {name}")

    def resolve(self, name: str, reference: str) -> ManifestRef:
        """The digest, media type and size ``reference`` points at, with one HEAD request."""
        response = self._manifest_request("HEAD", name, reference)
        digest = response.headers.get("Docker-Content-Digest")
        if not digest or not DIGEST_RE.match(digest):
            raw = self.manifest(name, reference)
            return ManifestRef(raw.digest, raw.media_type, len(raw.data))
        size = int(response.headers.get("Content-Length") or 0)
        return ManifestRef(digest, media_type(response), size)

    def manifest(self, name: str, reference: str) -> RawDocument:
        """The manifest ``reference`` points at, verified against its digest."""
        response = self._manifest_request("GET", name, reference)
        data = response.content
        digest = reference if is_digest(reference) else response.headers.get("Docker-Content-Digest")
        computed = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is None or (digest.startswith("sha256:") and digest != computed):
            if digest is not None:
                raise BadUpstreamResponse(
                    f"Registry {self.name} served a manifest for {name}@{digest} whose content has digest {computed}.",
                    upstream=self.name,
                )
            digest = computed
        return RawDocument(digest, media_type(response), data)

    def _manifest_request(self, method: str, name: str, reference: str) -> requests.Response:
        """HEAD or GET of a manifest, accepting every manifest and index type (OCI indexes included)."""
        check_name(name)
        check_reference(reference)
        return self._request(
            method,
            f"/v2/{name}/manifests/{reference}",
            scope=f"repository:{name}:pull",
            headers={"Accept": ACCEPT_MANIFESTS},
            limit=MAX_MANIFEST_BYTES,  # a HEAD has no body to bound
            what=f"{name}:{reference}",
        )

    def blob(self, name: str, digest: str, limit: int = MAX_BLOB_BYTES) -> bytes:
        """A small blob (an image config), verified against its digest."""
        check_name(name)
        if not DIGEST_RE.match(digest):
            raise BadUpstreamResponse(f"{digest[:80]!r} is not a digest.", upstream=self.name)
        response = self._request(
            "GET",
            f"/v2/{name}/blobs/{digest}",
            scope=f"repository:{name}:pull",
            limit=limit,
            what=f"blob {digest[:19]} in {name}",
        )
        data = response.content
        if digest.startswith("sha256:") and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise BadUpstreamResponse(
                f"Registry {self.name} served blob {digest} with other content.", upstream=self.name
            )
        return data

    def delete_manifest(self, name: str, digest: str) -> None:
        """``DELETE`` the manifest ``digest`` of ``name`` (every tag on it goes too); needs a delete grant.

        DeleteUnsupported when the registry answers 405 (deletes disabled, or read-only).
        """
        check_name(name)
        if not is_digest(digest):
            raise NotFound(f"{digest[:80]!r} is not a digest; images are deleted by digest.")
        path = f"/v2/{name}/manifests/{digest}"
        response = self._send_authenticated("DELETE", path, f"repository:{name}:delete", {}, 64 * 1024)
        if response.status_code == 405:
            code, _ = registry_error(response)
            raise DeleteUnsupported(
                f"Registry {self.name} refused to delete ({code or 'HTTP 405'}): deleting is disabled in its"
                " config.yml (storage.delete.enabled: true turns it on; the setup job sets it), or the registry"
                " is read-only while garbage collection runs."
            )
        check_status(response, f"{name}@{digest}", self.name)

    # --- plumbing ----------------------------------------------------------------

    def catalog_pages(self, page_size: int = 1000) -> Iterator[list[str]]:
        """The repository names page by page, as the registry serves them (lexical order)."""
        try:
            yield from self._pages(f"/v2/_catalog?n={page_size}", "repositories", "registry:catalog:*")
        except PageSizeRefused:
            yield from self._pages("/v2/_catalog?n=100", "repositories", "registry:catalog:*")

    def _paged(self, path: str, key: str, scope: str, what: str = "the catalog") -> list[str]:
        """Collect ``key`` from every page, following ``Link: <...>; rel="next"``."""
        return [item for page in self._pages(path, key, scope, what) for item in page]

    def _pages(self, path: str, key: str, scope: str, what: str = "the catalog") -> Iterator[list[str]]:
        """Each page's ``key``, following ``Link: <...>; rel="next"``."""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._request("GET", path, scope=scope, limit=MAX_LIST_BYTES, what=what)
            body = json_object(response, self.name)
            values = body.get(key) or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadUpstreamResponse(
                    f"Registry {self.name} answered {key!r} that is not a list of names.", upstream=self.name
                )
            yield values
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            path = self._same_origin_path(next_url, "Link header")
            if path in seen:
                raise BadUpstreamResponse(f"Registry {self.name} sent a Link header that loops.", upstream=self.name)
            seen.add(path)
        raise BadUpstreamResponse(f"Registry {self.name} sent more than {MAX_PAGES} pages.", upstream=self.name)

    def _same_origin_path(self, url: str, what: str) -> str:
        absolute = urljoin(self.base_url + "/", url)
        if origin(absolute) != self._origin:
            raise BadUpstreamResponse(
                f"Registry {self.name} pointed its {what} at another host ({urlsplit(absolute).netloc}); not followed.",
                upstream=self.name,
            )
        parts = urlsplit(absolute)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: dict | None = None,
        limit: int = MAX_LIST_BYTES,
        what: str = "",
    ) -> requests.Response:
        """Send, answering auth challenges and same-origin redirects; map failures to typed errors."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_authenticated(method, path, scope, headers or {}, limit)
            if response.is_redirect:
                path = self._same_origin_path(response.headers["Location"], "redirect")
                continue
            return check_status(response, what or path, self.name)
        raise BadUpstreamResponse(f"Registry {self.name} redirected too many times.", upstream=self.name)

    def _send_authenticated(self, method, path, scope, headers, limit) -> requests.Response:
        response = self._send(method, path, self._auth_headers(scope, headers), limit)
        if response.status_code != 401:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None or self._credentials is None and challenge.scheme == "basic":
            raise Unauthorized(f"Registry {self.name} requires credentials (set BERTH_REGISTRY_USERNAME/PASSWORD).")
        with self._lock:
            self._challenge = challenge
        if challenge.scheme == "bearer":
            self._tokens.forget(challenge.scope or scope)
        response = self._send(method, path, self._auth_headers(challenge.scope or scope, headers), limit)
        if response.status_code == 401:
            raise Unauthorized(f"Registry {self.name} refused Berth's credentials.")
        return response

    def _auth_headers(self, scope: str | None, headers: dict) -> dict:
        challenge = self._challenge
        if challenge is None:
            return headers
        if challenge.scheme == "basic" and self._credentials:
            return {**headers, "Authorization": basic_authorization(*self._credentials)}
        if challenge.scheme == "bearer":
            token = self._tokens.get(scope or "") or self._own_token(challenge, scope)
            if token is None:
                token = self._tokens.fetch(
                    self.session,
                    challenge,
                    scope,
                    self._credentials,
                    self._timeout,
                    allow_plain_http=self.base_url.startswith("http://"),
                    allowed_realms=self._token_realms,
                )
            return {**headers, "Authorization": f"Bearer {token}"}
        return headers

    def _own_token(self, challenge: Challenge, scope: str | None) -> str | None:
        """A token minted in-process when the registry's realm is Berth's own token server."""
        minted = self._token_provider(challenge, scope) if self._token_provider else None
        if minted is None:
            return None
        token, lifetime = minted
        self._tokens.put(scope, token, lifetime)
        return token

    def _send(self, method: str, path: str, headers: dict, limit: int) -> requests.Response:
        """One HTTP exchange, timed for the observer."""
        started = time.perf_counter()
        outcome = "error"
        try:
            response = self._exchange(method, path, headers, limit)
            outcome = f"{response.status_code // 100}xx"
            return response
        finally:
            if self._observer is not None:
                self._observer(method, outcome, time.perf_counter() - started)

    def _exchange(self, method: str, path: str, headers: dict, limit: int) -> requests.Response:
        """One HTTP exchange (retried once on a dropped connection), body read up to ``limit``."""
        url = self.base_url + path
        for attempt in (1, 2):
            with self._lock:
                self.requests_made += 1
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self._timeout, allow_redirects=False, stream=True
                )
                read_bounded(response, limit, self.name)
                return response
            except requests.exceptions.SSLError as exc:
                raise UpstreamUnavailable(
                    tls_message(exc, self.base_url, self.name, self._ca_bundle), upstream=self.name
                ) from None
            except requests.exceptions.Timeout:
                raise UpstreamUnavailable(
                    f"Registry {self.name} did not answer within {self._timeout[1]:g} s.",
                    upstream=self.name,
                    timeout=True,
                ) from None
            except requests.exceptions.ConnectionError as exc:
                if isinstance(exc.args[0] if exc.args else None, urllib3.exceptions.ReadTimeoutError):
                    # the body stalled after the headers (requests reports that as a ConnectionError)
                    raise UpstreamUnavailable(
                        f"Registry {self.name} did not answer within {self._timeout[1]:g} s.",
                        upstream=self.name,
                        timeout=True,
                    ) from None
                if attempt == 2:
                    log.warning("registry %s unreachable: %s", self.name, exc)
                    raise UpstreamUnavailable(f"Cannot connect to registry {self.name}.", upstream=self.name) from None
            except requests.exceptions.RequestException as exc:
                log.warning("registry %s request failed: %s", self.name, exc)
                raise BadUpstreamResponse(
                    f"Registry {self.name} answered something Berth cannot read.", upstream=self.name
                ) from None
        raise AssertionError("unreachable")
