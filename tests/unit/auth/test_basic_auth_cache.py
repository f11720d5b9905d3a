"""Remembered binds: many concurrent requests with one account bind once (the throttle counts binds in flight)."""

from __future__ import annotations

import threading
import time

import pytest

from berth.auth.directory import DirectoryUser
from berth.auth.login import BasicAuthCache
from berth.roles import Role

USER = DirectoryUser("ci", "uid=ci,ou=people,dc=x", "CI", Role.DEVELOPER)


def test_concurrent_requests_with_one_account_bind_once():
    cache = BasicAuthCache("k" * 32)
    binds: list[int] = []
    start = threading.Barrier(20)

    def login() -> DirectoryUser:
        binds.append(1)
        time.sleep(0.05)  # a real bind takes a while: the others arrive meanwhile
        return USER

    def request() -> None:
        start.wait()
        assert cache.get_or_login("ci", "secret", login) == USER

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(binds) == 1
    assert cache.get_or_login("ci", "other", login) == USER and len(binds) == 2  # other credentials bind


def test_a_failed_bind_is_not_remembered():
    cache = BasicAuthCache("k" * 32)

    def refuse() -> DirectoryUser:
        raise ValueError("refused")

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get_or_login("ci", "wrong", refuse)
    assert cache.get("ci", "wrong") is None
