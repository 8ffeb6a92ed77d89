"""Engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger(__name__)


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_file(url: str) -> Path | None:
    path = sa.engine.make_url(url).database
    if not path or path == ":memory:":
        return None
    return Path(path)


# With a background checkpointer, SQLite's own checkpoint (run inside whichever commit
# crosses this many WAL pages) is only a safety net: 10,000 pages of 4 KiB.
SAFETY_NET_PAGES = 10_000


def make_engine(url: str, *, background_checkpoint: bool = False, **kwargs: Any) -> Engine:
    """`background_checkpoint` (SQLite files; for a process's long-lived engine): checkpoint
    the WAL on a thread of its own (WalCheckpointer), not inside a commit on a hot path."""
    url = normalise_url(url)
    # A pool of connections hands out the one returned last. First in, first out (the
    # default), a runner's every transaction took the connection idle longest; on SQLite its
    # page cache was stale (any other connection's commit discards it), so every bar read
    # its pages again: 50 us of a bar's 0.9 ms in the runner latency bench. On PostgreSQL
    # the hot connections keep their prepared statements and server caches warm.
    if url.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is not None:  # in memory: one connection a thread, no pool to order
            file.parent.mkdir(parents=True, exist_ok=True)
            kwargs.setdefault("pool_use_lifo", True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        background = background_checkpoint and file is not None
        _configure_sqlite(engine, SAFETY_NET_PAGES if background else None)
        _WRITERS[engine] = ProcessWriter()
        if background:
            _CHECKPOINTERS[engine] = WalCheckpointer(engine)
            _CHECKPOINTERS[engine].start()
        return engine
    kwargs.setdefault("pool_use_lifo", True)
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, autocheckpoint_pages: int | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so that `BEGIN IMMEDIATE` can be chosen per
        # transaction (job claims take the write lock up front).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if autocheckpoint_pages is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.info.pop("sqlite_begin", "BEGIN")
        # On the driver's connection itself: SQLAlchemy's statement machinery would cost
        # more than the BEGIN, and this runs for every transaction.
        conn.connection.dbapi_connection.execute(mode)


# The log's size (4 KiB frames: 8 MiB) past which the checkpointer starts it over itself.
RESTART_FRAMES = 2_000
RESTART_ATTEMPTS = 5
RESTART_RETRY_SECONDS = 0.003
BUSY_TIMEOUT_MS = 30_000


class WalCheckpointer(threading.Thread):
    """Checkpoints a SQLite database's write-ahead log every `every` seconds, so that no
    commit on a runner's hot path does it.

    A PASSIVE checkpoint copies what no reader still needs and never blocks a writer, but
    it only lets the log start over when no frame was appended while it ran. Under a steady
    stream of commits (runners back to back, many runners) that never happens: the log grows
    until a commit crosses `wal_autocheckpoint` pages and runs SQLite's own checkpoint
    inside the commit, syncing the whole log and the database first (12-44 ms measured on a
    runner's bar). So past `restart_frames` this thread also syncs the log itself, with
    no lock held, and then runs a FULL checkpoint that refuses to wait (busy timeout 0):
    holding the write lock only for what was appended since, it leaves the log fully copied
    and the next commit starts it over. When a writer or a reader is in its way it tries
    again a few milliseconds later, and at its next pass. A daemon thread for the life of
    the process's engine."""

    def __init__(self, engine: Engine, every: float = 0.5,
                 restart_frames: int = RESTART_FRAMES) -> None:
        super().__init__(name="wal-checkpointer", daemon=True)
        # Held weakly, and stopped by dispose(): the thread never keeps an engine alive.
        self.engine = weakref.ref(engine)
        self.file = _sqlite_file(engine.url.render_as_string(hide_password=False))
        self.every = every
        self.restart_frames = restart_frames
        self.stopped = threading.Event()
        self.checkpoints = 0
        self.restarts = 0  # FULL checkpoints that left the log to start over
        event.listen(engine, "engine_disposed", lambda _engine: self.stop())

    def run(self) -> None:
        wait = self.every
        while not self.stopped.wait(wait):
            engine = self.engine()
            if engine is None or self.file is None or not self.file.exists():
                return
            try:
                with engine.connect() as conn:
                    restarted = self.checkpoint(conn.connection.dbapi_connection,
                                                _WRITERS.get(engine))
                self.checkpoints += 1
            except Exception:  # busy, or the file went: SQLite's own checkpoint still runs
                log.debug("wal_checkpoint_failed", exc_info=True)
                restarted = True
            # A log it could not start over (a reader was in the way) is tried again soon,
            # well before commits reach SQLite's own checkpoint.
            wait = self.every if restarted else RESTART_RETRY_SECONDS * 10
            del engine

    def checkpoint(self, raw: Any, writer: ProcessWriter | None = None) -> bool:
        """False when the log is past `restart_frames` and still could not start over."""
        _busy, frames, _copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < self.restart_frames or self.file is None:
            return True
        # The log only: SQLite holds POSIX locks on the database file, and closing any
        # descriptor of a file drops every such lock the process holds on it (SQLite's
        # "How To Corrupt", 2.2): another process could then take the database for unused.
        # Syncing the database file here too was followed once by "database disk image is
        # malformed" under `make run`. SQLite never locks the log.
        _sync(self.file.with_name(self.file.name + "-wal"))
        raw.execute("PRAGMA busy_timeout=0")
        try:
            for _attempt in range(RESTART_ATTEMPTS):
                # In this process's turn (process_writer): its writers wait for the FULL
                # checkpoint's hold on the write lock, not for SQLite's busy sleeps.
                with writer or nullcontext():
                    busy, _frames, _copied = raw.execute(
                        "PRAGMA wal_checkpoint(FULL)").fetchone()
                if not busy:
                    self.restarts += 1
                    return True
                if self.stopped.wait(RESTART_RETRY_SECONDS):
                    break
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return False

    def stop(self) -> None:
        self.stopped.set()


def _sync(path: Path) -> None:
    """Write `path`'s dirty pages to disk (any descriptor of a file flushes all of them).
    Never the database file itself: see WalCheckpointer.checkpoint."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: Engine) -> WalCheckpointer | None:
    return _CHECKPOINTERS.get(engine)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


class ProcessWriter:
    """This process's turn at SQLite's write lock (`process_writer`). Re-entrant; waits as
    long as SQLite's own busy timeout, then fails as SQLite would ("database is locked")."""

    def __init__(self, timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.lock = threading.RLock()
        self.timeout = timeout

    def __enter__(self) -> None:
        if not self.lock.acquire(timeout=self.timeout):
            raise sa.exc.OperationalError(
                "BEGIN IMMEDIATE", None,
                sqlite3.OperationalError("database is locked: another writer of this "
                                         "process held it for the whole busy timeout"))

    def __exit__(self, *_exc: object) -> None:
        self.lock.release()


# SQLite's one writer at a time, queued in this process (make_engine's SQLite engines).
_WRITERS: weakref.WeakKeyDictionary[Engine, ProcessWriter] = weakref.WeakKeyDictionary()


def process_writer(engine: Engine) -> AbstractContextManager[Any]:
    """This process's turn at SQLite's write lock. SQLite lets one connection write at a
    time; one that finds the lock taken sleeps in its busy handler, 1 ms, then 2, 5, 10 ms
    and more, however soon the lock comes free. In-process writers (a worker's runners, the
    state writer, the WAL checkpointer's FULL checkpoint) queue on this lock instead and go
    as soon as it is released; writers of other processes still meet in SQLite's handler.
    A no-op for other engines."""
    return _WRITERS.get(engine) or nullcontext()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a transaction that reads and then writes would otherwise fail with
    SQLITE_BUSY, without waiting, whenever another writer committed in between."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        with process_writer(engine), conn.begin():
            yield conn


def insert_ignoring_duplicates(conn: Connection | Session, table: sa.Table,
                               **values: Any) -> None:
    """INSERT that does nothing when the row's key already exists (ON CONFLICT DO NOTHING),
    for rows several processes may create at once."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing())
