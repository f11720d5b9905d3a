"""Backup and restore of Berth's SQLite database (``flask --app app backup|restore FILE``).

``backup`` copies the database while Berth runs, through SQLite's online backup API: one
read transaction, so the copy is consistent even while workers write (WAL lets them go on).
The copy is checked (``PRAGMA integrity_check``), made self-contained (no ``-wal`` file)
and renamed into place only when complete.

``restore`` puts a copy back. It refuses while Berth runs: gunicorn's master holds a shared
lock on ``BERTH_DATA_DIR/berth.lock`` for as long as it serves (:func:`hold_running_lock`,
called from ``gunicorn.conf.py``), and restore needs that lock exclusively. ``force``
restores anyway (a running Berth then sees the data change under it). The copy is written
through the backup API too, so a ``-wal`` file left by a crash is never mixed with it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from berth.errors import BerthError

LOCK = "berth.lock"
#: Tables every Berth database has: a file without them is not a Berth backup.
REQUIRED_TABLES = ("audit", "sessions")


class BackupError(BerthError):
    """A backup or restore could not be made; nothing was changed."""


@dataclass(frozen=True)
class BackupSummary:
    """What a backup holds: its size and the rows in each table."""

    path: Path
    size_bytes: int
    rows: dict[str, int]


def hold_running_lock(data_dir: Path) -> IO[str]:
    """Take the shared "Berth runs" lock; keep the returned file open for as long as Berth serves."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    handle = open(Path(data_dir) / LOCK, "a")  # noqa: SIM115 - held open on purpose
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def berth_running(data_dir: Path) -> bool:
    """True if a Berth server holds the lock on ``data_dir`` (tested without waiting)."""
    path = Path(data_dir) / LOCK
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def backup(database: Path, target: Path) -> BackupSummary:
    """Copy ``database`` to ``target`` consistently, while Berth may be writing to it."""
    source = Path(database)
    if not source.is_file():
        raise BackupError(f"No database at {source}: check BERTH_DATA_DIR.")
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        summary = inspect_copy(partial)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"Backup to {target} failed: {exc}") from exc
    return BackupSummary(target, summary.size_bytes, summary.rows)


def inspect_copy(path: Path) -> BackupSummary:
    """Check that ``path`` is an intact Berth database; BackupError saying why not."""
    if not Path(path).is_file():
        raise BackupError(f"{path} does not exist.")
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            # table names come from the file's own schema, quoted
            rows = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    if verdict != "ok":
        raise BackupError(f"{path} is damaged: {verdict}")
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise BackupError(f"{path} is not a Berth database (no table {', '.join(missing)}).")
    return BackupSummary(Path(path), Path(path).stat().st_size, rows)


def restore(source: Path, database: Path, force: bool = False) -> BackupSummary:
    """Replace ``database`` with the backup ``source``.

    Refuses (BackupError) while a Berth server runs on the database's directory unless
    ``force``, and always when ``source`` is not an intact Berth database.
    """
    summary = inspect_copy(source)
    target = Path(database)
    if berth_running(target.parent) and not force:
        raise BackupError(
            f"Berth is running on {target.parent} (it holds {LOCK}): stop it first "
            "(docker service scale berth_berth=0), or pass --force."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(target, timeout=30)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"Restore into {target} failed: {exc}") from exc
    return BackupSummary(target, target.stat().st_size, summary.rows)
