"""The order manager's write transactions, and a runner's bar in one of them.

Every write of the order manager first stores the broker's held changes (a simulated
broker's book on this database, `holding_changes`): what the broker did commits with what
we record of it, never after it; if the transaction does not commit, the broker reloads its
book, and both sides are as they were.

`one_transaction` (a runner's bar, with an in-process broker only: a transaction must not
stay open across a network call) makes those writes one transaction: the fills, the
broker's match and the bar's intents commit together, before the first order is sent
(`commit_early`), or at the scope's end. A failure inside rolls all of it back: a crash
there is a crash before the bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Engine

from botwarden.store.db import write_transaction

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager


class OneTransaction:
    """A write transaction opened at its first use and ended on demand."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.joined = False  # the broker's held changes went into it
        # The bot's gate and fence as read in it (`order_store.fenced_gate`): the transaction
        # holds the write lock (SQLite) or the rows (PostgreSQL), so it stays true in it.
        self.gate: Any = None
        self._scope: AbstractContextManager[Connection] | None = None
        self._conn: Connection | None = None

    def connection(self) -> Connection:
        if self._conn is None:
            self._scope = write_transaction(self.engine)
            self._conn = self._scope.__enter__()
        return self._conn

    def end(self, error: BaseException | None) -> None:
        """Commit (no `error`) or roll back."""
        scope, self._scope, self._conn = self._scope, None, None
        if scope is None:
            return
        if error is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(error), error, error.__traceback__)


def _write_held(manager: OrderManager, conn: Connection) -> bool:
    write_held = getattr(manager.broker, "write_held", None)
    return bool(write_held(conn)) if write_held is not None else False


def _held_lost(manager: OrderManager) -> None:
    manager.broker.held_lost()  # type: ignore[attr-defined]


@contextmanager
def write(manager: OrderManager) -> Iterator[Connection]:
    batch = manager.batch
    if batch is not None:
        conn = batch.connection()
        batch.joined |= _write_held(manager, conn)
        yield conn
        return
    joined = False
    try:
        with write_transaction(manager.engine) as conn:
            joined = _write_held(manager, conn)
            yield conn
    except BaseException:
        if joined:
            _held_lost(manager)
        raise


@contextmanager
def one_transaction(manager: OrderManager) -> Iterator[None]:
    if manager.batch is not None or not hasattr(manager.broker, "write_held"):
        yield
        return
    batch = manager.batch = OneTransaction(manager.engine)
    try:
        yield
    except BaseException as exc:
        _end(manager, batch, exc)
        raise
    _end(manager, batch, None)


def commit_early(manager: OrderManager) -> None:
    """Commit the bar's transaction now (its intents are about to be sent); the bar's
    later writes take transactions of their own."""
    if manager.batch is not None:
        _end(manager, manager.batch, None)


def _end(manager: OrderManager, batch: OneTransaction, error: BaseException | None) -> None:
    if manager.batch is not batch:
        return  # committed early already
    manager.batch = None
    try:
        batch.end(error)
    except BaseException:
        if batch.joined:
            _held_lost(manager)
        raise
    if error is not None and batch.joined:
        _held_lost(manager)
