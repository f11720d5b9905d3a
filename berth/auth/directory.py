"""LDAP login and group -> role, with ldap3.

The flow: refuse what cannot be a login before touching the network (empty password,
control characters, absurd lengths); find the user with the service account (or an
anonymous search) using an escaped filter; refuse zero or several matches; bind as the
user's DN with the password; read group membership (``member``, ``uniqueMember`` and
``memberOf``) to pick the role. A directory that is down or refuses the service account
is ``DirectoryUnavailable``; everything about the user is ``InvalidCredentials``, so
neither message tells whether a user exists.
"""

from __future__ import annotations

import logging
import math
import secrets
import ssl
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ldap3 import SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from berth.errors import DirectoryUnavailable, InvalidCredentials, NotPermitted
from berth.roles import Role

log = logging.getLogger(__name__)

MAX_USERNAME = 128
MAX_PASSWORD = 1024
SIZE_LIMIT_EXCEEDED = 4


@dataclass(frozen=True)
class DirectoryUser:
    """A user as the directory describes them."""

    username: str
    dn: str
    display_name: str
    role: Role
    groups: frozenset[str] = frozenset()  # normalised DNs, for the registry's access rules


class UserGone(InvalidCredentials):
    """The user no longer exists (or is no longer unique) in the directory."""


def normalise_dn(dn: str) -> str:
    """A DN in a form that compares equal however the directory spelled it."""
    return ",".join(part.strip().lower() for part in dn.split(","))


def throttle_key(typed: str, dn: str | None) -> str:
    """The account a login attempt is counted against: the entry it resolved to, else the normalised name.

    Directories match names case-, space- and Unicode-insensitively, so every spelling that
    finds one entry must share one count. The one place that decides it.
    """
    if dn is not None:
        return "dn:" + normalise_dn(dn)
    return "name:" + unicodedata.normalize("NFKC", typed).casefold().strip()


def check_username(username: str) -> None:
    """Refuse usernames that cannot be real before any directory traffic."""
    if not username or len(username) > MAX_USERNAME or not username.isprintable():
        raise InvalidCredentials()


class Directory:
    """Finds and authenticates users in one LDAP directory."""

    def __init__(
        self,
        url: str,
        user_base: str,
        group_base: str,
        admin_group: str,
        ops_group: str,
        *,
        user_filter: str = "(uid={username})",
        bind_dn: str | None = None,
        bind_password: str | None = None,
        start_tls: bool = False,
        ca_file: Path | None = None,
        timeout: float = 5.0,
        developer_group: str | None = None,
    ):
        self.url = url
        self.user_base = user_base
        self.group_base = group_base
        self.user_filter = user_filter
        self.bind_dn = bind_dn
        self._bind_password = bind_password
        self.start_tls = start_tls
        self.timeout = timeout
        self._admin_group = normalise_dn(admin_group)
        self._ops_group = normalise_dn(ops_group)
        self._developer_group = normalise_dn(developer_group) if developer_group else None
        # Unknown names are bound against this DN (which cannot exist), so they cost what a
        # wrong password costs and timing does not tell whether a user exists.
        self._decoy_dn = f"cn=berth-no-such-user-{secrets.token_hex(8)},{user_base}"
        self._tls = Tls(
            validate=ssl.CERT_REQUIRED,
            version=ssl.PROTOCOL_TLS_CLIENT,
            ca_certs_file=str(ca_file) if ca_file else None,
        )

    def authenticate(
        self, username: str, password: str, before_bind: Callable[[str], None] | None = None
    ) -> DirectoryUser:
        """The user, if ``password`` is theirs; InvalidCredentials or DirectoryUnavailable if not.

        ``before_bind`` gets the attempt's :func:`throttle_key` after the search and before the
        password is tried (it may raise to stop the attempt).
        """
        check_username(username)
        if not password or len(password) > MAX_PASSWORD or "\x00" in password:
            raise InvalidCredentials()
        with self._service_connection() as conn:
            found = self._find(conn, username)
            if before_bind is not None:
                before_bind(throttle_key(username, found[0] if found else None))
            if found is None:
                self._bind_as(self._decoy_dn, password)  # equal work; cannot succeed
                raise InvalidCredentials()
            dn, attributes = found
            self._bind_as(dn, password)
            return self._user(conn, dn, attributes)

    def lookup(self, username: str) -> DirectoryUser:
        """The user's current entry and role, without a password (for session re-checks)."""
        check_username(username)
        with self._service_connection() as conn:
            found = self._find(conn, username)
            if found is None:
                raise UserGone()
            try:
                return self._user(conn, *found)
            except NotPermitted:
                raise UserGone() from None

    def _connection(self, user: str | None, password: str | None) -> Connection:
        # A new Server per connection: ldap3 remembers an address that failed as
        # unavailable for a while, which would keep Berth locked out after the
        # directory came back.
        server = Server(self.url, tls=self._tls, connect_timeout=self.timeout, get_info="NO_INFO")
        return Connection(
            server,
            user=user,
            password=password,
            receive_timeout=max(1, math.ceil(self.timeout)),  # ldap3 packs it as an int
            read_only=True,
            auto_referrals=False,
            raise_exceptions=False,
        )

    def _open(self, conn: Connection) -> None:
        """Connect (and StartTLS when configured) or raise DirectoryUnavailable."""
        try:
            conn.open()
            if self.start_tls and not self.url.lower().startswith("ldaps://") and not conn.start_tls():
                raise DirectoryUnavailable("Directory unreachable: StartTLS failed.")
        except LDAPException as exc:
            log.warning("directory %s unreachable: %s", self.url, exc)
            raise DirectoryUnavailable() from None

    def _service_connection(self) -> Connection:
        conn = self._connection(self.bind_dn, self._bind_password)
        self._open(conn)
        try:
            bound = conn.bind()
        except LDAPException as exc:
            log.warning("directory %s failed during service bind: %s", self.url, exc)
            conn.unbind()
            raise DirectoryUnavailable() from None
        if not bound:
            log.error(
                "directory %s refused the service account %s: %s",
                self.url,
                self.bind_dn or "(anonymous)",
                conn.result.get("description"),
            )
            conn.unbind()
            raise DirectoryUnavailable("Directory unreachable: it refused Berth's service account.")
        return conn

    def _find(self, conn: Connection, username: str) -> tuple[str, dict] | None:
        """The one entry ``username`` names, or None for zero or several."""
        search_filter = self.user_filter.format(username=escape_filter_chars(username))
        try:
            conn.search(
                self.user_base,
                search_filter,
                search_scope=SUBTREE,
                size_limit=2,
                attributes=["uid", "cn", "displayName", "memberOf"],
            )
        except LDAPException as exc:
            log.warning("directory search failed: %s", exc)
            raise DirectoryUnavailable() from None
        code = conn.result.get("result")
        if code not in (0, SIZE_LIMIT_EXCEEDED):
            log.warning("directory search answered %s", conn.result.get("description"))
            raise DirectoryUnavailable()
        entries = list(conn.response or [])
        entries = [e for e in entries if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            log.info("login name matched %d directory entries; refused", len(entries))
            return None
        return entries[0]["dn"], entries[0]["attributes"]

    def _bind_as(self, dn: str, password: str) -> None:
        conn = self._connection(dn, password)
        self._open(conn)
        try:
            if not conn.bind():
                raise InvalidCredentials()
        except LDAPException as exc:
            log.warning("directory failed during user bind: %s", exc)
            raise DirectoryUnavailable() from None
        finally:
            conn.unbind()

    def _user(self, conn: Connection, dn: str, attributes: dict) -> DirectoryUser:
        groups = {normalise_dn(g) for g in attributes.get("memberOf") or []}
        escaped = escape_filter_chars(dn)
        try:
            conn.search(
                self.group_base,
                f"(|(member={escaped})(uniqueMember={escaped}))",
                search_scope=SUBTREE,
                attributes=[],
            )
        except LDAPException as exc:
            log.warning("directory group search failed: %s", exc)
            raise DirectoryUnavailable() from None
        groups |= {normalise_dn(e["dn"]) for e in conn.response or [] if e.get("type") == "searchResEntry"}
        role = Role.ADMIN if self._admin_group in groups else Role.OPS if self._ops_group in groups else Role.DEVELOPER
        if role is Role.DEVELOPER and self._developer_group and self._developer_group not in groups:
            raise NotPermitted()
        uid = _first(attributes.get("uid")) or dn
        display = _first(attributes.get("displayName")) or _first(attributes.get("cn")) or uid
        return DirectoryUser(username=uid, dn=dn, display_name=display, role=role, groups=frozenset(groups))


def _first(value: object) -> str | None:
    """The first value of a possibly multi-valued attribute."""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return str(value) if value else None
