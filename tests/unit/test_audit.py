"""The audit page's reading of the log: filters, folded API logins, links to jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from berth.audit import AuditEntry, AuditFilter, AuditLog, grouped
from berth.db import Database

T = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)


def entry(n, action="login", outcome="success", user="ci", detail="api: developer", at=T):
    return AuditEntry(n, at, action, outcome, user, "10.0.0.1", detail)


def test_api_logins_fold_per_user_and_hour_but_failures_and_form_logins_stay():
    entries = [
        entry(6),
        entry(5, at=T - timedelta(minutes=3)),
        entry(4, outcome="failure", detail="api"),
        entry(3, detail="form: developer"),
        entry(2, at=T - timedelta(hours=1)),
        entry(1, action="job", outcome="requested", user="alice", detail="setup #12"),
    ]
    rows = grouped(entries)
    assert [(r.entry.id, r.count) for r in rows] == [(6, 2), (4, 1), (3, 1), (2, 1), (1, 1)]
    assert rows[-1].job_id == 12 and rows[0].job_id is None


def test_filters_by_user_action_and_day(tmp_path):
    db = Database(tmp_path / "berth.db")

    log = AuditLog(db)
    log.record("login", "success", "dave", "1.2.3.4", "form: developer")
    log.record("job", "requested", "alice", "1.2.3.4", "setup #1")
    assert [e.username for e in log.recent(filters=AuditFilter(username="dave"))] == ["dave"]
    assert [e.action for e in log.recent(filters=AuditFilter(action="job"))] == ["job"]
    today = datetime.now(UTC).date()
    assert len(log.recent(filters=AuditFilter(day=today))) == 2
    assert log.recent(filters=AuditFilter(day=today - timedelta(days=2))) == []
