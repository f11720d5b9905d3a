"""Login throttling by resolved account, recorded before the bind, with growing delays per account.

A fake directory stands in for LDAP: it resolves names the way a directory does (case,
surrounding spaces and Unicode width do not matter), calls ``before_bind`` with the
account's throttle key, then "binds" (counted) and answers.
"""

from __future__ import annotations

import threading
import time
import unicodedata

import pytest

from berth.audit import AuditLog
from berth.auth.directory import DirectoryUser, throttle_key
from berth.auth.login import LoginService
from berth.auth.throttle import LoginThrottle, address_key
from berth.db import Database
from berth.errors import InvalidCredentials, LoginThrottled
from berth.roles import Role

PASSWORDS = {"dave": "dave-pw", "alice": "alice-pw"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeDirectory:
    """Resolves like a directory (NFKC, case, spaces) and counts binds."""

    def __init__(self, bind_seconds: float = 0.0):
        self.binds = 0
        self.bind_seconds = bind_seconds
        self._lock = threading.Lock()

    def authenticate(self, username, password, before_bind=None):
        uid = unicodedata.normalize("NFKC", username).strip().casefold()
        dn = f"uid={uid},ou=people" if uid in PASSWORDS else None
        if before_bind is not None:
            before_bind(throttle_key(username, dn))
        with self._lock:
            self.binds += 1
        time.sleep(self.bind_seconds)
        if dn is None or PASSWORDS[uid] != password:
            raise InvalidCredentials()
        return DirectoryUser(uid, dn, uid.title(), Role.DEVELOPER)


@pytest.fixture
def db(tmp_path):
    return Database(tmp_path / "berth.sqlite3")


def service(db, directory=None, clock=None, **limits):
    options = {"max_failures": 3, "max_address_failures": 20, "window": 900, "delay": 2.0, "max_delay": 8.0}
    options.update(limits)
    throttle = LoginThrottle(db, clock=clock or time.time, **options)
    return LoginService(directory or FakeDirectory(), throttle, AuditLog(db))


def attempt(login, username, password, address="10.0.0.1"):
    try:
        login.login(username, password, address)
    except InvalidCredentials:
        return 401
    except LoginThrottled as exc:
        return 429, exc.retry_after
    return 200


def test_spelling_variants_of_one_account_share_its_count(db):
    """Item 1: "dave ", "DAVE" and fullwidth "ｄａｖｅ" are the same account to the directory."""
    login = service(db, clock=Clock())
    for name in ("dave", "dave ", "\uff44\uff41\uff56\uff45"):
        assert attempt(login, name, "wrong") == 401
    assert attempt(login, "DAVE", "wrong")[0] == 429
    assert attempt(login, "\uff24\uff21\uff36\uff25 ", "dave-pw")[0] == 429


def test_unknown_names_are_counted_normalised():
    assert throttle_key(" Nobody ", None) == throttle_key("\uff4e\uff4f\uff42\uff4f\uff44\uff59", None)
    assert throttle_key("x", "UID=Dave, OU=People") == throttle_key("y", "uid=dave,ou=people")
    assert throttle_key("dave", None) != throttle_key("dave", "uid=dave,ou=people")


def test_parallel_guesses_cannot_outrun_the_limit(db):
    """Item 2: 40 guesses at once; only the allowed few reach the directory."""
    directory = FakeDirectory(bind_seconds=0.05)
    # A still clock: on a loaded machine the 40 claims can take longer than the first delay,
    # after which a fourth guess is rightly allowed; the race is what this test is about.
    login = service(db, directory, clock=Clock(), max_address_failures=1000)
    outcomes = []
    start = threading.Barrier(40)

    def guess():
        start.wait()
        outcomes.append(attempt(login, "dave", "wrong"))

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert directory.binds <= 3
    assert outcomes.count(401) == directory.binds and len(outcomes) == 40


def test_delays_grow_and_the_owner_is_never_locked_out(db):
    """Item 3: after 3 failures each attempt waits 2, 4, 8, 8 s; the right password then works."""
    clock = Clock()
    login = service(db, clock=clock)
    for _ in range(3):
        assert attempt(login, "dave", "wrong") == 401
    waits = []
    for _ in range(4):
        status, retry_after = attempt(login, "dave", "dave-pw")
        assert status == 429
        waits.append(retry_after)
        clock.advance(retry_after)
        assert attempt(login, "dave", "wrong") == 401
    assert waits == [2, 4, 8, 8]
    clock.advance(8)
    assert attempt(login, "dave", "dave-pw") == 200


def test_a_success_resets_the_account_but_not_the_address(db):
    clock = Clock()
    login = service(db, clock=clock, max_address_failures=5)
    for _ in range(3):
        attempt(login, "dave", "wrong")
    clock.advance(2)
    assert attempt(login, "dave", "dave-pw") == 200
    assert attempt(login, "dave", "wrong") == 401  # the count started again: no delay
    assert attempt(login, "alice", "wrong") == 401
    status = attempt(login, "alice", "alice-pw")
    assert status[0] == 429  # five failures from this address, across accounts


def test_the_first_delay_starts_before_five_failures(db):
    clock = Clock()
    login = service(db, clock=clock, max_failures=4)
    for _ in range(4):
        assert attempt(login, "dave", "wrong") == 401
    assert attempt(login, "dave", "dave-pw")[0] == 429


def test_ipv6_clients_are_counted_per_64(db):
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("10.0.0.1") == "10.0.0.1"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_key("unknown") == "unknown"
    login = service(db, clock=Clock(), max_address_failures=3, max_failures=100)
    for number in range(3):
        attempt(login, f"user{number}", "wrong", address=f"2001:db8:1:2::{number + 1}")
    assert attempt(login, "dave", "dave-pw", address="2001:db8:1:2:dead:beef:0:1")[0] == 429
    assert attempt(login, "dave", "dave-pw", address="2001:db8:9::1") == 200


def test_the_address_limit_lets_go_after_its_window(db):
    clock = Clock()
    login = service(db, clock=clock, max_address_failures=2, window=60)
    attempt(login, "user1", "wrong")
    attempt(login, "user2", "wrong")
    status, retry_after = attempt(login, "dave", "dave-pw")
    assert status == 429 and 0 < retry_after <= 60
    clock.advance(61)
    assert attempt(login, "dave", "dave-pw") == 200


def test_a_directory_outage_does_not_count(db):
    from berth.errors import DirectoryUnavailable

    class Down(FakeDirectory):
        def authenticate(self, username, password, before_bind=None):
            raise DirectoryUnavailable()

    login = service(db, Down(), clock=Clock(), max_address_failures=2)
    for _ in range(5):
        with pytest.raises(DirectoryUnavailable):
            login.login("dave", "dave-pw", "10.0.0.1")
    assert attempt(service(db, clock=Clock(), max_address_failures=2), "dave", "dave-pw") == 200
