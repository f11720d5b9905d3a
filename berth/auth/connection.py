"""Connections to the directory: several servers in order, TLS, the service account, searches.

And what a failure means. A directory that does not answer (refused, timed out, reset) is
*unavailable*: try again shortly, and another server meanwhile. A directory that answers
but refuses Berth's settings (its certificate does not verify or names another host, it
requires TLS, it refuses anonymous search, the service password is wrong, a base DN does
not exist) is *misconfigured*: waiting will not help, and the error says which setting to fix.

``BERTH_LDAP_URL`` may list several servers (comma-separated); they are tried in order,
and one that failed is skipped for ``SKIP_SECONDS`` (unless every one is).
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ldap3 import SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from berth.errors import DirectoryMisconfigured, DirectoryUnavailable

log = logging.getLogger(__name__)

SKIP_SECONDS = 30.0
# After the directory refused the service password, do not try it again for this long:
# every try is a bad password to AD, and five lock the service account out.
SERVICE_REFUSED_SECONDS = 300.0
SIZE_LIMIT_EXCEEDED = 4
INVALID_CREDENTIALS, STRONGER_AUTH_REQUIRED = 49, 8
# Result codes of a search that no retry fixes, with the setting that does.
_SEARCH_SETTINGS = {
    1: "the directory refused the search (AD refuses anonymous search): set BERTH_LDAP_BIND_DN and _PASSWORD",
    50: "the service account may not search there: grant it read access or fix BERTH_LDAP_BIND_DN",
    32: "the search base does not exist: check BERTH_LDAP_USER_BASE / BERTH_LDAP_GROUP_BASE",
    10: "the search base is outside this directory (a referral): check BERTH_LDAP_USER_BASE / _GROUP_BASE",
    87: "the directory rejected the filter: check BERTH_LDAP_USER_FILTER",
}


def tls_problem(text: str) -> str | None:
    """What is wrong with the directory's TLS in an error ``text``, as a fix; None if it is not TLS."""
    lowered = text.lower()
    if "mismatch" in lowered or "not valid for" in lowered or "doesn't match any name" in lowered:
        return "its certificate does not name the host in BERTH_LDAP_URL: use a name the certificate holds"
    if "certificate verify failed" in lowered or "unknown ca" in lowered or "self-signed" in lowered:
        return "its certificate is not signed by a CA Berth trusts: set BERTH_LDAP_CA to the directory's CA"
    if "wrong version number" in lowered or ("unexpected eof" in lowered and "ssl" in lowered):
        return "it does not speak TLS on that port: ldaps:// needs the LDAPS port (636), StartTLS the LDAP one"
    return None


class Servers:
    """The directory servers of ``BERTH_LDAP_URL``, in order, skipping recent failures."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        start_tls: bool,
        ca_file: Path | None,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.urls = tuple(urls)
        self.start_tls = start_tls
        self.timeout = timeout
        self._clock = clock
        self._skip_until: dict[str, float] = {}
        self._service_refused: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._tls = Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=str(ca_file) if ca_file else None,
        )

    def candidates(self) -> list[str]:
        """The servers to try now, in order: those not skipped, else (all skipped) every one."""
        now = self._clock()
        with self._lock:
            fresh = [url for url in self.urls if self._skip_until.get(url, 0) <= now]
        return fresh or list(self.urls)

    def failed(self, url: str) -> None:
        """Skip ``url`` for a while."""
        with self._lock:
            self._skip_until[url] = self._clock() + SKIP_SECONDS

    def connection(self, url: str, user: str | None, password: str | None) -> Connection:
        """An unopened connection to ``url`` (a new Server each time: ldap3 would remember failures)."""
        server = Server(url, tls=self._tls, connect_timeout=self.timeout, get_info="NO_INFO")
        return Connection(
            server,
            user=user,
            password=password,
            receive_timeout=max(1, math.ceil(self.timeout)),  # ldap3 packs it as an int
            read_only=True,
            auto_referrals=False,
            raise_exceptions=False,
        )

    def open(self, user: str | None, password: str | None, only: str | None = None) -> tuple[Connection, str]:
        """A connection (StartTLS done) to the first server that answers, and its URL."""
        problems: list[DirectoryUnavailable] = []
        for url in [only] if only else self.candidates():
            conn = self.connection(url, user, password)
            try:
                conn.open()
                no_delay(conn)
                if self.start_tls and not url.lower().startswith("ldaps://") and not conn.start_tls():
                    raise DirectoryMisconfigured(f"{url} refused StartTLS: {conn.result.get('description')}")
                return conn, url
            except (LDAPException, DirectoryMisconfigured) as exc:
                problems.append(self._judge(url, exc))
                self.failed(url)
        raise next((p for p in problems if isinstance(p, DirectoryMisconfigured)), problems[-1])

    def _judge(self, url: str, exc: Exception) -> DirectoryUnavailable:
        """What a failure to connect to ``url`` means (logged once here)."""
        if isinstance(exc, DirectoryMisconfigured):
            log.error("directory %s: %s", url, exc.detail)
            return exc
        problem = tls_problem(str(exc))
        if problem:
            log.error("directory %s misconfigured: %s (%s)", url, problem, exc)
            return DirectoryMisconfigured(f"{url}: {problem}")
        log.warning("directory %s unreachable: %s", url, exc)
        return DirectoryUnavailable()

    def service(self, bind_dn: str | None, password: str | None) -> tuple[Connection, str]:
        """A connection bound as the service account (anonymous without one), and its URL."""
        refused = self._service_refused
        if refused is not None and refused[0] > self._clock():
            raise DirectoryMisconfigured(refused[1])
        conn, url = self.open(bind_dn, password)
        try:
            bound = conn.bind()
        except LDAPException as exc:
            conn.unbind()
            self.failed(url)
            raise self._judge(url, exc) from None
        if bound:
            return conn, url
        code, message = conn.result.get("result"), conn.result.get("message") or conn.result.get("description")
        conn.unbind()
        who = bind_dn or "(anonymous)"
        if code == INVALID_CREDENTIALS:
            detail = f"{url} refused the service account {who}: check BERTH_LDAP_BIND_DN and BERTH_LDAP_BIND_PASSWORD"
            self._service_refused = (self._clock() + SERVICE_REFUSED_SECONDS, detail)
        elif code == STRONGER_AUTH_REQUIRED:
            detail = f"{url} requires TLS for binds: use ldaps:// or BERTH_LDAP_START_TLS=true"
        else:
            detail = f"{url} refused the service account {who}: {message}"
        log.error("directory misconfigured: %s (%s)", detail, message)
        raise DirectoryMisconfigured(detail)


def no_delay(conn: Connection) -> None:
    """Send each LDAP message at once (TCP_NODELAY) instead of waiting for the last one's ACK.

    A bind is the first small write after the TLS handshake: with Nagle on, it waited for the
    ACK of the handshake's last flight, which the server delays (40 ms on Linux). Measured
    against slapd with StartTLS: the first bind on a connection took 41-44 ms, 0.6-0.8 ms with
    this, and every login does two (the service account, then the user).
    """
    with contextlib.suppress(OSError, AttributeError):  # no socket (a failed open): nothing to tune
        conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def search(conn: Connection, base: str, search_filter: str, attributes: Sequence[str], size_limit: int = 0) -> list:
    """The entries (``searchResEntry``) a search finds; a refused search raises the right error."""
    try:
        conn.search(base, search_filter, search_scope=SUBTREE, size_limit=size_limit, attributes=list(attributes))
    except LDAPException as exc:
        log.warning("directory search failed: %s", exc)
        raise DirectoryUnavailable() from None
    code = conn.result.get("result")
    if code not in (0, SIZE_LIMIT_EXCEEDED):
        message = conn.result.get("message") or conn.result.get("description")
        if code in _SEARCH_SETTINGS:
            detail = f"search under {base!r}: {_SEARCH_SETTINGS[code]} ({message})"
            log.error("directory misconfigured: %s", detail)
            raise DirectoryMisconfigured(detail)
        log.warning("directory search answered %s", message)
        raise DirectoryUnavailable()
    return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
