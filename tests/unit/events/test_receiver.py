"""The receiver endpoint in a test app: bearer secret, media type, size cap, all or nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from berth.events.parse import EVENTS_MEDIA_TYPE
from berth.events.secret import SECRET_FILE, events_secret
from berth.registry.config import notifications_section
from tests.helpers import make_app

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
SECRET = "test-events-secret-0123456789"


@pytest.fixture
def client(offline_settings):
    return make_app(offline_settings.replace(events_secret=SECRET)).test_client()


def post(client, body: bytes, secret: str | None = SECRET, content_type: str = EVENTS_MEDIA_TYPE):
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return client.post("/api/v1/events", data=body, headers=headers)


def stored(client) -> int:
    return len(client.application.extensions["berth"].events.store.recent(1000))


def test_a_push_is_accepted_once(client):
    body = (DATA / "push-tag.json").read_bytes()
    first = post(client, body)
    assert first.status_code == 200 and first.get_json() == {"received": 1, "stored": 1, "ignored": 0}
    assert post(client, body).get_json()["stored"] == 0
    assert stored(client) == 1
    assert "berth_session" not in first.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-0123456789", SECRET + "x", SECRET.upper()])
def test_wrong_or_missing_secret_is_401(client, secret):
    response = post(client, (DATA / "push-tag.json").read_bytes(), secret=secret)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(client) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{}", "text/plain", 415),
        (b"\xff" * 10, EVENTS_MEDIA_TYPE, 400),
        (b"[" * 200_000, EVENTS_MEDIA_TYPE, 400),
        (b" " * (5 * 1024 * 1024 + 1), EVENTS_MEDIA_TYPE, 413),
        (json.dumps({"events": [{"id": "x"}] * 5000}).encode(), EVENTS_MEDIA_TYPE, 400),
    ],
)
def test_hostile_bodies_change_nothing(client, body, content_type, status):
    assert post(client, body, content_type=content_type).status_code == status
    assert stored(client) == 0


def test_reading_the_feed_needs_a_login(client):
    assert client.get("/api/v1/events").status_code == 401
    assert client.get("/activity").status_code == 302


def test_generated_secret_is_kept_private_and_stable(tmp_path):
    first = events_secret(None, tmp_path)
    assert len(first) >= 32 and events_secret(None, tmp_path) == first
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert events_secret("configured-secret-0123", tmp_path) == "configured-secret-0123"


def test_notifications_section_for_the_registry(offline_settings):
    assert notifications_section(offline_settings, SECRET) is None  # no BERTH_PUBLIC_URL: nowhere to send
    section = notifications_section(offline_settings.replace(public_url="https://berth.example"), SECRET)
    (endpoint,) = section["endpoints"]
    assert endpoint["url"] == "https://berth.example/api/v1/events"
    assert endpoint["headers"] == {"Authorization": [f"Bearer {SECRET}"]}
    assert {"timeout", "threshold", "backoff"} <= set(endpoint)
