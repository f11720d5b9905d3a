"""The kinds of job Berth runs, by name: ``setup`` and ``rotate-certs``."""

from __future__ import annotations

from berth.config import Settings
from berth.jobs import JobKind

KIND_NAMES = ("setup", "rotate-certs")


def job_kinds(settings: Settings) -> dict[str, JobKind]:
    """Every job kind, built for ``settings``."""
    from berth.rotation import rotation_kind
    from berth.setup import setup_kind

    return {"setup": setup_kind(settings), "rotate-certs": rotation_kind(settings)}
