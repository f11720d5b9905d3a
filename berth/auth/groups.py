"""Which groups a directory entry belongs to: directly, or (``BERTH_LDAP_NESTED_GROUPS``) through groups.

Direct membership is read both ways: the entry's ``memberOf`` and groups naming it in
``member`` or ``uniqueMember``. Nesting is resolved by the directory when it can: Active
Directory's LDAP_MATCHING_RULE_IN_CHAIN (``member:1.2.840.113556.1.4.1941:=DN``) returns
every group the entry is in at any depth, in one search. Elsewhere (OpenLDAP) Berth walks
up itself: groups that contain the groups found so far, at most ``MAX_DEPTH`` levels and
``MAX_GROUPS`` groups, never visiting a group twice (so cycles end).
"""

from __future__ import annotations

import logging

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from berth.auth.connection import search

log = logging.getLogger(__name__)

IN_CHAIN = "1.2.840.113556.1.4.1941"
ACTIVE_DIRECTORY_CAPABILITY = "1.2.840.113556.1.4.800"
MAX_DEPTH = 8
MAX_GROUPS = 500


def normalise_dn(dn: str) -> str:
    """A DN in a form that compares equal however the directory spelled it."""
    return ",".join(part.strip().lower() for part in dn.split(","))


def supports_in_chain(conn: Connection) -> bool:
    """The server is Active Directory (or Samba as a DC), which knows the in-chain matching rule."""
    try:
        conn.search("", "(objectClass=*)", search_scope=BASE, attributes=["supportedCapabilities"])
    except LDAPException:
        return False
    for entry in conn.response or []:
        capabilities = (entry.get("attributes") or {}).get("supportedCapabilities") or []
        if ACTIVE_DIRECTORY_CAPABILITY in capabilities:
            return True
    return False


def _containing(conn: Connection, group_base: str, dns: list[str]) -> set[str]:
    """Groups under ``group_base`` that list any of ``dns`` as member or uniqueMember."""
    terms = "".join(f"(member={escape_filter_chars(dn)})(uniqueMember={escape_filter_chars(dn)})" for dn in dns)
    return {entry["dn"] for entry in search(conn, group_base, f"(|{terms})", [])}


def direct_groups(conn: Connection, group_base: str, dn: str, member_of: list[str]) -> set[str]:
    """Normalised DNs of the groups ``dn`` is a direct member of."""
    return {normalise_dn(g) for g in member_of} | {normalise_dn(g) for g in _containing(conn, group_base, [dn])}


def nested_groups(conn: Connection, group_base: str, dn: str, in_chain: bool) -> set[str]:
    """Normalised DNs of every group ``dn`` is in through other groups (and directly)."""
    if in_chain:
        found = search(conn, group_base, f"(member:{IN_CHAIN}:={escape_filter_chars(dn)})", [])
        return {normalise_dn(entry["dn"]) for entry in found}
    seen: dict[str, str] = {}  # normalised -> as the directory spells it
    frontier = [dn]
    for _depth in range(MAX_DEPTH):
        parents = _containing(conn, group_base, frontier)
        frontier = [g for g in parents if normalise_dn(g) not in seen]
        seen.update((normalise_dn(g), g) for g in frontier)
        if not frontier:
            break
        if len(seen) > MAX_GROUPS:
            log.warning("nested groups of %s: stopped after %d groups", dn, len(seen))
            break
    else:
        log.warning("nested groups of %s: stopped at depth %d", dn, MAX_DEPTH)
    return set(seen)
