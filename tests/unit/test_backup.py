"""Backup and restore on real SQLite files: consistent while written to, refused while Berth runs."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from berth import backup as backups
from berth.audit import AuditLog
from berth.db import Database
from tests.helpers import make_app


def berth_db(path: Path, rows: int = 3) -> Database:
    db = Database(path)
    audit = AuditLog(db)
    for i in range(rows):
        audit.record("login", "ok", f"user{i}", "127.0.0.1")
    return db


def count(path: Path, table: str = "audit") -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names


def test_backup_is_one_intact_file_with_every_committed_row(tmp_path):
    database = tmp_path / "data" / "berth.sqlite3"
    berth_db(database, rows=5)
    summary = backups.backup(database, tmp_path / "copy.db")
    assert summary.rows["audit"] == 5 and summary.size_bytes > 0
    assert not (tmp_path / "copy.db-wal").exists() and not (tmp_path / "copy.db.partial").exists()
    with closing(sqlite3.connect(tmp_path / "copy.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert (database.parent / "berth.sqlite3-wal").exists() or count(database) == 5  # the source stays WAL


def test_backup_while_a_writer_commits_is_consistent(tmp_path):
    """A writer inserts in pairs in one transaction: every copy holds whole pairs only."""
    database = tmp_path / "berth.sqlite3"
    db = berth_db(database, rows=0)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            with db.connect(immediate=True) as conn:
                for half in ("a", "b"):
                    conn.execute(
                        "INSERT INTO audit (at, action, outcome, username, address) VALUES (0, 'x', ?, 'w', '')",
                        (half,),
                    )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copies = [backups.backup(database, tmp_path / f"copy{i}.db") for i in range(10)]
    finally:
        stop.set()
        writer.join(10)
    for summary in copies:
        assert summary.rows["audit"] % 2 == 0
    assert copies[-1].rows["audit"] > 0


def test_backup_of_a_missing_database_says_where_it_looked(tmp_path):
    with pytest.raises(backups.BackupError, match="No database at"):
        backups.backup(tmp_path / "nothing.sqlite3", tmp_path / "copy.db")


def test_restore_puts_the_backup_back(tmp_path):
    database = tmp_path / "data" / "berth.sqlite3"
    berth_db(database, rows=2)
    backups.backup(database, tmp_path / "copy.db")
    AuditLog(Database(database)).record("login", "ok", "later", "127.0.0.1")
    assert count(database) == 3
    summary = backups.restore(tmp_path / "copy.db", database)
    assert summary.rows["audit"] == 2 and count(database) == 2
    assert Database(database) and count(database) == 2  # Berth opens it again as usual


def test_restore_refuses_while_berth_runs_unless_forced(tmp_path):
    database = tmp_path / "data" / "berth.sqlite3"
    berth_db(database, rows=2)
    backups.backup(database, tmp_path / "copy.db")
    berth_db(database, rows=1)
    lock = backups.hold_running_lock(database.parent)  # what gunicorn's master holds
    try:
        assert backups.berth_running(database.parent)
        with pytest.raises(backups.BackupError, match="Berth is running"):
            backups.restore(tmp_path / "copy.db", database)
        assert count(database) == 3
        backups.restore(tmp_path / "copy.db", database, force=True)
        assert count(database) == 2
    finally:
        lock.close()
    assert not backups.berth_running(database.parent)


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_restore_refuses_what_is_not_sqlite(tmp_path, content):
    (tmp_path / "junk.db").write_bytes(content)
    database = tmp_path / "berth.sqlite3"
    berth_db(database, rows=1)
    with pytest.raises(backups.BackupError):
        backups.restore(tmp_path / "junk.db", database)
    assert count(database) == 1


def test_restore_refuses_another_applications_database(tmp_path):
    with closing(sqlite3.connect(tmp_path / "other.db")) as conn:
        conn.execute("CREATE TABLE things (id INTEGER)")
        conn.commit()
    with pytest.raises(backups.BackupError, match="not a Berth database"):
        backups.restore(tmp_path / "other.db", tmp_path / "berth.sqlite3")


def test_commands_back_up_and_restore(offline_settings, tmp_path):
    app = make_app(offline_settings)
    runner = app.test_cli_runner()
    AuditLog(Database(offline_settings.database_path)).record("login", "ok", "dave", "127.0.0.1")
    done = runner.invoke(args=["backup", str(tmp_path / "copy.db")])
    assert done.exit_code == 0, done.output
    assert "audit: 1 rows" in done.output
    lock = backups.hold_running_lock(offline_settings.data_dir)
    try:
        refused = runner.invoke(args=["restore", str(tmp_path / "copy.db")])
        assert refused.exit_code == 1 and "Berth is running" in refused.output
        forced = runner.invoke(args=["restore", "--force", str(tmp_path / "copy.db")])
        assert forced.exit_code == 0 and "warning: Berth is running" in forced.output
    finally:
        lock.close()
    assert runner.invoke(args=["restore", str(tmp_path / "copy.db")]).exit_code == 0
