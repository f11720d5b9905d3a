"""The daily retention run: BERTH_RETENTION_SCHEDULE (HH:MM, UTC), checked by every job runner's thread.

Every worker's runner checks on each poll; the first to see the time past today's slot
records a ``retention`` job as the user ``schedule``. A second worker finds that job (the
store's one-per-kind rule refuses a second while it is queued or running, and a finished
one of today counts too), so the run happens once a day across workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from berth.errors import Conflict

if TYPE_CHECKING:
    from berth.config import Settings
    from berth.jobs.runner import JobRunner
    from berth.jobs.store import JobStore

log = logging.getLogger(__name__)

SCHEDULER = "schedule"


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
