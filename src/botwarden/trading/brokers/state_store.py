"""Where a simulated broker keeps its book: per account key, a snapshot of the whole book and a
journal of the changes after it, so a new broker on the same database and key resumes
exactly where the last one stopped.

A change is saved as a journal entry (what changed: a few hundred bytes), not the book; every
so often the broker writes a whole snapshot instead and the journal before it is dropped.
Either way the key's head revision moves on by one, and a save names the revision it
started from: it is refused when the head has moved on, because two brokers writing one
account key would otherwise silently overwrite each other's orders.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from botwarden.clock import Clock, utcnow
from botwarden.store.db import write_transaction
from botwarden.store.hot_sql import HotStatement
from botwarden.store.models.trading import PaperBrokerJournal as Journal
from botwarden.store.models.trading import PaperBrokerState as Row

State = dict[str, Any]


class BrokerStateConflict(RuntimeError):
    """Another broker instance saved this account key since this one loaded it."""


@dataclass(frozen=True)
class Stored:
    """What is stored for a key: the snapshot and the changes after it, in order."""

    snapshot: State
    changes: list[State] = field(default_factory=list)


class StateStore(Protocol):
    def load(self, account_key: str) -> Stored | None: ...

    def save(self, account_key: str, state: State, expected_revision: int) -> None:
        """Store a whole snapshot (at `state["revision"]`) if the head is still
        `expected_revision` (0: nothing stored); the journal before it is dropped."""
        ...

    def append(self, account_key: str, change: State, expected_revision: int) -> None:
        """Store one change (at `change["revision"]`) after the head `expected_revision`."""
        ...


def _conflict(account_key: str, expected: int) -> BrokerStateConflict:
    return BrokerStateConflict(
        f"paper broker state {account_key!r} is no longer at revision {expected}: "
        "one broker per account key")


# Built once: append runs for every change of a simulated book (its hot path).
_MOVE_HEAD = (sa.update(Row)
              .where(Row.account_key == sa.bindparam("key"),
                     Row.revision == sa.bindparam("expected"))
              .values(revision=sa.bindparam("head"),
                      updated_at=sa.bindparam("at", type_=Row.__table__.c.updated_at.type)))
_SNAPSHOT = _MOVE_HEAD.values(state=sa.bindparam("snapshot", type_=Row.__table__.c.state.type))
_ADD_CHANGE = HotStatement(sa.insert(Journal))
_MOVE_HEAD_HOT = HotStatement(_MOVE_HEAD)
_DROP_CHANGES = sa.delete(Journal).where(Journal.account_key == sa.bindparam("key"),
                                         Journal.revision <= sa.bindparam("upto"))


def load_stored(conn: Connection, account_key: str) -> Stored | None:
    snapshot = conn.execute(sa.select(Row.state).where(Row.account_key == account_key)
                            ).scalar_one_or_none()
    if snapshot is None:
        return None
    changes = conn.execute(
        sa.select(Journal.delta).where(Journal.account_key == account_key,
                                       Journal.revision > int(snapshot.get("revision", 0)))
        .order_by(Journal.revision)).scalars().all()
    return Stored(dict(snapshot), [dict(c) for c in changes])


class SqlStateStore:
    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def load(self, account_key: str) -> Stored | None:
        with self.engine.connect() as conn:
            return load_stored(conn, account_key)

    def save(self, account_key: str, state: State, expected_revision: int, *,
             conn: Connection | None = None) -> None:
        """As the protocol says; `conn`: in that open transaction instead of one of its own
        (the caller commits both, or neither)."""
        with self._transaction(account_key, expected_revision, conn) as tx:
            head = int(state["revision"])
            if expected_revision == 0:
                tx.execute(sa.insert(Row), {"account_key": account_key, "state": state,
                                            "revision": head, "updated_at": self.clock()})
                return
            moved = tx.execute(_SNAPSHOT, {"key": account_key, "expected": expected_revision,
                                           "head": head, "snapshot": state, "at": self.clock()})
            if moved.rowcount != 1:
                raise _conflict(account_key, expected_revision)
            tx.execute(_DROP_CHANGES, {"key": account_key, "upto": head})

    def append(self, account_key: str, change: State, expected_revision: int, *,
               conn: Connection | None = None) -> None:
        with self._transaction(account_key, expected_revision, conn) as tx:
            head = int(change["revision"])
            now = self.clock()
            moved = _MOVE_HEAD_HOT.execute(tx, {"key": account_key, "expected": expected_revision,
                                                "head": head, "at": now})
            if moved != 1:
                raise _conflict(account_key, expected_revision)
            _ADD_CHANGE.execute(tx, {"account_key": account_key, "revision": head,
                                     "delta": change, "created_at": now})

    def writes_in(self, conn: Connection) -> bool:
        """Whether a save can join `conn`'s transaction: the book is on that database."""
        return conn.engine is self.engine

    @contextmanager
    def _transaction(self, account_key: str, expected: int,
                     conn: Connection | None) -> Iterator[Connection]:
        try:
            if conn is not None:
                yield conn
                return
            with write_transaction(self.engine) as own:
                yield own
        except IntegrityError as exc:  # a first save raced another one
            raise _conflict(account_key, expected) from exc


class MemoryStateStore:
    """The same contract in memory: for backtests, benches and tests without a database.
    Rows are kept as JSON text, so what is not JSON fails here as it would in the table."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, str, list[str]]] = {}  # head, snapshot, changes
        self._lock = threading.Lock()
        self.saves = 0

    def load(self, account_key: str) -> Stored | None:
        with self._lock:
            row = self._rows.get(account_key)
        if row is None:
            return None
        return Stored(json.loads(row[1]), [json.loads(c) for c in row[2]])

    def save(self, account_key: str, state: State, expected_revision: int) -> None:
        text = json.dumps(state)
        with self._lock:
            self._check(account_key, expected_revision)
            self._rows[account_key] = (int(state["revision"]), text, [])
            self.saves += 1

    def append(self, account_key: str, change: State, expected_revision: int) -> None:
        text = json.dumps(change)
        with self._lock:
            self._check(account_key, expected_revision)
            _head, snapshot, changes = self._rows[account_key]
            changes.append(text)
            self._rows[account_key] = (int(change["revision"]), snapshot, changes)
            self.saves += 1

    def _check(self, account_key: str, expected: int) -> None:
        row = self._rows.get(account_key)
        if (row[0] if row else 0) != expected:
            raise _conflict(account_key, expected)
