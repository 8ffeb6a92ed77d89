"""Where a simulated broker keeps its book: one `paper_broker_state` row per account key,
written whole after every change in its own short transaction, so a new broker on the same
database and key resumes exactly where the last one stopped.

Each saved state carries a revision. A save names the revision it started from and is
refused when the row has moved on: two brokers writing one account key would otherwise
silently overwrite each other's orders.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import Clock, utcnow
from botwarden.store.db import write_transaction
from botwarden.store.models.trading import PaperBrokerState as Row

State = dict[str, Any]


class BrokerStateConflict(RuntimeError):
    """Another broker instance saved this account key since this one loaded it."""


class StateStore(Protocol):
    def load(self, account_key: str) -> State | None: ...

    def save(self, account_key: str, state: State, expected_revision: int) -> None:
        """Store `state` if the stored revision is still `expected_revision` (0: no row)."""
        ...


def _revision(state: State | None) -> int:
    return int(state.get("revision", 0)) if state else 0


# Built once: the save runs for every change of a simulated book (its hot path).
_REVISION = (sa.select(Row.state["revision"].as_integer())
             .where(Row.account_key == sa.bindparam("key")).with_for_update())
_UPDATE = (sa.update(Row).where(Row.account_key == sa.bindparam("key"))
           .values(state=sa.bindparam("new_state", type_=Row.__table__.c.state.type),
                   updated_at=sa.bindparam("at", type_=Row.__table__.c.updated_at.type)))


class SqlStateStore:
    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def load(self, account_key: str) -> State | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(Row.state).where(Row.account_key == account_key)
            ).scalar_one_or_none()
        return dict(value) if value is not None else None

    def save(self, account_key: str, state: State, expected_revision: int) -> None:
        with write_transaction(self.engine) as conn:
            # Only the revision is read (json_extract / ->>), not the whole book.
            row = conn.execute(_REVISION, {"key": account_key}).first()
            stored = 0 if row is None else int(row[0] or 0)
            if stored != expected_revision:
                raise BrokerStateConflict(
                    f"paper broker state {account_key!r} is at revision {stored}, "
                    f"this broker expected {expected_revision}: one broker per account key")
            if row is None:
                conn.execute(sa.insert(Row), {"account_key": account_key, "state": state,
                                              "updated_at": self.clock()})
            else:
                conn.execute(_UPDATE, {"key": account_key, "new_state": state,
                                       "at": self.clock()})


class MemoryStateStore:
    """The same contract in memory: for backtests, benches and tests without a database.
    Rows are kept as JSON text, so what is not JSON fails here as it would in the table."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self.saves = 0

    def load(self, account_key: str) -> State | None:
        with self._lock:
            row = self._rows.get(account_key)
        return dict(json.loads(row[1])) if row is not None else None

    def save(self, account_key: str, state: State, expected_revision: int) -> None:
        text = json.dumps(state)
        with self._lock:
            stored = self._rows.get(account_key)
            if (stored[0] if stored else 0) != expected_revision:
                raise BrokerStateConflict(f"state {account_key!r} moved on")
            self._rows[account_key] = (_revision(state), text)
            self.saves += 1
