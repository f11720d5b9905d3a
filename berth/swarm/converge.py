"""Waiting for a Swarm service to converge, the way ``docker service update`` waits.

Tasks of the service's current spec (the engine's ``_up-to-date`` filter) are counted per
slot; the count must stay complete for the monitor period, and an update Swarm reports
as running must have completed. A paused update, a rollback by Swarm (unless the caller
is putting the old spec back itself) or the deadline ends the wait with a plain message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import docker

from berth.errors import ConvergenceFailed
from berth.swarm.parse import parse_time

#: How long a new task must keep running before an update counts as good (UpdateConfig.Monitor).
MONITOR_SECONDS = 5
#: Putting the old certificate back gets at least this long, whatever the deadline setting.
RESTORE_MIN_SECONDS = 60.0


def _update_state(service: dict, since: datetime | None) -> tuple[str | None, str]:
    """The service's UpdateStatus state and message, None when absent or older than ``since``."""
    status = service.get("UpdateStatus") or {}
    started = parse_time(status.get("StartedAt"))
    if not status or (since is not None and started is not None and (since - started).total_seconds() > 2):
        return None, ""
    return status.get("State"), status.get("Message", "")


def _desired_tasks(client: docker.DockerClient, service: dict) -> int:
    mode = service["Spec"].get("Mode", {})
    if "Replicated" in mode:
        return int(mode["Replicated"].get("Replicas", 1))
    listed = client.api.services(filters={"id": service["ID"]}, status=True)
    return int((listed[0].get("ServiceStatus") or {}).get("DesiredTasks", 0)) if listed else 0


def _slots(tasks: list[dict]) -> dict[object, dict]:
    """The newest task of each slot (each node for a global service) meant to be running."""
    newest: dict[object, dict] = {}
    for task in tasks:
        if task.get("DesiredState") != "running":
            continue
        slot = task.get("Slot") or task.get("NodeID")
        if slot not in newest or task["Version"]["Index"] > newest[slot]["Version"]["Index"]:
            newest[slot] = task
    return newest


def wait_converged(
    client: docker.DockerClient,
    service_id: str,
    *,
    timeout: float,
    since: datetime | None = None,
    hold: float = MONITOR_SECONDS,
    restore: bool = False,
    log: Callable[[str], None] | None = None,
) -> float:
    """Wait until every slot runs an up-to-date task for ``hold`` seconds; return the seconds taken.

    As ``docker service update`` does: tasks of the current spec are counted per slot, and
    the count must stay complete for the monitor period. A paused update, or (unless
    ``restore``, when putting the old spec back) a rollback by Swarm, fails at once;
    so does the deadline. ``since`` is when the update was sent (older statuses are ignored).
    """
    began = time.monotonic()
    stable_since: float | None = None
    last, said = "no task yet", ""
    while True:
        service = client.api.inspect_service(service_id)
        state, message = _update_state(service, since)
        if state in ("paused", "rollback_paused") and not restore:
            raise ConvergenceFailed(f"Swarm paused the {'rollback' if 'rollback' in state else 'update'}: {message}")
        if state in ("rollback_started", "rollback_completed") and not restore:
            raise ConvergenceFailed(f"Swarm rolled the update back: {message or state}")
        desired = _desired_tasks(client, service)
        tasks = _slots(client.api.tasks(filters={"service": service_id, "_up-to-date": "true"}))
        running = sum(1 for t in tasks.values() if t["Status"]["State"] == "running")
        states = sorted(
            {
                f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message', '')}"
                for t in tasks.values()
            }
        )
        last = f"{running}/{desired} tasks running" + (f", update {state}" if state else "")
        last += f" ({'; '.join(states)})" if states else ""
        if log and last != said:
            log(f"  {last}")
            said = last
        now = time.monotonic()
        if desired > 0 and running >= desired:
            stable_since = stable_since if stable_since is not None else now
            if now - stable_since >= hold and state not in ("updating", "rollback_started"):
                return now - began
        else:
            stable_since = None
        if now - began > timeout:
            raise ConvergenceFailed(f"The service did not converge within {timeout:g} s ({last}).")
        time.sleep(0.2)


def now_utc() -> datetime:
    """The time an update is sent (for :func:`wait_converged`'s ``since``)."""
    return datetime.now(UTC)
