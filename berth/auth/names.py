"""Login names as people type them: ``dave``, ``LAB\\dave``, ``dave@lab.test``.

Windows users type the down-level form (``DOMAIN\\user``) or the user principal name
(``user@realm``) out of habit. Berth accepts both, and turns each into the one search that
finds the account, so every spelling of one account is throttled, audited and named alike
(by the entry's username attribute, never by what was typed).
"""

from __future__ import annotations

from dataclasses import dataclass

from ldap3.utils.conv import escape_filter_chars

from berth.errors import InvalidCredentials

UPN_ATTRIBUTE = "userPrincipalName"


@dataclass(frozen=True)
class LoginName:
    """What a typed login name asks for: a plain ``name``, or a user principal name (``upn``)."""

    name: str
    upn: bool = False


def parse_login(typed: str, domain: str | None) -> LoginName:
    """The account ``typed`` names; InvalidCredentials for a ``DOMAIN\\`` other than ``domain``.

    ``DOMAIN\\user`` is accepted only for the configured NetBIOS domain (case-insensitive);
    with none configured, no backslash form is accepted.
    """
    name = typed.strip()
    if "\\" in name:
        prefix, _, rest = name.partition("\\")
        if not domain or prefix.casefold() != domain.casefold() or not rest or "\\" in rest:
            raise InvalidCredentials()
        name = rest
    if "@" in name:
        local, _, realm = name.rpartition("@")
        if not local or not realm:
            raise InvalidCredentials()
        return LoginName(name, upn=True)
    return LoginName(name)


def search_filter(user_filter: str, username_attribute: str, login: LoginName) -> str:
    """The LDAP filter that finds ``login`` within ``user_filter`` (escaped; ``{username}`` filled in).

    A plain name fills ``{username}``. A UPN fills it too when the filter already asks for
    ``userPrincipalName`` (the AD recipe); otherwise, in a directory whose usernames are
    ``sAMAccountName``, the filter's other conditions still hold and the entry must have that
    UPN. Elsewhere (``uid`` directories, where a uid may itself hold an ``@``), it is a name.
    """
    escaped = escape_filter_chars(login.name)
    if not login.upn or UPN_ATTRIBUTE.lower() in user_filter.lower():
        return user_filter.format(username=escaped)
    if username_attribute.lower() != "samaccountname":
        return user_filter.format(username=escaped)
    return f"(&{user_filter.format(username='*')}({UPN_ATTRIBUTE}={escaped}))"
