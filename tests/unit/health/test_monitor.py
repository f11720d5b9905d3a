"""The health monitor's states: nothing reads "healthy" from a component nobody checked."""

from __future__ import annotations

import time

import pytest

from berth.db import Database
from berth.findings import Finding, Level
from berth.health.monitor import COMPONENTS, HealthMonitor
from berth.report import ComponentReport


def _report(level: Level | None = None) -> dict:
    findings = [Finding(level, f"something {level.value}")] if level else []
    return ComponentReport(findings=findings).as_dict()


def _monitor(tmp_path, probes, interval: float = 10.0) -> HealthMonitor:
    return HealthMonitor(Database(tmp_path / "berth.sqlite3"), probes, interval=interval, deadline=1.0)


def test_never_checked_is_unknown_and_not_ok(tmp_path):
    snapshot = _monitor(tmp_path, {name: _report for name in COMPONENTS}).snapshot()
    for name in COMPONENTS:
        assert snapshot[name]["state"] == "unknown"
        assert snapshot[name]["ok"] is False
        assert snapshot[name]["age_seconds"] is None


@pytest.mark.parametrize(
    ("level", "state", "ok"),
    [(None, "healthy", True), (Level.OK, "healthy", True), (Level.INFO, "healthy", True),
     (Level.WARNING, "warning", True), (Level.CRITICAL, "critical", False)],
)  # fmt: skip
def test_checked_components_get_the_state_of_their_findings(tmp_path, level, state, ok):
    monitor = _monitor(tmp_path, {name: (lambda: _report(level)) for name in COMPONENTS})
    monitor.run_once()
    part = monitor.snapshot()["registry"]
    assert (part["state"], part["ok"]) == (state, ok)


def test_an_old_check_is_stale_and_not_ok(tmp_path):
    monitor = _monitor(tmp_path, {name: _report for name in COMPONENTS}, interval=0.1)
    monitor.run_once()
    assert monitor.snapshot()["nfs"]["state"] == "healthy"
    with monitor._db.connect() as conn:  # the last check, made long ago
        conn.execute("UPDATE health SET checked_at = ?", (time.time() - 3600,))
    monitor._cache = None
    part = monitor.snapshot()["nfs"]
    assert (part["state"], part["ok"]) == ("stale", False)
    assert part["age_seconds"] >= 3600


def test_a_probe_that_raises_is_critical_not_unknown(tmp_path):
    def broken() -> dict:
        raise RuntimeError("bug")

    monitor = _monitor(tmp_path, {"registry": broken})
    monitor.run_once()
    part = monitor.snapshot()["registry"]
    assert (part["state"], part["ok"]) == ("critical", False)
