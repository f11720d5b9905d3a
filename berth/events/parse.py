"""The registry's notification envelope (bytes from the wire) into RegistryEvent, once, at the edge.

All or nothing: one malformed event rejects the whole envelope (the registry retries
it), so a batch is never half stored. Events whose action Berth does not know are kept
out of the store by the caller, not rejected: a registry newer than Berth must not wedge
its own retry queue on them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from berth.errors import BadRequest
from berth.events.model import RegistryEvent
from berth.registry.references import DIGEST_RE, NAME_RE, TAG_RE

#: The envelope's media type (Distribution's ``notifications.EventsMediaType``).
EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
ACCEPTED_TYPES = frozenset({EVENTS_MEDIA_TYPE, "application/json"})
#: Distribution sends one event per envelope; a relay may batch. More than this is refused.
MAX_EVENTS = 1000
_SHORT = 256  # ids, actors, addresses, user agents: longer is not something a registry sends


def parse_envelope(body: bytes, content_type: str | None) -> list[RegistryEvent]:
    """The events of one envelope; BadRequest (400, or 415 for the media type) if any is wrong."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        raise BadRequest(f"Send the events as {EVENTS_MEDIA_TYPE}.", status=415)
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.") from None
    except RecursionError:
        raise BadRequest("The body is nested too deeply.") from None
    except ValueError:
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise BadRequest('The body must be an object {"events": [...]}.')
    events = document["events"]
    if len(events) > MAX_EVENTS:
        raise BadRequest(f"At most {MAX_EVENTS} events per envelope.")
    return [parse_event(event, index) for index, event in enumerate(events)]


def parse_event(raw: Any, index: int = 0) -> RegistryEvent:
    """One event object; BadRequest naming the event and field when it is malformed."""
    if not isinstance(raw, dict):
        raise BadRequest(f"Event {index} is not an object.")
    target = _object(raw, "target", index, required=True)
    actor, source, request = (_object(raw, key, index) for key in ("actor", "source", "request"))
    repository = _text(target, "repository", index, required=True, limit=255)
    if not NAME_RE.match(repository or ""):
        raise BadRequest(f"Event {index}: target.repository is not a repository name.")
    tag = _text(target, "tag", index, limit=128)
    if tag is not None and not TAG_RE.match(tag):
        raise BadRequest(f"Event {index}: target.tag is not a tag.")
    digest = _text(target, "digest", index, limit=200)
    if digest is not None and not DIGEST_RE.match(digest):
        raise BadRequest(f"Event {index}: target.digest is not a digest.")
    return RegistryEvent(
        id=_text(raw, "id", index, required=True) or "",
        at=_timestamp(raw.get("timestamp"), index),
        action=_text(raw, "action", index, required=True, limit=32) or "",
        repository=repository or "",
        tag=tag,
        digest=digest,
        media_type=_text(target, "mediaType", index),
        size=_size(target.get("size"), index),
        actor=_text(actor, "name", index) or None,
        source_addr=_text(source, "addr", index) or None,
        request_addr=_text(request, "addr", index) or None,
        user_agent=_text(request, "useragent", index, limit=1024) or None,
    )


def _object(raw: dict, key: str, index: int, required: bool = False) -> dict:
    value = raw.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Event {index}: {key} must be an object.")
    return value


def _text(raw: dict, key: str, index: int, required: bool = False, limit: int = _SHORT) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"Event {index}: {key} is missing.")
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise BadRequest(f"Event {index}: {key} must be a string of at most {limit} characters.")
    return value


def _timestamp(value: Any, index: int) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"Event {index}: timestamp is missing.")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"Event {index}: timestamp is not an RFC 3339 time.") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _size(value: Any, index: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise BadRequest(f"Event {index}: target.size must be a non-negative integer.")
    return value


def parse_since(text: str | None) -> datetime | None:
    """``since=`` of the feed: an RFC 3339 time or Unix seconds; BadRequest when it is neither."""
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        at = datetime.fromisoformat(text[:64])
    except ValueError:
        raise BadRequest("since must be an RFC 3339 time or Unix seconds.") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def parse_cursor(text: str | None) -> tuple[float, int] | None:
    """``before=`` of the feed (``TIME_SEQ`` from a ``next`` link); BadRequest when malformed."""
    if not text:
        return None
    at, _, seq = text.partition("_")
    try:
        return float(at), int(seq)
    except ValueError:
        raise BadRequest("before must come from a next link.") from None


def cursor_of(at: datetime, seq: int) -> str:
    """The ``before=`` value that continues a page after the event (``at``, ``seq``)."""
    return f"{at.timestamp():.6f}_{seq}"
