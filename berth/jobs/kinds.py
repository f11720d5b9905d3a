"""The kinds of job Berth runs, named once: which exist, and which take a confirmation."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from berth.errors import NotFound

if TYPE_CHECKING:
    from berth.config import Settings
    from berth.jobs.runner import JobDefinition


class JobKind(StrEnum):
    """A kind of job, by the name the API, the CLI and the database use."""

    SETUP = "setup"
    ROTATE_CERTS = "rotate-certs"
    DISTRIBUTE_CA = "distribute-ca"
    ROTATE_CA = "rotate-ca"
    RETENTION = "retention"
    GC = "gc"

    @property
    def takes_confirm(self) -> bool:
        """Whether the kind takes ``confirm``.

        setup: go on despite critical findings, turn auth on; rotate-ca: remove the old CA
        now instead of after the grace period.
        """
        return self in (JobKind.SETUP, JobKind.ROTATE_CA)

    @classmethod
    def parse(cls, name: str) -> JobKind:
        """The kind called ``name``; NotFound for any other name."""
        try:
            return cls(name)
        except ValueError:
            raise NotFound(f"There is no job kind {name[:40]!r}; Berth runs {', '.join(cls)}.") from None

    @property
    def accepted_options(self) -> frozenset[str]:
        """The boolean options ``POST /api/v1/jobs`` takes beside ``kind`` for this kind."""
        accepted = {"confirm"} if self.takes_confirm else set()
        if self in (JobKind.GC, JobKind.RETENTION):
            accepted.add("dry_run")
        if self is JobKind.GC:
            accepted.add("delete_untagged")
        return frozenset(accepted)

    def options(self, confirm: bool = False, **flags: bool) -> dict:
        """The options a job of this kind is recorded with (flags it does not take are dropped)."""
        chosen = {"confirm": confirm, **flags}
        return {name: bool(chosen.get(name, False)) for name in sorted(self.accepted_options)}


def job_definitions(settings: Settings) -> dict[str, JobDefinition]:
    """Every job kind's definition, built for ``settings``."""
    from berth.jobs.ca_rotation import ca_rotation_kind
    from berth.jobs.distribute import distribute_kind
    from berth.jobs.gc import gc_kind
    from berth.jobs.retention import retention_kind
    from berth.jobs.rotation import rotation_kind
    from berth.jobs.setup import setup_kind

    return {
        JobKind.SETUP: setup_kind(settings),
        JobKind.ROTATE_CERTS: rotation_kind(settings),
        JobKind.DISTRIBUTE_CA: distribute_kind(settings),
        JobKind.ROTATE_CA: ca_rotation_kind(settings),
        JobKind.RETENTION: retention_kind(settings),
        JobKind.GC: gc_kind(settings),
    }
