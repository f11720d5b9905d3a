"""LoadBoard: one reader per key across workers, progress, partial results, stale readers replaced."""

from __future__ import annotations

from berth.catalog.progress import LoadBoard
from berth.db import Database


def test_claims_are_single_flight_and_taken_over_when_stale(tmp_path):
    db = Database(tmp_path / "berth.db")
    one, two = LoadBoard(db, "x|"), LoadBoard(db, "x|")
    assert one.claim("k", 10) and not two.claim("k", 10)
    one.advance("k", 4)
    one.put_partial("k", {"a": "1", "b": "2"})
    status = two.status("k")
    assert status is not None and (status.done, status.total, status.running, status.percent) == (4, 10, True, 40)
    assert two.partial("k", ["b", "c"]) == {"b": "2"}
    with db.connect() as conn:
        conn.execute("UPDATE loads SET beat_at = beat_at - 3600 WHERE key = 'x|k'")
    assert two.claim("k", 10)  # the first reader's worker died
    two.finish("k")
    assert two.partial("k") == {} and not two.status("k").running
