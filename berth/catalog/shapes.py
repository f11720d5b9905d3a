"""The JSON shapes of the catalog API (``/api/v1/repositories...``), from domain objects."""

from __future__ import annotations

from datetime import UTC, datetime

from berth.catalog.service import TagInfo, platforms_in_order
from berth.registry.model import HistoryEntry, Image, PlatformImage


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tag_summary(info: TagInfo, media_type: str | None = None) -> dict:
    """One entry of ``GET /api/v1/repositories/<name>/tags``."""
    image = info.image
    entry = {
        "tag": info.tag,
        "digest": info.digest,
        "media_type": image.media_type if image else media_type,
        "size_bytes": image.size_bytes if image else None,
        "created": iso(image.created) if image else None,
        "platforms": list(image.platforms) if image else [],
    }
    if info.error:
        entry["error"] = info.error
    return entry


def pull_lines(host: str, name: str, reference: str, digest: str) -> dict:
    """The exact ``docker pull`` lines, by tag and by digest."""
    by_digest = f"docker pull {host}/{name}@{digest}"
    by_tag = by_digest if reference == digest else f"docker pull {host}/{name}:{reference}"
    return {"tag": by_tag, "digest": by_digest}


def platform_detail(platform_image: PlatformImage) -> dict:
    """Layers and config of one platform's image."""
    config = platform_image.config
    manifest = platform_image.manifest
    return {
        "platform": platform_image.platform,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "size_bytes": platform_image.size_bytes,
        "created": iso(platform_image.created),
        "layers": [
            {"digest": layer.digest, "media_type": layer.media_type, "size_bytes": layer.size}
            for layer in manifest.layers
        ],
        "config": {
            "digest": manifest.config.digest,
            "labels": dict(config.labels) if config else {},
            "env": list(config.env) if config else [],
            "entrypoint": list(config.entrypoint) if config and config.entrypoint is not None else None,
            "cmd": list(config.cmd) if config and config.cmd is not None else None,
            "working_dir": config.working_dir if config else "",
            "user": config.user if config else "",
            "history": [_history(h) for h in config.history] if config else [],
        },
    }


def image_detail(host: str, name: str, reference: str, digest: str, image: Image) -> dict:
    """``GET /api/v1/repositories/<name>/tags/<reference>``: the summary plus layers, config and pull.

    For a multi-platform image, ``layers`` and ``config`` are those of the first platform
    (linux/amd64 when present) and ``images`` holds every platform's.
    """
    platforms = [platform_detail(p) for p in platforms_in_order(image)]
    first = platforms[0] if platforms else {"layers": [], "config": {}}
    return {
        "name": name,
        "tag": None if reference == digest else reference,
        "digest": digest,
        "media_type": image.media_type,
        "size_bytes": image.size_bytes,
        "created": iso(image.created),
        "platforms": list(image.platforms),
        "layers": first["layers"],
        "config": first["config"],
        "images": platforms,
        "pull": pull_lines(host, name, reference, digest),
    }


def _history(entry: HistoryEntry) -> dict:
    return {
        "created": iso(entry.created),
        "created_by": entry.created_by,
        "comment": entry.comment,
        "empty_layer": entry.empty_layer,
    }
