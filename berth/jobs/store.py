"""The job store: jobs and their steps in SQLite, and the records read back from it.

Any gunicorn worker may create a job, run it, or show it: the database is the only
shared state. A unique partial index makes "one queued or running job per kind" hold
across workers. A job whose heartbeat stopped (Berth was stopped mid-job) is marked
``interrupted`` by :meth:`JobStore.mark_interrupted`, naming the step it was in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from berth.audit import AuditLog
from berth.db import Database
from berth.errors import Conflict, NotFound

if TYPE_CHECKING:
    from berth.jobs.runner import JobDefinition

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    address TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat REAL,
    runner TEXT,
    error TEXT,
    result TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_kind ON jobs (kind) WHERE status IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS job_steps (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    log TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, position)
);
"""


FINISHED = ("succeeded", "failed", "interrupted")

STALE_AFTER = 15.0


@dataclass(frozen=True)
class StepRecord:
    """A step as stored."""

    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    log: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "log": self.log,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True)
class JobRecord:
    """A job as stored."""

    id: int
    kind: str
    status: str
    requested_by: str
    address: str
    options: dict
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result: dict
    steps: tuple[StepRecord, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict:
        """The JSON of ``GET /api/v1/jobs/<id>``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "requested_by": self.requested_by,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
            "result": self.result,
            "steps": [s.as_dict() for s in self.steps],
        }


class JobStore:
    """Jobs and their steps in SQLite."""

    def __init__(self, db: Database, audit: AuditLog, stale_after: float = STALE_AFTER):
        self._db = db
        self._audit = audit
        self.stale_after = stale_after
        db.add_schema(SCHEMA)

    def create(self, kind: JobDefinition, requested_by: str, address: str, options: dict | None = None) -> JobRecord:
        """Record a queued job with its planned steps; Conflict if one of that kind is active."""
        options = options or {}
        steps = kind.steps(options)
        now = time.time()
        try:
            with self._db.connect() as conn:
                cursor = conn.execute(
                    "INSERT INTO jobs (kind, status, requested_by, address, options, created_at)"
                    " VALUES (?, 'queued', ?, ?, ?, ?)",
                    (kind.name, requested_by, address, json.dumps(options), now),
                )
                job_id = cursor.lastrowid
                assert job_id is not None  # set by the INSERT just above
                conn.executemany(
                    "INSERT INTO job_steps (job_id, position, name, status) VALUES (?, ?, ?, 'pending')",
                    [(job_id, i, step.name) for i, step in enumerate(steps)],
                )
        except Exception as exc:
            if "UNIQUE" not in str(exc):
                raise
            active = self.active(kind.name)
            raise Conflict(
                f"A {kind.name} job is already {active.status if active else 'active'}"
                f" (job {active.id if active else '?'})."
            ) from None
        self._audit.record("job", "requested", requested_by, address, f"{kind.name} #{job_id}")
        return self.get(job_id)

    def active(self, kind: str) -> JobRecord | None:
        """The queued or running job of ``kind``, if any."""
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE kind = ? AND status IN ('queued', 'running')", (kind,)
            ).fetchone()
        return self.get(row["id"]) if row else None

    def get(self, job_id: int) -> JobRecord:
        """The job with its steps; NotFound if there is none."""
        if not 0 < job_id < 2**63:  # SQLite raises OverflowError past its integer range
            raise NotFound(f"There is no job {job_id}.")
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            steps = conn.execute("SELECT * FROM job_steps WHERE job_id = ? ORDER BY position", (job_id,)).fetchall()
        if row is None:
            raise NotFound(f"There is no job {job_id}.")
        return _job(row, steps)

    def recent(self, limit: int = 50) -> list[JobRecord]:
        """Newest jobs first (without step logs)."""
        with self._db.connect() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_job(row, []) for row in rows]

    def claim(self, runner: str, job_id: int | None = None) -> JobRecord | None:
        """Take the oldest queued job (or job ``job_id``) for ``runner``; atomic across workers."""
        now = time.time()
        with self._db.connect(immediate=True) as conn:
            if job_id is None:
                row = conn.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            else:
                row = conn.execute("SELECT id FROM jobs WHERE id = ? AND status = 'queued'", (job_id,)).fetchone()
            if row is None:
                return None
            cursor = conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, heartbeat = ?, runner = ?"
                " WHERE id = ? AND status = 'queued'",
                (now, now, runner, row["id"]),
            )
            if cursor.rowcount != 1:
                return None
        return self.get(row["id"])

    def heartbeat(self, job_id: int) -> None:
        """Say the job's runner is alive."""
        with self._db.connect() as conn:
            conn.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job_id))

    def step_started(self, job_id: int, position: int) -> None:
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE job_steps SET status = 'running', started_at = ? WHERE job_id = ? AND position = ?",
                (time.time(), job_id, position),
            )

    def step_finished(self, job_id: int, position: int, status: str) -> None:
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE job_steps SET status = ?, finished_at = ? WHERE job_id = ? AND position = ?",
                (status, time.time(), job_id, position),
            )

    def append_log(self, job_id: int, position: int, message: str) -> None:
        """Append a timestamped line to a step's log."""
        line = f"{datetime.now(UTC):%H:%M:%S} {message}\n"
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE job_steps SET log = log || ? WHERE job_id = ? AND position = ?", (line, job_id, position)
            )

    def finish(self, job_id: int, status: str, error: str | None, result: dict) -> None:
        """Record the outcome; remaining pending steps are marked skipped."""
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ?, result = ? WHERE id = ?",
                (status, time.time(), error, json.dumps(result), job_id),
            )
            conn.execute("UPDATE job_steps SET status = 'skipped' WHERE job_id = ? AND status = 'pending'", (job_id,))
        job = self.get(job_id)
        self._audit.record(
            "job", status, job.requested_by, job.address, f"{job.kind} #{job_id}" + (f": {error}" if error else "")
        )

    def mark_interrupted(self) -> list[int]:
        """Jobs left running by a Berth that stopped: interrupted, naming the step they were in."""
        cutoff = time.time() - self.stale_after
        with self._db.connect() as conn:
            rows = conn.execute(
                "SELECT id FROM jobs WHERE status = 'running' AND (heartbeat IS NULL OR heartbeat < ?)", (cutoff,)
            ).fetchall()
        interrupted = []
        for row in rows:
            job = self.get(row["id"])
            step = next((s.name for s in job.steps if s.status == "running"), None)
            with self._db.connect() as conn:
                conn.execute(
                    "UPDATE job_steps SET status = 'interrupted' WHERE job_id = ? AND status = 'running'", (job.id,)
                )
            self.finish(
                job.id,
                "interrupted",
                f"Berth stopped during step {step!r}." if step else "Berth stopped before the job's first step.",
                job.result,
            )
            interrupted.append(job.id)
        return interrupted


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _job(row, steps) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        requested_by=row["requested_by"],
        address=row["address"],
        options=json.loads(row["options"] or "{}"),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),  # NOT NULL
        started_at=_ts(row["started_at"]),
        finished_at=_ts(row["finished_at"]),
        error=row["error"],
        result=json.loads(row["result"] or "{}"),
        steps=tuple(
            StepRecord(s["name"], s["status"], _ts(s["started_at"]), _ts(s["finished_at"]), s["log"]) for s in steps
        ),
    )
