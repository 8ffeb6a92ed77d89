"""SQLite's write-ahead log is checkpointed by a thread of the process's engine, not inside a
commit on a runner's hot path; SQLite's own checkpoint stays as a safety net, and disposing
of the engine stops the thread."""

from __future__ import annotations

import time
from pathlib import Path

from botwarden.store.db import SAFETY_NET_PAGES, checkpointer_of, make_engine


def _wait(condition: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_background_checkpointer_runs_and_stops_with_the_engine(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", background_checkpoint=True)
    checkpointer = checkpointer_of(engine)
    assert checkpointer is not None and checkpointer.is_alive()
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == SAFETY_NET_PAGES
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert _wait(lambda: checkpointer.checkpoints >= 2)
    with engine.connect() as conn:  # the log was copied back: nothing left to checkpoint
        busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and frames == done
    engine.dispose()
    checkpointer.join(timeout=20)
    assert not checkpointer.is_alive()


def test_engines_without_it_keep_sqlites_own_checkpoint(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert checkpointer_of(engine) is None
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()
