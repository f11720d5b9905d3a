"""Jobs: what a job is made of (kinds, steps, their context) and the runner that runs them.

Jobs are recorded in SQLite before they run, one of a kind at a time, steps with logs
(the store is :mod:`berth.jobs.store`). Each worker runs a small daemon thread that claims
queued jobs, so a job queued by a worker that then died is still run. A running job's
runner writes a heartbeat; a job whose heartbeat stopped (Berth was stopped mid-job) is marked
``interrupted`` at the next start, naming the step it was in.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.errors import BerthError, NotFound
from berth.jobs.kinds import JobKind
from berth.jobs.store import JobRecord, JobStore

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


@dataclass
class StepContext:
    """What a running step may use: the job's options and a log that lands in SQLite."""

    job_id: int
    options: dict
    store: JobStore
    position: int
    result: dict = field(default_factory=dict)

    def log(self, message: str) -> None:
        """Append a line to this step's log (never pass secrets here)."""
        self.store.append_log(self.job_id, self.position, message)


@dataclass(frozen=True)
class Step:
    """A named unit of a job."""

    name: str
    run: Callable[[StepContext], None]


@dataclass(frozen=True)
class JobDefinition:
    """What a kind of job does: its steps, and what to do when one fails."""

    name: JobKind
    steps: Callable[[dict], list[Step]]
    on_failure: Callable[[StepContext, Exception], None] | None = None


class JobRunner:
    """Runs queued jobs in a daemon thread of this process, one at a time."""

    def __init__(
        self,
        store: JobStore,
        kinds: Callable[[], dict[str, JobDefinition]],
        poll: float = 1.0,
        background: bool = True,
        tick: Callable[[JobRunner], None] | None = None,
    ):
        self.store = store
        self.background = background
        self._kinds_factory = kinds
        self._kinds: dict[str, JobDefinition] | None = None
        self.poll = poll
        self._name = f"{os.uname().nodename}:{os.getpid()}"
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._tick = tick  # scheduled work (the daily retention run), checked on every poll

    @property
    def kinds(self) -> dict[str, JobDefinition]:
        """The job kinds by name (built on first use)."""
        if self._kinds is None:
            self._kinds = self._kinds_factory()
        return self._kinds

    def kind(self, name: str) -> JobDefinition:
        """The definition of the job kind called ``name``; NotFound for any other name."""
        if name not in self.kinds:
            raise NotFound(f"There is no job kind {name!r}; Berth runs {', '.join(sorted(self.kinds))}.")
        return self.kinds[name]

    def submit(self, kind: JobKind, user: str, address: str, options: dict) -> JobRecord:
        """Record a job (before anything runs) and wake the runner; Conflict if one of that kind is active."""
        job = self.store.create(self.kind(kind), user, address, options)
        if self.background:
            self.start()
            self.wake()
        return job

    def start(self) -> None:
        """Start polling for queued jobs (once per process)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._name = f"{os.uname().nodename}:{os.getpid()}"
            self._thread = threading.Thread(target=self._loop, name="berth-jobs", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while True:
            try:
                self.store.mark_interrupted()
                if self._tick is not None:
                    self._tick(self)
                while self.run_next():
                    pass
            except Exception:  # the loop must outlive any bug in a job
                log.exception("job runner failed")
            self._wake.wait(self.poll)
            self._wake.clear()

    def run_next(self) -> bool:
        """Claim and run one queued job; False when there was none."""
        job = self.store.claim(self._name)
        if job is None:
            return False
        self.run(job)
        return True

    def run(self, job: JobRecord, echo: Callable[[str], None] | None = None) -> JobRecord:
        """Run a claimed job's steps in order; on a failure, the kind's on_failure restores things."""
        kind = self.kinds[job.kind]
        steps = kind.steps(job.options)
        result: dict = {}
        beat = _Heartbeat(self.store, job.id)
        beat.start()
        context = StepContext(job.id, job.options, self.store, 0, result)
        try:
            for position, step in enumerate(steps):
                context.position = position
                self.store.step_started(job.id, position)
                if echo:
                    echo(f"→ {step.name}")
                try:
                    step.run(context)
                except Exception as exc:
                    self._fail(job, kind, context, position, exc, echo)
                    return self.store.get(job.id)
                self.store.step_finished(job.id, position, "succeeded")
            self.store.finish(job.id, "succeeded", None, result)
        finally:
            beat.stop()
        return self.store.get(job.id)

    def _fail(self, job, kind, context, position, exc, echo) -> None:
        message = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, BerthError):
            log.error("job %s step %d failed:\n%s", job.id, position, traceback.format_exc())
        context.log(f"FAILED: {message}")
        self.store.step_finished(job.id, position, "failed")
        if echo:
            echo(f"  failed: {message}")
        if kind.on_failure is not None:
            try:
                kind.on_failure(context, exc)
            except Exception as cleanup:  # report, but the original failure is what the job says
                log.exception("job %s cleanup failed", job.id)
                context.log(f"Cleanup failed too: {cleanup}")
        self.store.finish(job.id, "failed", message, context.result)


class _Heartbeat:
    """Writes the job's heartbeat every few seconds while it runs."""

    def __init__(self, store: JobStore, job_id: int):
        self._store, self._job_id = store, job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"berth-job-{job_id}-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._store.heartbeat(self._job_id)
            except Exception:  # a locked database for a moment must not end the job
                log.warning("job %s heartbeat failed", self._job_id)
