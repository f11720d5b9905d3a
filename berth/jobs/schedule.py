"""Scheduled jobs, checked by every job runner's thread on each poll.

The daily retention run (BERTH_RETENTION_SCHEDULE, HH:MM UTC): the first worker to see the
time past today's slot records a ``retention`` job as the user ``schedule``. A second worker
finds that job (the store's one-per-kind rule refuses a second while it is queued or
running, and a finished one of today counts too), so the run happens once a day.

The end of a CA rotation's overlap: once the grace period has passed, a ``rotate-ca`` job
removes the old CA (checked at most once a minute; the store's one-per-kind rule again
keeps it to one job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from berth.errors import Conflict
from berth.tls.authority import Authority

if TYPE_CHECKING:
    from berth.config import Settings
    from berth.jobs.runner import JobRunner
    from berth.jobs.store import JobStore

log = logging.getLogger(__name__)

SCHEDULER = "schedule"
CA_CHECK_SECONDS = 60.0


def due(schedule: str, now: datetime, last_run: datetime | None) -> bool:
    """Whether the daily run at ``schedule`` (HH:MM UTC) is due at ``now`` given the last scheduled run."""
    hour, minute = (int(part) for part in schedule.split(":"))
    slot = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return now >= slot and (last_run is None or last_run < slot)


def retention_tick(settings: Settings, store: JobStore) -> Callable[[JobRunner], None] | None:
    """The runner's tick that queues the scheduled retention run, or None when no schedule is set."""
    schedule = settings.retention_schedule
    if not schedule or settings.retention_rules is None:
        return None

    def tick(runner: JobRunner) -> None:
        from berth.jobs.kinds import JobKind

        now = datetime.now(UTC)
        last = next((j.created_at for j in store.recent(200) if j.kind == JobKind.RETENTION and
                     j.requested_by == SCHEDULER), None)  # fmt: skip
        if not due(schedule, now, last):
            return
        try:
            runner.submit(JobKind.RETENTION, SCHEDULER, "127.0.0.1", JobKind.RETENTION.options(False))
            log.info("queued the scheduled retention run (%s UTC)", schedule)
        except Conflict:
            pass  # another worker queued it, or an admin's run is active

    return tick


def ca_overlap_tick(settings: Settings) -> Callable[[JobRunner], None]:
    """The runner's tick that queues ``rotate-ca`` once a CA rotation's grace period has passed."""
    authority = Authority(settings.ca_dir)
    checked = [0.0]

    def tick(runner: JobRunner) -> None:
        from berth.jobs.kinds import JobKind

        if time.monotonic() - checked[0] < CA_CHECK_SECONDS:
            return
        checked[0] = time.monotonic()
        try:
            state = authority.state()
        except (OSError, ValueError, TypeError):
            log.exception("cannot read the CA rotation record in %s", settings.ca_dir)
            return
        if state is None or not state.removal_due():
            return
        try:
            runner.submit(JobKind.ROTATE_CA, SCHEDULER, "127.0.0.1", JobKind.ROTATE_CA.options(False))
            log.info("queued rotate-ca: the overlap of the old and the new CA has ended")
        except Conflict:
            pass  # already queued or running

    return tick


def scheduled_ticks(settings: Settings, store: JobStore) -> Callable[[JobRunner], None]:
    """Every scheduled check, as the one tick the runner calls."""
    ticks = [t for t in (retention_tick(settings, store), ca_overlap_tick(settings)) if t is not None]

    def tick(runner: JobRunner) -> None:
        for each in ticks:
            each(runner)

    return tick
