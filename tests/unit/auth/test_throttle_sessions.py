"""The audit log and server-side sessions on a real SQLite file (throttling: test_login_throttle)."""

from __future__ import annotations

import time

import pytest

from berth.audit import AuditLog, printable
from berth.auth.sessions import SessionStore
from berth.db import Database
from berth.roles import Role


@pytest.fixture
def db(tmp_path):
    return Database(tmp_path / "berth.sqlite3")


def test_audit_sanitises_user_text(db):
    audit = AuditLog(db)
    audit.record("login", "failure", "al\x00ice" + "x" * 500, "::1", "detail\nline")
    entry = audit.recent(1)[0]
    assert "\x00" not in entry.username and len(entry.username) <= 256
    assert "\n" not in entry.detail
    assert printable("plain") == "plain"


def test_sessions_create_get_end(db):
    store = SessionStore(db, lifetime=3600)
    record = store.create("alice", "uid=alice,ou=people", "Alice", Role.ADMIN, "127.0.0.1")
    assert store.get(record.id).role is Role.ADMIN
    store.refresh(record.id, "Alice A.", Role.OPS)
    assert store.get(record.id).role is Role.OPS
    store.end(record.id)
    assert store.get(record.id) is None
    assert store.get("forged") is None


def test_sessions_expire(db):
    store = SessionStore(db, lifetime=1)
    record = store.create("dave", "uid=dave", "Dave", Role.DEVELOPER, "127.0.0.1")
    time.sleep(1.1)
    assert store.get(record.id) is None


def test_a_worker_boots_while_another_writes(tmp_path):
    """Creating the schema (every worker does at boot) waits for a writer instead of failing."""
    import sqlite3
    import threading

    path = tmp_path / "berth.sqlite3"
    Database(path)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO audit (at, action, outcome, username, address) VALUES (0, 'x', 'x', 'x', 'x')")
    release = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    release.start()
    Database(path).add_schema("CREATE TABLE IF NOT EXISTS extra (id INTEGER)")
    release.join()
    writer.close()


def test_workers_booting_together_on_a_fresh_database(tmp_path):
    """Two gunicorn workers switch a new file to WAL at the same moment: neither may fail."""
    import threading

    failures = []

    def boot(path):
        try:
            Database(path)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            failures.append(exc)

    for round_ in range(15):
        path = tmp_path / f"fresh-{round_}.sqlite3"
        threads = [threading.Thread(target=boot, args=(path,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
