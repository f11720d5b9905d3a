"""Login names as Windows users type them, and AD's reasons in bind errors (captured from Samba 4.17)."""

from __future__ import annotations

import pytest

from berth.auth import adcodes
from berth.auth.connection import tls_problem
from berth.auth.names import LoginName, parse_login, search_filter
from berth.errors import (
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    InvalidCredentials,
    PasswordExpired,
    PasswordMustChange,
)

AD_FILTER = "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))"
# What Samba 4.17 answered to simple binds of the devstack's accounts (ldap3 result "message").
CAPTURED = {
    "52e": "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1",
    "533": "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1",
    "773": "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1",
    "701": "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 701, v1db1",
    "775": "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1",
}
# Windows Server spells it the same way, with another DSID and trailing NUL.
WINDOWS_532 = "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 532, v3839\x00"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("dave", LoginName("dave")),
        ("LAB\\dave", LoginName("dave")),
        ("lab\\DAVE", LoginName("DAVE")),
        ("  LAB\\dave ", LoginName("dave")),
        ("dave@lab.test", LoginName("dave@lab.test", upn=True)),
        ("LAB\\dave@lab.test", LoginName("dave@lab.test", upn=True)),
    ],
)
def test_login_forms(typed, expected):
    assert parse_login(typed, "LAB") == expected


@pytest.mark.parametrize("typed", ["OTHER\\dave", "LAB\\", "\\dave", "LAB\\x\\dave", "@lab.test", "dave@"])
def test_other_domains_and_malformed_names_refused(typed):
    with pytest.raises(InvalidCredentials):
        parse_login(typed, "LAB")


def test_no_domain_configured_accepts_no_backslash_form():
    with pytest.raises(InvalidCredentials):
        parse_login("LAB\\dave", None)


def test_search_filters():
    assert search_filter("(uid={username})", "uid", LoginName("dave")) == "(uid=dave)"
    upn = LoginName("dave@lab.test", upn=True)
    assert search_filter(AD_FILTER, "sAMAccountName", upn) == AD_FILTER.format(username="dave@lab.test")
    assert search_filter("(sAMAccountName={username})", "sAMAccountName", upn) == (
        "(&(sAMAccountName=*)(userPrincipalName=dave@lab.test))"
    )
    assert search_filter("(uid={username})", "uid", upn) == "(uid=dave@lab.test)"  # a uid may be an address
    assert search_filter("(uid={username})", "uid", LoginName("*)(uid=*")) == "(uid=\\2a\\29\\28uid=\\2a)"


@pytest.mark.parametrize(
    ("code", "error"),
    [("533", AccountDisabled), ("773", PasswordMustChange), ("701", AccountExpired), ("775", AccountLocked)],
)
def test_captured_bind_errors(code, error):
    assert adcodes.bind_code(CAPTURED[code]) == code
    refused = adcodes.account_error(CAPTURED[code])
    assert isinstance(refused, error) and refused.code == code
    assert refused.message != InvalidCredentials().message


def test_wrong_password_and_other_directories_stay_generic():
    assert adcodes.account_error(CAPTURED["52e"]) is None
    assert adcodes.account_error("Invalid credentials") is None  # OpenLDAP
    assert adcodes.account_error(None) is None
    assert isinstance(adcodes.account_error(WINDOWS_532), PasswordExpired)


def test_account_flags_from_a_search():
    locked = {"userAccountControl": ["512"], "lockoutTime": ["134404781194029940"], adcodes.COMPUTED_FLAGS: ["16"]}
    unlocked_since = {"lockoutTime": ["134404781194029940"], adcodes.COMPUTED_FLAGS: ["0"]}
    assert adcodes.is_locked(locked) and not adcodes.is_locked(unlocked_since)
    assert adcodes.is_locked({"lockoutTime": ["1"]}) and not adcodes.is_locked({"lockoutTime": []})
    assert adcodes.is_disabled({"userAccountControl": ["514"]}) and not adcodes.is_disabled({"uid": ["dave"]})


def test_lockout_guard_stops_one_short_within_the_window():
    policy = {"lockoutThreshold": ["5"], "lockOutObservationWindow": ["-18000000000"]}  # 30 minutes
    now = 1_800_000_000.0
    last_bad = str(int((now - 60 + 11644473600) * 10_000_000))
    assert adcodes.lockout_wait({"badPwdCount": ["3"], "badPasswordTime": [last_bad]}, policy, now) is None
    wait = adcodes.lockout_wait({"badPwdCount": ["4"], "badPasswordTime": [last_bad]}, policy, now)
    assert wait is not None and 1739 <= wait <= 1741
    assert adcodes.lockout_wait({"badPwdCount": ["4"], "badPasswordTime": [last_bad]}, policy, now + 1800) is None
    assert adcodes.lockout_wait({"badPwdCount": ["9"]}, {"lockoutThreshold": ["0"]}, now) is None  # no lockout


def test_domain_head():
    assert adcodes.domain_head("CN=Dave Developer,CN=Users,DC=lab,DC=test") == "DC=lab,DC=test"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("certificate {...} doesn't match any name in ['::1']", "does not name the host"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer", "BERTH_LDAP_CA"),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number", "does not speak TLS"),
    ],
)
def test_tls_problems_are_configuration(text, says):
    assert says in (tls_problem(text) or "")


def test_refused_connections_are_not_tls_problems():
    assert tls_problem("[Errno 111] Connection refused") is None
