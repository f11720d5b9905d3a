"""Active Directory's reasons in a failed bind, and its account flags in a search result.

AD answers every failed simple bind with result 49 (invalidCredentials) and puts the
reason in the diagnostic message, e.g. ``80090308: LdapErr: DSID-0C0903A9, comment:
AcceptSecurityContext error, data 773, v1db1``. ``data`` is a Windows error code in hex:
``52e`` wrong password (or unknown user), ``530``/``531`` not allowed at this time or
workstation, ``532`` password expired, ``533`` disabled, ``701`` account expired, ``773``
must change password, ``775`` locked. All but 52e come only after the right password
(775 excepted: it comes for any password, and Berth checks the lockout flag first anyway).
"""

from __future__ import annotations

import re

from berth.errors import (
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    AccountUnusable,
    PasswordExpired,
    PasswordMustChange,
)

_DATA = re.compile(r"\bdata ([0-9a-fA-F]{1,8})\b")
WRONG_PASSWORD = "52e"  # noqa: S105 - an AD error code, not a password
_ERRORS: dict[str, type[AccountUnusable]] = {
    "530": AccountUnusable,  # not permitted to log on at this time
    "531": AccountUnusable,  # not permitted to log on at this workstation
    "532": PasswordExpired,
    "533": AccountDisabled,
    "701": AccountExpired,
    "773": PasswordMustChange,
    "775": AccountLocked,
}
ACCOUNTDISABLE = 0x2
UF_LOCKOUT = 0x10  # in msDS-User-Account-Control-Computed
COMPUTED_FLAGS = "msDS-User-Account-Control-Computed"
ACCOUNT_ATTRIBUTES = ("userAccountControl", COMPUTED_FLAGS, "lockoutTime")


def bind_code(message: str | None) -> str | None:
    """AD's ``data`` code in a bind error message (lower-case hex), or None if there is none."""
    match = _DATA.search(message or "")
    return match.group(1).lower() if match else None


def account_error(message: str | None) -> AccountUnusable | None:
    """The typed error for AD's reason in ``message``; None for a wrong password or no code."""
    code = bind_code(message)
    if code is None or code == WRONG_PASSWORD:
        return None
    error_type = _ERRORS.get(code)
    return error_type(code) if error_type else None


def _number(value: object) -> int:
    """An integer attribute as ldap3 returns it (int, str, a list of either, or nothing)."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else 0
    if isinstance(value, int):
        return value
    try:
        return int(str(value or "0"))
    except ValueError:
        return 0


def is_disabled(attributes: dict) -> bool:
    """The entry's ``userAccountControl`` has the disabled bit (AD; other directories have none)."""
    return bool(_number(attributes.get("userAccountControl")) & ACCOUNTDISABLE)


def is_locked(attributes: dict) -> bool:
    """AD says the account is locked out now.

    ``msDS-User-Account-Control-Computed`` (asked for by name; AD and Samba compute it) knows
    whether the lockout duration has passed; ``lockoutTime`` alone stays set after AD unlocks
    an account by itself, so it is only the fallback.
    """
    if attributes.get(COMPUTED_FLAGS) not in (None, [], ""):
        return bool(_number(attributes.get(COMPUTED_FLAGS)) & UF_LOCKOUT)
    return _number(attributes.get("lockoutTime")) > 0


POLICY_ATTRIBUTES = ("lockoutThreshold", "lockOutObservationWindow")
GUARD_ATTRIBUTES = ("badPwdCount", "badPasswordTime")
_FILETIME_EPOCH = 11644473600  # seconds from 1601-01-01 to 1970-01-01


def domain_head(dn: str) -> str:
    """The domain's own entry for an AD DN: its trailing ``DC=`` parts (``DC=lab,DC=test``)."""
    parts = [part.strip() for part in dn.split(",")]
    tail: list[str] = []
    for part in reversed(parts):
        if not part.lower().startswith("dc="):
            break
        tail.insert(0, part)
    return ",".join(tail)


def lockout_wait(attributes: dict, policy: dict, now: float) -> float | None:
    """Seconds until one more wrong password could no longer lock the account; None if it cannot now.

    AD locks an account when ``badPwdCount`` reaches ``lockoutThreshold`` within the
    observation window. Berth stops one short: with ``threshold - 1`` bad passwords counted,
    it does not bind (a wrong guess would lock the owner out of Windows too) until the
    window since the last bad password has passed.
    """
    threshold = _number(policy.get("lockoutThreshold"))
    count = _number(attributes.get("badPwdCount"))
    if threshold <= 0 or count < threshold - 1:
        return None
    window = abs(_number(policy.get("lockOutObservationWindow"))) / 10_000_000  # 100 ns units, negative
    last_bad = _number(attributes.get("badPasswordTime")) / 10_000_000 - _FILETIME_EPOCH
    remaining = last_bad + window - now
    return remaining if remaining > 0 else None
