"""LDAP (and Active Directory) login and group -> role, with ldap3.

The flow: refuse what cannot be a login before touching the network (empty password,
control characters, absurd lengths, another ``DOMAIN\\``); bind as the service account (or
anonymously) on the first directory server that answers; find the user with an escaped
filter; refuse zero or several matches; refuse an account AD reports locked, or one that a
single wrong password more would lock, *before* binding; bind as the user's DN with the
password; read group membership (directly, or through nested groups) to pick the role.

The user is named by ``BERTH_LDAP_USERNAME_ATTRIBUTE`` of their entry (``uid``; AD:
``sAMAccountName``) everywhere, never by the DN or by what was typed. A directory that
does not answer is ``DirectoryUnavailable``; one that refuses Berth's settings is
``DirectoryMisconfigured``; a wrong password or unknown user is ``InvalidCredentials``
(neither message tells whether a user exists); AD's reasons after a right password
(disabled, expired, must change, locked) are their own errors.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPException

from berth.auth import adcodes
from berth.auth.connection import STRONGER_AUTH_REQUIRED, Servers, search
from berth.auth.groups import direct_groups, nested_groups, normalise_dn, supports_in_chain
from berth.auth.names import LoginName, parse_login, search_filter
from berth.errors import (
    AccountLocked,
    DirectoryMisconfigured,
    DirectoryUnavailable,
    InvalidCredentials,
    LockoutNear,
    NotPermitted,
)
from berth.roles import Role

log = logging.getLogger(__name__)

MAX_USERNAME = 128
MAX_PASSWORD = 1024
POLICY_TTL = 600.0
__all__ = ["Directory", "DirectoryUser", "UserGone", "check_username", "normalise_dn", "throttle_key"]


@dataclass(frozen=True)
class DirectoryUser:
    """A user as the directory describes them."""

    username: str
    dn: str
    display_name: str
    role: Role
    groups: frozenset[str] = frozenset()  # normalised DNs, for the registry's access rules


class UserGone(InvalidCredentials):
    """The user no longer exists, is no longer unique, or was disabled in the directory."""


def throttle_key(typed: str, dn: str | None) -> str:
    """The account a login attempt is counted against: the entry it resolved to, else the normalised name.

    Directories match names case-, space- and Unicode-insensitively, so every spelling that
    finds one entry (``dave``, ``DAVE``, ``LAB\\dave``, ``dave@lab.test``) shares one count.
    The one place that decides it.
    """
    if dn is not None:
        return "dn:" + normalise_dn(dn)
    return "name:" + unicodedata.normalize("NFKC", typed).casefold().strip()


def check_username(username: str) -> None:
    """Refuse usernames that cannot be real before any directory traffic."""
    if not username or len(username) > MAX_USERNAME or not username.isprintable():
        raise InvalidCredentials()


class Directory:
    """Finds and authenticates users in one LDAP directory (one or more servers)."""

    def __init__(
        self,
        url: str | Sequence[str],
        user_base: str,
        group_base: str,
        admin_group: str,
        ops_group: str,
        *,
        user_filter: str | None = None,
        username_attribute: str = "uid",
        bind_dn: str | None = None,
        bind_password: str | None = None,
        start_tls: bool = False,
        ca_file: Path | None = None,
        timeout: float = 5.0,
        developer_group: str | None = None,
        nested_groups: bool = False,
        domain: str | None = None,
    ):
        urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else list(url)
        self.servers = Servers(urls, start_tls=start_tls, ca_file=ca_file, timeout=timeout)
        self.url = ", ".join(urls)
        self.user_base = user_base
        self.group_base = group_base
        self.username_attribute = username_attribute
        self.user_filter = user_filter or f"({username_attribute}={{username}})"
        self.bind_dn = bind_dn
        self._bind_password = bind_password
        self.nested = nested_groups
        self.domain = domain
        self._admin_group = normalise_dn(admin_group)
        self._ops_group = normalise_dn(ops_group)
        self._developer_group = normalise_dn(developer_group) if developer_group else None
        # Unknown names are bound against this DN (which cannot exist), so they cost what a
        # wrong password costs and timing does not tell whether a user exists.
        self._decoy_dn = f"cn=berth-no-such-user-{secrets.token_hex(8)},{user_base}"
        self._in_chain: bool | None = None
        self._policies: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def authenticate(
        self, username: str, password: str, before_bind: Callable[[str], None] | None = None
    ) -> DirectoryUser:
        """The user, if ``password`` is theirs; else the error that says why not.

        ``before_bind`` gets the attempt's :func:`throttle_key` after the search and before the
        password is tried (it may raise to stop the attempt).
        """
        check_username(username)
        if not password or len(password) > MAX_PASSWORD or "\x00" in password:
            raise InvalidCredentials()
        login = parse_login(username, self.domain)
        conn, url = self.servers.service(self.bind_dn, self._bind_password)
        with conn:
            found = self._find(conn, login)
            if before_bind is not None:
                before_bind(throttle_key(login.name, found[0] if found else None))
            if found is None:
                self._bind_as(url, self._decoy_dn, password)  # equal work; cannot succeed
                raise InvalidCredentials()
            dn, attributes = found
            self._refuse_lockout(conn, dn, attributes)
            self._bind_as(url, dn, password)
            return self._user(conn, dn, attributes)

    def lookup(self, username: str) -> DirectoryUser:
        """The user's current entry and role, without a password (for session re-checks).

        UserGone if the entry is gone, not unique, disabled, or no longer allowed in.
        """
        check_username(username)
        conn, _url = self.servers.service(self.bind_dn, self._bind_password)
        with conn:
            found = self._find(conn, LoginName(username))
            if found is None or adcodes.is_disabled(found[1]):
                raise UserGone()
            try:
                return self._user(conn, *found)
            except NotPermitted:
                raise UserGone() from None

    def check(self) -> str:
        """Bind as the service account and search once; a line saying what worked, or the error."""
        conn, url = self.servers.service(self.bind_dn, self._bind_password)
        with conn:
            search(conn, self.user_base, self.user_filter.format(username="berth-check-no-such-user"), ["cn"])
            search(conn, self.group_base, "(objectClass=*)", [], size_limit=1)
        return f"{url}: service account bound, user and group bases searchable"

    def _find(self, conn: Connection, login: LoginName) -> tuple[str, dict] | None:
        """The one entry ``login`` names, or None for zero or several."""
        wanted = [self.username_attribute, "cn", "displayName", "memberOf", *adcodes.ACCOUNT_ATTRIBUTES]
        wanted += adcodes.GUARD_ATTRIBUTES
        found = search(conn, self.user_base, search_filter(self.user_filter, self.username_attribute, login), wanted, 2)
        if len(found) != 1:
            log.info("login name matched %d directory entries; refused", len(found))
            return None
        return found[0]["dn"], found[0]["attributes"]

    def _refuse_lockout(self, conn: Connection, dn: str, attributes: dict) -> None:
        """Never bind for an account AD reports locked, nor one a wrong password would lock."""
        if adcodes.is_locked(attributes):
            log.warning("login refused before binding: %s is locked out in the directory (AD 775)", dn)
            raise AccountLocked("775")
        if "badPwdCount" not in attributes or not attributes.get("badPwdCount"):
            return  # not Active Directory
        wait = adcodes.lockout_wait(attributes, self._policy(conn, dn), time.time())
        if wait is not None:
            log.warning("login refused before binding: one more bad password would lock %s in the directory", dn)
            raise LockoutNear(retry_after=max(1, int(wait) + 1))

    def _policy(self, conn: Connection, dn: str) -> dict:
        """The domain's lockout threshold and window (read once per POLICY_TTL)."""
        head = adcodes.domain_head(dn)
        with self._lock:
            hit = self._policies.get(head)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        try:
            conn.search(head, "(objectClass=*)", search_scope=BASE, attributes=list(adcodes.POLICY_ATTRIBUTES))
            entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            policy = dict(entries[0]["attributes"]) if entries else {}
        except LDAPException:
            policy = {}
        with self._lock:
            self._policies[head] = (time.monotonic() + POLICY_TTL, policy)
        return policy

    def _bind_as(self, url: str, dn: str, password: str) -> None:
        """Bind as ``dn`` on the server that found it; the error that says why not."""
        conn, _ = self.servers.open(dn, password, only=url)
        try:
            if conn.bind():
                return
            message = conn.result.get("message")
            if conn.result.get("result") == STRONGER_AUTH_REQUIRED:
                raise DirectoryMisconfigured(f"{url} requires TLS for binds: use ldaps:// or BERTH_LDAP_START_TLS=true")
            refused = adcodes.account_error(message)
            if refused is not None:
                log.warning("directory refused %s: AD code %s (%s)", dn, refused.code, type(refused).__name__)
                raise refused
            raise InvalidCredentials()
        except LDAPException as exc:
            log.warning("directory failed during user bind: %s", exc)
            raise DirectoryUnavailable() from None
        finally:
            conn.unbind()

    def _user(self, conn: Connection, dn: str, attributes: dict) -> DirectoryUser:
        groups = direct_groups(conn, self.group_base, dn, list(attributes.get("memberOf") or []))
        if self.nested:
            groups |= nested_groups(conn, self.group_base, dn, self._uses_in_chain(conn))
        role = Role.ADMIN if self._admin_group in groups else Role.OPS if self._ops_group in groups else Role.DEVELOPER
        if role is Role.DEVELOPER and self._developer_group and self._developer_group not in groups:
            raise NotPermitted()
        username = _first(attributes.get(self.username_attribute))
        if not username:
            log.warning("directory entry %s has no %s; refused", dn, self.username_attribute)
            raise InvalidCredentials()
        display = _first(attributes.get("displayName")) or _first(attributes.get("cn")) or username
        return DirectoryUser(username=username, dn=dn, display_name=display, role=role, groups=frozenset(groups))

    def _uses_in_chain(self, conn: Connection) -> bool:
        if self._in_chain is None:
            self._in_chain = supports_in_chain(conn)
            log.info("directory %s nested groups: %s", self.url, "in-chain rule" if self._in_chain else "walk")
        return self._in_chain


def _first(value: object) -> str | None:
    """The first value of a possibly multi-valued attribute."""
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return str(value) if value else None
