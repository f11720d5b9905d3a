"""Seeds the devstack's AD domain over ldaps:// as Administrator: policy, groups, people, cases.

Done at every start (about a second) rather than baked into the cached template, so the
service account gets this stack's own password and ``locked`` is locked *now* (AD unlocks
an account by itself after the lockout duration).
"""

from __future__ import annotations

import ssl

from devstack.ad import (
    ACCOUNT_DISABLED,
    ADMIN_GROUP,
    BASE,
    DONT_EXPIRE_PASSWORD,
    GROUPS,
    LDAPS_PORT,
    LOCKOUT_THRESHOLD,
    NESTED_GROUP,
    NORMAL_ACCOUNT,
    OPS_GROUP,
    PEOPLE,
    REALM,
    SERVICE_ACCOUNT,
    USERS,
    AdError,
)
from devstack.ports import LOOPBACK

GLOBAL_SECURITY_GROUP = -2147483646
EXPIRED_LONG_AGO = "116444736000000000"  # 1970-01-01 as a Windows FILETIME


def _unicode_password(password: str) -> bytes:
    """AD's ``unicodePwd``: the password in double quotes, UTF-16LE."""
    return f'"{password}"'.encode("utf-16-le")


def _check(conn, what: str) -> None:
    if conn.result.get("result") not in (0, 68):  # 68: already exists (a re-seed)
        raise AdError(f"{what}: {conn.result.get('message') or conn.result.get('description')}")


def seed(conn, service_password: str) -> None:
    """Relax the password policy, create groups and accounts, and lock ``locked``."""
    from ldap3 import MODIFY_ADD, MODIFY_REPLACE

    policy = {
        "pwdProperties": "0",  # complexity off, for the demo passwords
        "minPwdLength": "0",
        "minPwdAge": "0",
        "lockoutThreshold": str(LOCKOUT_THRESHOLD),
    }
    conn.modify(BASE, {name: [(MODIFY_REPLACE, [value])] for name, value in policy.items()})
    _check(conn, "password policy")
    conn.add(GROUPS, ["top", "organizationalUnit"], {"ou": "Groups"})
    _check(conn, GROUPS)
    for dn in (ADMIN_GROUP, OPS_GROUP, NESTED_GROUP):
        name = dn.split(",", 1)[0][3:]
        conn.add(dn, ["top", "group"], {"sAMAccountName": name, "groupType": GLOBAL_SECURITY_GROUP})
        _check(conn, dn)
    _add_user(conn, SERVICE_ACCOUNT, "Berth", "Service", service_password, NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD)
    for name, given, surname, groups in PEOPLE:
        flags = NORMAL_ACCOUNT | (ACCOUNT_DISABLED if name == "disabled" else 0)
        dn = _add_user(conn, name, given, surname, f"{name}-pw", flags)
        for group in groups:
            conn.modify(group, {"member": [(MODIFY_ADD, [dn])]})
            _check(conn, f"{name} into {group}")
        if name == "mustchange":
            conn.modify(dn, {"pwdLastSet": [(MODIFY_REPLACE, ["0"])]})
            _check(conn, "mustchange's pwdLastSet")
        if name == "expired":
            conn.modify(dn, {"accountExpires": [(MODIFY_REPLACE, [EXPIRED_LONG_AGO])]})
            _check(conn, "expired's accountExpires")
    conn.modify(OPS_GROUP, {"member": [(MODIFY_ADD, [NESTED_GROUP])]})
    _check(conn, "platform-team into registry-ops")


def _add_user(conn, name: str, given: str, surname: str, password: str, flags: int) -> str:
    dn = f"CN={given} {surname},{USERS}" if name != SERVICE_ACCOUNT else f"CN={name},{USERS}"
    attributes = {
        "sAMAccountName": name,
        "userPrincipalName": f"{name}@{REALM.lower()}",
        "givenName": given,
        "sn": surname,
        "displayName": f"{given} {surname}",
        "unicodePwd": _unicode_password(password),
        "userAccountControl": str(flags),
    }
    conn.add(dn, ["top", "person", "organizationalPerson", "user"], attributes)
    _check(conn, f"account {name}")
    return dn


def lock(ca_cert: str, dn: str, attempts: int = LOCKOUT_THRESHOLD) -> None:
    """Lock ``dn`` the way an attacker would: wrong passwords up to the lockout threshold."""
    import ldap3

    tls = ldap3.Tls(ca_certs_file=ca_cert, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(f"ldaps://{LOOPBACK}:{LDAPS_PORT}", tls=tls, get_info=ldap3.NONE, connect_timeout=5)
    for _ in range(attempts):
        conn = ldap3.Connection(server, dn, "not-the-password", receive_timeout=10)
        conn.bind()
        conn.unbind()
