"""The order manager's write transactions, and a runner's bar in one of them.

Every write of the order manager first stores the broker's held changes (a simulated
broker's book on this database, `holding_changes`): what the broker did commits with what
we record of it, never after it; if the transaction does not commit, the broker reloads its
book, and both sides are as they were.

`one_transaction` (a runner's bar, with an in-process broker only: a transaction must not
stay open across a network call) makes those writes one transaction. When the bar sends
orders, its intents commit before the first is sent (`commit_early`; with the broker's
changes so far if the bar already wrote what it recorded of them): the bar's
fills, worked out in memory meanwhile (fill_intake), are owed to the store
(`manager.pending`) and the broker's changes (its match, cancels and the submits to come)
stay held; both are written by the next write that is not the intents' (`write_owed`),
after the orders are sent, with their acknowledgements. So the broker's match commits with
our fills of it, and its acceptance of an order with our acknowledgement. A crash after
the intents committed leaves them PENDING and the broker's book as before the bar: the
restarted runner meets the bar again, the broker matches it the same way, and the intents
are sent again under their client ids (resolve_open), as after a crash before the send.
A bar without orders commits everything at the scope's end. A failure inside rolls all of
it back: a crash there is a crash before the bar.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from botwarden.store.db import write_transaction
from botwarden.store.hot_sql import Pipeline

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager


class OneTransaction:
    """A write transaction opened at its first use and ended on demand."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._scope: AbstractContextManager[Connection] | None = None
        self._conn: Connection | None = None
        # Something besides intents was written (fills, statuses): what the broker did
        # must then commit with it, even on an early commit.
        self.recorded = False
        self.pipeline: Pipeline | None = None  # PostgreSQL: the intents' round trips

    @property
    def opened(self) -> bool:
        return self._conn is not None

    def connection(self) -> Connection:
        if self._conn is None:
            self._scope = write_transaction(self.engine)
            self._conn = self._scope.__enter__()
        return self._conn

    def unpipelined(self) -> None:
        """Leave pipeline mode (what was sent is answered): SQLAlchemy's statements follow."""
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.close()

    def end(self, error: BaseException | None) -> None:
        """Commit (no `error`) or roll back."""
        scope, self._scope, self._conn = self._scope, None, None
        pipeline, self.pipeline = self.pipeline, None
        if scope is None:
            return
        if pipeline is not None:
            try:
                if error is None:
                    pipeline.commit()  # the COMMIT goes with what the pipeline holds
                pipeline.close(error)
            except BaseException as failed:
                pipeline.close(failed)
                scope.__exit__(type(failed), failed, failed.__traceback__)
                raise
        if error is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(error), error, error.__traceback__)


def _write_held(manager: OrderManager, conn: Connection) -> bool:
    write_held = getattr(manager.broker, "write_held", None)
    return bool(write_held(conn)) if write_held is not None else False


def _held_lost(manager: OrderManager) -> None:
    manager.broker.held_lost()  # type: ignore[attr-defined]


def write_owed(manager: OrderManager, conn: Connection) -> None:
    """The writes worked out in memory and owed to the store (a bar's fills), in order."""
    owed, manager.pending = manager.pending, []
    for pending in owed:
        pending(conn)


@contextmanager
def write(manager: OrderManager, *, intents: bool = False) -> Iterator[Connection]:
    """The manager's next write; it first writes what is owed, unless it holds a bar's
    `intents` (those are persisted first, and sent; what is owed comes after)."""
    batch = manager.batch
    if batch is not None:  # the broker's held changes go in once, at its commit (_end)
        conn = batch.connection()
        if not intents:
            batch.unpipelined()
            batch.recorded = True
            write_owed(manager, conn)
        yield conn
        return
    joined = False
    try:
        with write_transaction(manager.engine) as conn:
            joined = _write_held(manager, conn)
            if not intents:
                write_owed(manager, conn)
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
        manager.pending.clear()  # the bar failed: the runner restarts from the store
        committed_early = manager.batch is not batch
        _end(manager, batch, exc)
        if committed_early:  # what the broker did since is not stored either: it reloads
            _held_lost(manager)
        raise
    _end(manager, batch, None, owed=True)
    if manager.pending:  # the bar's fills, after its orders: no write of the bar took them
        with write(manager):
            pass


def pipeline_intents(manager: OrderManager) -> None:
    """On PostgreSQL, in a bar whose transaction recorded nothing yet: until the early
    commit, the intents' statements go in a pipeline (the bar's BEGIN with the gate query,
    then the intents with the COMMIT and the pipeline's closing Sync: two round trips
    instead of four). `unpipelined` before anything else runs in the bar's transaction.
    A bar whose gate is unchanged since the runner last read it needs neither
    (guarded_intents: one statement)."""
    batch = manager.batch
    if batch is not None and not batch.recorded and batch.pipeline is None \
            and manager.engine.dialect.name == "postgresql":
        batch.pipeline = Pipeline(batch.connection()).open()


def unpipelined(manager: OrderManager) -> None:
    if manager.batch is not None:
        manager.batch.unpipelined()


def commit_early(manager: OrderManager) -> None:
    """Commit the bar's transaction now (its intents are about to be sent); the bar's
    later writes, the broker's held changes first, take transactions of their own."""
    if manager.batch is not None:
        _end(manager, manager.batch, None)


def _end(manager: OrderManager, batch: OneTransaction, error: BaseException | None, *,
         owed: bool = False) -> None:
    """Commit (at the scope's end, `owed`: with what is owed and the broker's held
    changes) or roll back."""
    if manager.batch is not batch:
        return  # committed early already
    manager.batch = None
    try:
        if error is None and owed and manager.pending:
            batch.unpipelined()
            write_owed(manager, batch.connection())
        if error is None and batch.opened and (owed or batch.recorded):
            batch.unpipelined()
            _write_held(manager, batch.connection())
    except BaseException as failed:
        batch.end(failed)  # rolled back, not left open
        _held_lost(manager)
        raise
    try:
        batch.end(error)
    except BaseException:
        _held_lost(manager)
        raise
    if error is not None:
        # What the broker did in the bar goes with what we wrote of it: a bar that fails
        # is, on both sides, a bar that never came.
        _held_lost(manager)
