"""/auth/token without a directory: signing, shapes, and the refusals that need no bind."""

from __future__ import annotations

import base64

import jwt
import pytest
from cryptography import x509

from berth.auth.tokens import SigningKeys, signing_bundle_pem, signing_dir
from tests.helpers import make_app


@pytest.fixture
def client(offline_settings):
    return make_app(offline_settings.replace(registry_service="reg.test:5000")).test_client()


def decode(token: str) -> dict:
    """Verify ``token`` the way Distribution does: x5c certificate, ES256, aud and iss."""
    header = jwt.get_unverified_header(token)
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    return jwt.decode(token, cert.public_key(), algorithms=["ES256"], audience="reg.test:5000", issuer="berth")


def test_anonymous_gets_a_valid_token_with_nothing_granted(client, offline_settings):
    response = client.get("/auth/token?service=reg.test:5000&scope=repository:centos:pull")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300 and body["issued_at"].endswith("Z")
    claims = decode(body["token"])
    assert claims["access"] == [] and claims["sub"] == "" and isinstance(claims["aud"], str)
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]
    bundle = signing_bundle_pem(offline_settings.data_dir)
    assert bundle.startswith(b"-----BEGIN CERTIFICATE-----")
    assert (signing_dir(offline_settings.data_dir) / "current.key").stat().st_mode & 0o777 == 0o600
    assert "Set-Cookie" not in response.headers


def test_anonymous_pull_when_enabled(offline_settings):
    client = make_app(offline_settings.replace(anonymous_pull=True)).test_client()
    body = client.get("/auth/token?scope=repository:centos:pull,push&scope=registry:catalog:*").get_json()
    assert decode_any(body["token"])["access"] == [{"type": "repository", "name": "centos", "actions": ["pull"]}]


def decode_any(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "service=other", 400),
        ({"Authorization": "Basic !!!not-base64!!!"}, "", 401),
        ({"Authorization": "Bearer abc"}, "", 401),
        ({"Authorization": "Basic " + base64.b64encode(b"dave:" + b"x" * 10240).decode()}, "", 401),
        ({"Authorization": "Basic " + base64.b64encode(b"dave:dave-pw").decode()}, "", 503),
        ({"Authorization": "Basic " + base64.b64encode(b"dave:dave-pw").decode()}, "account=alice", 400),
    ],
)
def test_refusals_are_json_with_the_right_status(client, headers, query, status):
    response = client.get(f"/auth/token?{query}", headers=headers)
    assert response.status_code == status
    assert response.get_json()["error"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_hostile_scopes_grant_nothing(client):
    scopes = "&".join(["scope=repository:../etc:pull", "scope=" + "a" * 5000, "scope=repository:a:pull"] * 300)
    response = client.get(f"/auth/token?{scopes}")
    assert response.status_code == 200
    assert decode_any(response.get_json()["token"])["access"] == []


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "x"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "dave"}, "invalid_request"),
        ({}, "unsupported_grant_type"),
    ],
)
def test_oauth_post_refusals_send_containerd_to_get(client, form, error):
    response = client.post("/auth/token", data=form)
    assert response.status_code == 400 and response.get_json()["error"] == error


def test_rotation_keeps_the_old_certificate_trusted(tmp_path):
    keys = SigningKeys(tmp_path).load()
    first = keys.bundle_pem()
    keys.stage_next()
    assert keys.bundle_pem().count(b"BEGIN CERTIFICATE") == 2
    old = keys.sign({"a": 1})
    keys.promote_next()
    bundle = keys.bundle_pem()
    assert first in bundle and bundle.count(b"BEGIN CERTIFICATE") == 2
    assert jwt.get_unverified_header(old)["x5c"] != jwt.get_unverified_header(keys.sign({"a": 1}))["x5c"]
