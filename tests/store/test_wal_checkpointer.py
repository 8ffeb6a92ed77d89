"""SQLite's write-ahead log is checkpointed by a thread of the process's engine, not inside a
commit on a runner's hot path; SQLite's own checkpoint stays as a safety net, and disposing
of the engine stops the thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from botwarden.store.db import (
    SAFETY_NET_PAGES,
    ProcessWriter,
    WalCheckpointer,
    checkpointer_of,
    make_engine,
    process_writer,
    write_transaction,
)


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


def _commit_steadily(engine: Engine, stop: threading.Event, counts: list[int]) -> None:
    """One writer committing back to back, as runners do under load: the log never has a
    moment with nothing appended."""
    payload = "x" * 2_000
    while not stop.is_set():
        with write_transaction(engine) as conn:
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (?)", (payload,))
        counts[0] += 1


def test_under_steady_commits_the_checkpointer_starts_the_log_over(tmp_path: Path) -> None:
    """A PASSIVE checkpoint alone never lets the log start over while commits keep coming;
    it grew until a commit ran SQLite's own checkpoint, syncing both files inside it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")  # no checkpointer of its own
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")  # SQLite's own: never
    for conn_record in list(engine.pool._pool.queue):  # type: ignore[attr-defined]
        conn_record.dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    checkpointer = WalCheckpointer(engine, every=0.05, restart_frames=200)
    stop, counts = threading.Event(), [0]
    writer = threading.Thread(target=_commit_steadily, args=(engine, stop, counts))
    writer.start()
    checkpointer.start()
    try:
        assert _wait(lambda: checkpointer.restarts >= 3 and counts[0] > 2_000)
    finally:
        stop.set()
        writer.join(timeout=20)
        checkpointer.stop()
        checkpointer.join(timeout=20)
    wal = tmp_path / "db.sqlite-wal"
    # Each restart rewrites the log from its start: it stays near restart_frames pages.
    assert wal.stat().st_size < 20 * 200 * 4096, wal.stat().st_size
    engine.dispose()


def test_in_process_writers_take_turns_on_the_process_writer_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lock = _writer(engine).lock
    taken_elsewhere: list[bool] = []

    def try_elsewhere() -> None:
        got = lock.acquire(blocking=False)
        taken_elsewhere.append(not got)
        if got:
            lock.release()

    with write_transaction(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        other = threading.Thread(target=try_elsewhere)
        other.start()
        other.join()
    other = threading.Thread(target=try_elsewhere)
    other.start()
    other.join()
    assert taken_elsewhere == [True, False]
    engine.dispose()


def test_the_full_checkpoint_waits_for_this_processs_writer(tmp_path: Path) -> None:
    """The FULL checkpoint that restarts the log holds SQLite's write lock: it runs in the
    process's turn, so a runner queued behind it goes as soon as it is done."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
        for _ in range(50):
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (?)", ("y" * 3_000,))
    checkpointer = WalCheckpointer(engine, restart_frames=1)
    done = threading.Event()

    def checkpoint() -> None:
        with engine.connect() as conn:
            checkpointer.checkpoint(conn.connection.dbapi_connection, _writer(engine))
        done.set()

    with process_writer(engine):
        thread = threading.Thread(target=checkpoint)
        thread.start()
        assert not done.wait(0.3)  # queued behind this process's writer
        assert checkpointer.restarts == 0
    assert done.wait(20)
    thread.join()
    assert checkpointer.restarts == 1
    engine.dispose()


def _writer(engine: Engine) -> ProcessWriter:
    writer = process_writer(engine)
    assert isinstance(writer, ProcessWriter)
    return writer


def test_a_writer_held_past_the_busy_timeout_fails_as_sqlite_would() -> None:
    writer = ProcessWriter(timeout=0.1)
    failed: list[BaseException] = []

    def write_elsewhere() -> None:
        try:
            with writer:
                pass
        except OperationalError as error:
            failed.append(error)

    with writer:
        other = threading.Thread(target=write_elsewhere)
        other.start()
        other.join()
    assert len(failed) == 1 and "database is locked" in str(failed[0])


def test_the_checkpointer_never_opens_the_database_file_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite holds POSIX locks on the database file, and closing any descriptor of it drops
    every such lock of the process: another process may then take the database as unused
    (and, closing its last connection, checkpoint and delete the log under us)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
        for _ in range(50):
            conn.exec_driver_sql("INSERT INTO t (x) VALUES (?)", ("y" * 3_000,))
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    checkpointer = WalCheckpointer(engine, restart_frames=1)
    with engine.connect() as conn:
        assert checkpointer.checkpoint(conn.connection.dbapi_connection, _writer(engine))
    assert checkpointer.restarts == 1
    assert str(tmp_path / "db.sqlite") not in opened
    assert str(tmp_path / "db.sqlite-wal") in opened  # the log, which SQLite never locks
    engine.dispose()
