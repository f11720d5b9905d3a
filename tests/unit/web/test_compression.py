"""gzip in the app: text above 1 KB when the client accepts it; small, binary and static left alone."""

from __future__ import annotations

import gzip

import pytest

from tests.helpers import make_app


@pytest.fixture
def client(offline_settings):
    return make_app(offline_settings).test_client()


def test_pages_are_gzipped_when_accepted(client):
    plain = client.get("/login")
    packed = client.get("/login", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert plain.headers.get("Content-Encoding") is None and len(plain.data) > 1024
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert len(packed.data) < len(plain.data) * 0.8
    # the same page apart from its CSRF token and nonce: compare the shape, not the bytes
    assert gzip.decompress(packed.data).decode().count("<input") == plain.get_data(as_text=True).count("<input")


def test_small_and_static_responses_are_not(client):
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert small.status_code == 200 and small.headers.get("Content-Encoding") is None
    static = client.get("/static/css/berth.css", headers={"Accept-Encoding": "gzip"})
    assert static.status_code == 200 and static.headers.get("Content-Encoding") is None
    static.close()


def test_static_urls_are_versioned_and_cached(client):
    page = client.get("/login").get_data(as_text=True)
    href = page.split('href="/static/css/berth.css?v=', 1)[1].split('"', 1)[0]
    assert len(href) == 12
    static = client.get(f"/static/css/berth.css?v={href}")
    assert "max-age=31536000" in static.headers["Cache-Control"]
    static.close()
