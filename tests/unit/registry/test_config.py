"""The registry config setup renders: token auth, what carries over, when the admin must confirm."""

from __future__ import annotations

import yaml

from berth.config import Settings
from berth.registry import config as rc


def _settings(offline_settings: Settings, **changes) -> Settings:
    base = {"public_url": "https://berth.example", "registry_service": "registry.example:5000"}
    return offline_settings.replace(**(base | changes))


def test_render_has_token_auth_and_deletes(offline_settings: Settings) -> None:
    s = _settings(offline_settings)
    config = yaml.safe_load(rc.render(s, "secret"))
    assert config["auth"] == {
        "token": {
            "realm": "https://berth.example/auth/token",
            "service": "registry.example:5000",
            "issuer": "berth",
            "rootcertbundle": rc.BUNDLE_TARGET,
        }
    }
    assert config["storage"]["delete"] == {"enabled": True}
    assert rc.render(s, "secret") == rc.render(s, "secret")  # deterministic: same secret name


def test_carried_sections_survive_and_ours_win(offline_settings: Settings) -> None:
    s = _settings(offline_settings)
    running = {
        "notifications": {"endpoints": [{"name": "hook", "url": "https://hook.example/events"}]},
        "middleware": {"storage": [{"name": "cloudfront"}]},
        "log": {"level": "debug"},
        "http": {"headers": {"X-Content-Type-Options": ["sniff"], "Strict-Transport-Security": ["max-age=63072000"]}},
        "auth": {"htpasswd": {"realm": "x", "path": "/h"}},
        "storage": {"filesystem": {"rootdirectory": "/elsewhere"}},
    }
    carried = rc.carried_sections(running)
    assert "auth" not in carried and "storage" not in carried
    config = yaml.safe_load(rc.render(s, "secret", carried))
    assert config["notifications"] == running["notifications"]
    assert config["middleware"] == running["middleware"] and config["log"] == {"level": "debug"}
    assert config["http"]["headers"] == {
        "Strict-Transport-Security": ["max-age=63072000"],
        "X-Content-Type-Options": ["nosniff"],
    }
    assert config["storage"]["filesystem"]["rootdirectory"] == str(s.nfs_path)
    assert "htpasswd" not in config["auth"]


def test_auth_change_says_when_to_confirm(offline_settings: Settings) -> None:
    s = _settings(offline_settings)
    ours = yaml.safe_load(rc.render(s, "secret"))
    assert rc.auth_change(s, ours, True) is None
    assert "Anonymous access stops" in rc.auth_change(s, {"http": {}}, True)
    assert "htpasswd" in rc.auth_change(s, {"auth": {"htpasswd": {}}}, True)
    other_realm = {"auth": {"token": {**ours["auth"]["token"], "realm": "https://other/token"}}}
    assert "replaced" in rc.auth_change(s, other_realm, True)
    assert "cannot read" in rc.auth_change(s, None, False)


def test_berths_events_endpoint_joins_the_operators(offline_settings: Settings) -> None:
    """With an events secret, the registry reports to Berth too; an operator's endpoints stay, ours is not doubled."""
    settings = _settings(offline_settings)
    theirs = {"endpoints": [{"name": "audit", "url": "https://audit.example/events"}, {"name": "berth", "url": "x"}]}
    config = yaml.safe_load(rc.render(settings, "s" * 32, {"notifications": theirs}, events_secret="e" * 32))
    endpoints = config["notifications"]["endpoints"]
    assert [e["name"] for e in endpoints] == ["audit", "berth"]
    ours = endpoints[1]
    assert ours["url"] == f"{settings.public_url}/api/v1/events"
    assert ours["headers"]["Authorization"] == ["Bearer " + "e" * 32]
    assert "notifications" not in yaml.safe_load(rc.render(settings, "s" * 32))  # no secret: no endpoint
