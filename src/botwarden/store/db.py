"""Engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
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
    if url.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        background = background_checkpoint and file is not None
        _configure_sqlite(engine, SAFETY_NET_PAGES if background else None)
        if background:
            _CHECKPOINTERS[engine] = WalCheckpointer(engine)
            _CHECKPOINTERS[engine].start()
        return engine
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
        cur.execute("PRAGMA busy_timeout=30000")
        if autocheckpoint_pages is not None:
            cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.info.pop("sqlite_begin", "BEGIN")
        # On the driver's connection itself: SQLAlchemy's statement machinery would cost
        # more than the BEGIN, and this runs for every transaction.
        conn.connection.dbapi_connection.execute(mode)


class WalCheckpointer(threading.Thread):
    """Checkpoints a SQLite database's write-ahead log every `every` seconds (PASSIVE: it
    copies what no reader still needs and never blocks a writer). Otherwise SQLite does it
    inside the commit that crosses `wal_autocheckpoint` pages: a few milliseconds added to a
    runner's bar now and then. A daemon thread for the life of the process's engine."""

    def __init__(self, engine: Engine, every: float = 0.5) -> None:
        super().__init__(name="wal-checkpointer", daemon=True)
        # Held weakly, and stopped by dispose(): the thread never keeps an engine alive.
        self.engine = weakref.ref(engine)
        self.file = _sqlite_file(engine.url.render_as_string(hide_password=False))
        self.every = every
        self.stopped = threading.Event()
        self.checkpoints = 0
        event.listen(engine, "engine_disposed", lambda _engine: self.stop())

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            engine = self.engine()
            if engine is None or self.file is None or not self.file.exists():
                return
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
            except Exception:  # busy, or the file went: SQLite's own checkpoint still runs
                log.debug("wal_checkpoint_failed", exc_info=True)
            del engine

    def stop(self) -> None:
        self.stopped.set()


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: Engine) -> WalCheckpointer | None:
    return _CHECKPOINTERS.get(engine)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a transaction that reads and then writes would otherwise fail with
    SQLITE_BUSY, without waiting, whenever another writer committed in between."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            yield conn


def insert_ignoring_duplicates(conn: Connection | Session, table: sa.Table,
                               **values: Any) -> None:
    """INSERT that does nothing when the row's key already exists (ON CONFLICT DO NOTHING),
    for rows several processes may create at once."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing())
