"""Whose forwarding headers are believed: only those of peers inside BERTH_TRUSTED_PROXIES."""

from __future__ import annotations

import ipaddress

import pytest

from berth.auth.proxies import client_address
from tests.helpers import make_app

NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/64"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # peer not trusted: header ignored
        ("10.0.0.2", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the client forged the left part
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.3", "1.2.3.4"),  # two proxies
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),  # everyone trusted: the leftmost
        ("10.0.0.2", "garbage, 1.2.3.4", "1.2.3.4"),
        ("10.0.0.2", "1.2.3.4, garbage", "10.0.0.2"),  # a trusted proxy wrote nonsense: stop at it
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", None, "10.0.0.2"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        ("10.0.0.2", "[2001:db8::7]:4711", "2001:db8::7"),
        ("10.0.0.2", "1.2.3.4:5555", "1.2.3.4"),
    ],
)
def test_forwarded_for_is_walked_right_to_left(peer, forwarded, expected):
    assert client_address(peer, forwarded, NETS) == expected


def test_without_trusted_proxies_nothing_is_believed():
    assert client_address("10.0.0.2", "1.2.3.4", ()) == "10.0.0.2"


def app_with(offline_settings, proxies):
    app = make_app(offline_settings.replace(trusted_proxies=proxies))

    @app.route("/whoami")
    def whoami():
        from flask import request

        from blueprints.access import client_address as current

        return {"address": current(), "secure": request.is_secure}

    app.view_functions["whoami"].berth_access = "public"
    return app


def test_the_app_believes_only_a_trusted_peer(offline_settings):
    app = app_with(offline_settings, NETS)
    headers = {"X-Forwarded-For": "6.6.6.6, 1.2.3.4", "X-Forwarded-Proto": "https"}
    trusted = app.test_client().get("/whoami", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert trusted.get_json() == {"address": "1.2.3.4", "secure": True}
    outsider = app.test_client().get("/whoami", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert outsider.get_json() == {"address": "192.0.2.1", "secure": False}
