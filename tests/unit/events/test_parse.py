"""Parsing the registry's notification envelopes, on envelopes captured from Distribution 2.8.2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from berth.errors import BadRequest
from berth.events.ingest import kept
from berth.events.parse import EVENTS_MEDIA_TYPE, parse_cursor, parse_envelope, parse_since

DATA = Path(__file__).resolve().parents[2] / "data" / "events"
DIGEST = "sha256:78611df68c4d85023b622267bc4feb5b23d3540915315d84fb82c4d18a4cab94"


def captured(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


def test_tagged_push_as_captured():
    (event,) = parse_envelope(captured("push-tag"), EVENTS_MEDIA_TYPE)
    assert event.id == "3dd289c7-1034-4089-b714-4b7eb7015824"
    assert event.action == "push" and event.repository == "team/app" and event.tag == "1.0"
    assert event.digest == DIGEST and event.size == 526
    assert event.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert event.at == datetime(2026, 11, 30, 2, 3, 58, 412497, tzinfo=UTC)  # nanoseconds cut to micro
    assert event.request_addr == "127.0.0.1:39056" and event.user_agent == "python-requests/2.34.2"
    assert event.actor is None  # no auth on that registry: "actor": {}
    assert event.namespace == "team" and event.is_manifest and kept(event)


@pytest.mark.parametrize(
    ("name", "action", "tag", "is_kept"),
    [
        ("push-blob", "push", None, False),  # a layer: says nothing Berth shows
        ("push-digest", "push", None, True),
        ("pull-get", "pull", "1.0", True),
        ("delete-manifest", "delete", None, True),
        ("delete-tag", "delete", "1.0", True),
    ],
)
def test_every_captured_kind(name, action, tag, is_kept):
    (event,) = parse_envelope(captured(name), EVENTS_MEDIA_TYPE + "; charset=utf-8")
    assert (event.action, event.tag, kept(event)) == (action, tag, is_kept)


def test_berths_own_reads_are_not_pulls():
    raw = json.loads(captured("pull-get"))
    raw["events"][0]["request"]["useragent"] = "berth"
    (event,) = parse_envelope(json.dumps(raw).encode(), EVENTS_MEDIA_TYPE)
    assert not kept(event)


def test_unknown_action_is_parsed_but_not_kept():
    raw = json.loads(captured("push-tag"))
    raw["events"][0]["action"] = "teleport"
    (event,) = parse_envelope(json.dumps(raw).encode(), "application/json")
    assert not kept(event)


def _mutated(change) -> bytes:
    raw = json.loads(captured("push-tag"))
    change(raw["events"][0])
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (captured("push-tag"), "text/plain", 415),
        (captured("push-tag"), None, 415),
        (b"\xff\xfe{}", EVENTS_MEDIA_TYPE, 400),
        (b"not json", EVENTS_MEDIA_TYPE, 400),
        (b"[" * 100_000 + b"]" * 100_000, EVENTS_MEDIA_TYPE, 400),
        (b'{"events": {}}', EVENTS_MEDIA_TYPE, 400),
        (b"[]", EVENTS_MEDIA_TYPE, 400),
        (json.dumps({"events": [{}] * 1001}).encode(), EVENTS_MEDIA_TYPE, 400),
        (b'{"events": [1]}', EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.pop("id")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.pop("timestamp")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.update(timestamp="yesterday")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.pop("target")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e["target"].update(repository="../etc")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e["target"].update(tag="a b")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e["target"].update(digest="md5:1")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e["target"].update(size=True)), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e["target"].update(size=-1)), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.update(actor="alice")), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.update(actor={"name": "x" * 300})), EVENTS_MEDIA_TYPE, 400),
        (_mutated(lambda e: e.update(id=["a"])), EVENTS_MEDIA_TYPE, 400),
    ],
)
def test_hostile_or_malformed_envelopes_are_refused(body, content_type, status):
    with pytest.raises(BadRequest) as caught:
        parse_envelope(body, content_type)
    assert caught.value.status == status


def test_one_bad_event_rejects_the_whole_envelope():
    good = json.loads(captured("push-tag"))["events"][0]
    body = json.dumps({"events": [good, {**good, "id": ""}]}).encode()
    with pytest.raises(BadRequest, match="Event 1"):
        parse_envelope(body, EVENTS_MEDIA_TYPE)


def test_feed_query_values():
    assert parse_since("1700000000") == datetime.fromtimestamp(1700000000, UTC)
    assert parse_since("2024-05-01T00:00:00Z") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_cursor("1700000000.5_42") == (1700000000.5, 42)
    for bad in ("soon", "nan"):
        with pytest.raises(BadRequest):
            parse_since(bad)
    with pytest.raises(BadRequest):
        parse_cursor("x_y")
