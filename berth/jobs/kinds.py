"""The kinds of job Berth runs, by name: ``setup`` and ``rotate-certs``."""

from __future__ import annotations

from berth.config import Settings
from berth.jobs.runner import JobKind

KIND_NAMES = ("setup", "rotate-certs")


def job_kinds(settings: Settings) -> dict[str, JobKind]:
    """Every job kind, built for ``settings``."""
    from berth.jobs.rotation import rotation_kind
    from berth.jobs.setup import setup_kind

    return {"setup": setup_kind(settings), "rotate-certs": rotation_kind(settings)}
