"""The order manager: a trading intent in, exactly one broker order out, or a reasoned denial.

    manager = OrderManager(engine, bot_id=..., job_id=..., broker=broker, mode="PAPER", ...)
    outcome = manager.place(NewOrder(client_id, "MES", Side.BUY, 1, OrderType.MARKET),
                            context)            # -> Placed(status, verdict)
    manager.on_fills(broker.on_bar("MES", bar))  # fills applied once, book updated
    manager.resolve_open()                       # PENDING / UNRESOLVED settled with the broker

`place` runs the risk engine inside the transaction that persists the intent, reading the
bot's kill state, the account's kill switch and the account-wide cap in that same
transaction: an order the engine refuses never exists, and a kill committed before the
transaction blocks it. Only then is the order sent, under its fixed client order id:

- an acknowledgement makes it WORKING (or FILLED: its fills are fetched and applied);
- a rejection makes it REJECTED, with the broker's code (final);
- a timeout makes it UNRESOLVED: the broker is asked for the client id, never sent blindly;
- a disconnect (nothing reached the broker) is retried with the same client id, and left
  PENDING for `resolve_open` when the broker stays away.

`place_chain` does this for orders meant to go one after another (a reversal's exit, then
its entry): all judged and persisted in one transaction, each sent only if the one before
went. A runner's bar (`one_transaction`, bar_transaction) commits the bar's intents before
its first order is sent, and the broker's match with the bar's fills after. On PostgreSQL a
runner's bar judges them on the gate it read last and persists them in one statement that
commits them only if that gate still holds (guarded_intents); otherwise as above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from botwarden.clock import Clock, utcnow
from botwarden.domain.kill import KillState
from botwarden.domain.ledger import Book
from botwarden.domain.orders import FINAL
from botwarden.domain.risk import (
    MarketFacts,
    RiskVerdict,
)
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.trading import OrderStatus, Side
from botwarden.trading import (
    bar_transaction,
    crashpoints,
    fill_intake,
    guarded_intents,
    intents,
    quick_transitions,
)
from botwarden.trading import fill_ledger as ledger
from botwarden.trading import order_store as store
from botwarden.trading.brokers.base import (
    Bracket,
    Broker,
    BrokerDisconnected,
    BrokerRejected,
    BrokerTimeout,
    FillReport,
    OrderReport,
    OrderRequest,
)
from botwarden.trading.order_store import NewOrder, StoredOrder

log = structlog.get_logger(__name__)
SEND_ATTEMPTS = 3  # a disconnect is retried this many times in a row, same client id


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the runner knows of the bot's money and the market at the decision."""

    market: MarketFacts
    daily_pnl: Decimal
    equity: Decimal
    equity_peak: Decimal
    capital: Decimal
    account_equity: Decimal
    account_peak: Decimal
    bar_time: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # the strategy's why, for the trace


@dataclass(frozen=True, slots=True)
class Placed:
    client_order_id: str
    status: OrderStatus | None  # None: refused before it existed
    verdict: RiskVerdict
    fills: tuple[ledger.AppliedFill, ...] = ()


class OrderManager:
    def __init__(
        self,
        engine: Engine,
        *,
        bot_id: str,
        job_id: str | None,
        broker: Broker,
        mode: str,
        source_type: str,
        limits: RiskLimits | None,
        clock: Clock = utcnow,
        bracket: Bracket | None = None,
    ) -> None:
        self.engine = engine
        self.bot_id = bot_id
        self.job_id = job_id
        self.broker = broker
        self.mode = mode
        self.source_type = source_type
        self.limits = limits
        self.clock = clock
        self.bracket = bracket
        self.open: dict[str, StoredOrder] = {}
        self.books: dict[str, Book] = {}
        self.entry_times: dict[str, datetime] = {}
        self.sent_times: list[datetime] = []
        self.last_signature: tuple[str, int, str, str] | None = None
        self.last_order_time: datetime | None = None
        self.recent_signatures: list[tuple[tuple[str, int, str, str], datetime]] = []
        self.seen_ids: set[str] = set()
        self.unsettled = False  # some order is PENDING or UNRESOLVED
        # Without native brackets the exits are placed here once the entry fills.
        self.native_brackets = bool(getattr(broker, "supports_brackets", True))
        self.last_ctx: RiskContext | None = None
        # The gate (order_store.fenced_gate) as last read: guarded_intents judges on it.
        self.gate_seen: Any = None
        self.deferred: list[quick_transitions.Deferred] | None = None  # inside transitions_deferred
        self.batch: bar_transaction.OneTransaction | None = None  # inside one_transaction
        # Writes worked out in memory and owed to the store: a bar's fills (fill_intake),
        # written by the next write that is not the bar's intents (bar_transaction).
        self.pending: list[Callable[[Connection], None]] = []

    # ---- state ----

    def load(self, symbol: str) -> None:
        """Read our open orders and book from the store (at start and after reconcile)."""
        with self.engine.connect() as conn:
            self.open = {o.client_order_id: o for o in store.open_orders(conn, self.bot_id)}
            self.books[symbol] = ledger.load_book(conn, self.bot_id, symbol)
            self.seen_ids = {o.client_order_id for o in store.recent_orders(conn, self.bot_id)}
            entered = _entry_time(conn, self.bot_id, symbol, self.books[symbol].qty)
        if entered is None:
            self.entry_times.pop(symbol, None)
        else:
            self.entry_times[symbol] = entered
        self.unsettled = any(o.status in (OrderStatus.PENDING, OrderStatus.UNRESOLVED)
                             for o in self.open.values())

    def position(self, symbol: str) -> int:
        book = self.books.get(symbol)
        return book.qty if book else 0

    def working(self, symbol: str, side: Side) -> int:
        return sum(o.qty - o.filled_qty for o in self.open.values()
                   if o.symbol == symbol and o.side is side)

    def working_children(self, symbol: str) -> list[StoredOrder]:
        return [o for o in self.open.values()
                if o.symbol == symbol and o.parent_client_order_id is not None]

    # ---- placing ----

    def place(self, order: NewOrder, ctx: RiskContext, *, system_flatten: bool = False,
              ) -> Placed:
        return self.place_chain([order], ctx, system_flatten=system_flatten)[0]

    def place_chain(self, chain: Sequence[NewOrder], ctx: RiskContext, *,
                    system_flatten: bool = False) -> list[Placed]:
        """Orders meant to go one after another (a reversal: the exit, then the entry), all
        judged and persisted in one transaction before the first is sent. An order refused
        ends the chain there (those after it are not judged); one the broker rejects
        cancels the intents after it, unsent."""
        now = self.clock()
        self.last_ctx = ctx
        outcome = None
        if guarded_intents.usable(self):  # PostgreSQL: one round trip, on the gate seen last
            outcome = guarded_intents.persist(self, chain, ctx, system_flatten, now)
        if outcome is None:
            with self.write(intents=True) as conn:
                bar_transaction.pipeline_intents(self)
                gate = self.gate_seen = store.fenced_gate(conn, self.bot_id, self.job_id)
                if gate.max_contracts is not None:
                    bar_transaction.unpipelined(self)  # the account's count: SQLAlchemy reads
                    bar_transaction.write_owed(self, conn)  # the account's count reads them
                rows = intents.Rows()
                outcome = intents.judge_chain(self, conn, gate, chain, ctx, system_flatten,
                                              now, rows)
                rows.write(conn)
        bar_transaction.commit_early(self)  # persisted before sent
        judged, refusal = outcome
        refused = [] if refusal is None else [Placed(refusal[0], None, refusal[1])]
        for _ in judged:
            crashpoints.reached(crashpoints.ORDER_PERSISTED)
        placed: list[Placed] = []
        for index, (stored, verdict) in enumerate(judged):
            status, applied = self._send(stored, with_bracket=not stored.reduce_only)
            placed.append(Placed(stored.client_order_id, status, verdict, tuple(applied)))
            if status is OrderStatus.REJECTED:
                for later, later_verdict in judged[index + 1:]:
                    self.settle(later.client_order_id, OrderStatus.CANCELED,
                                reason=f"not sent: {stored.client_order_id} before it was "
                                       "rejected")
                    placed.append(Placed(later.client_order_id, OrderStatus.CANCELED,
                                         later_verdict))
                break
        return placed + refused

    def _request(self, order: StoredOrder, with_bracket: bool) -> OrderRequest:
        return OrderRequest(order.client_order_id, order.symbol, order.side, order.qty,
                            order.order_type, order.limit_price, order.stop_price,
                            self.bracket if with_bracket and self.native_brackets else None)

    def _send(self, order: StoredOrder, *, with_bracket: bool,
              ) -> tuple[OrderStatus, list[ledger.AppliedFill]]:
        request = self._request(order, with_bracket)
        for _attempt in range(SEND_ATTEMPTS):
            try:
                ack = self.broker.submit(request)
            except BrokerRejected as exc:
                self.settle(order.client_order_id, OrderStatus.REJECTED, reject_code=exc.code,
                            reason=exc.message)
                return OrderStatus.REJECTED, []
            except BrokerTimeout as exc:
                self.settle(order.client_order_id, OrderStatus.UNRESOLVED, reason=str(exc))
                self.unsettled = True
                return self._resolve_one(self.open[order.client_order_id])
            except BrokerDisconnected as exc:
                log.warning("broker_disconnected", client_order_id=order.client_order_id,
                            error=str(exc))
                continue
            crashpoints.reached(crashpoints.ORDER_SUBMITTED)
            if not self._acked(order.client_order_id, ack.status, ack.broker_order_id):
                self.settle(order.client_order_id, ack.status,
                            broker_order_id=ack.broker_order_id)
            if ack.status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED):
                report = self.broker.query_order(order.client_order_id)
                applied = self.on_fills(list(report.fills) if report else [])
                return ack.status, applied
            return ack.status, []
        self.unsettled = True  # still PENDING: nothing reached the broker; resent later
        return OrderStatus.PENDING, []

    def _acked(self, client_order_id: str, status: OrderStatus,
               broker_order_id: str | None) -> bool:
        return status is OrderStatus.WORKING and self._transition(
            client_order_id, status, broker_order_id)

    def _transition(self, client_order_id: str, status: OrderStatus,
                    broker_order_id: str | None) -> bool:
        return quick_transitions.transition(self, client_order_id, status, broker_order_id)

    def write(self, *, intents: bool = False) -> AbstractContextManager[Connection]:
        """A write transaction that first stores the broker's held changes and the writes
        owed (not for a bar's `intents`: those go first), bar_transaction; inside
        `one_transaction`, that one."""
        return bar_transaction.write(self, intents=intents)

    def one_transaction(self) -> AbstractContextManager[None]:
        """A runner's bar: its fills and intents in one transaction (bar_transaction)."""
        return bar_transaction.one_transaction(self)

    def transitions_deferred(self) -> AbstractContextManager[None]:
        """A bar's decisions: acknowledgements and cancels written at the end, once sent."""
        return quick_transitions.deferred_scope(self)

    def settle(self, client_order_id: str, status: OrderStatus, **values: Any) -> None:
        now = self.clock()
        with self.write() as conn:
            if status is not OrderStatus.PENDING:
                current = self.open.get(client_order_id)
                if current is not None and current.status is OrderStatus.PENDING \
                        and status not in (OrderStatus.UNRESOLVED, OrderStatus.CANCELED):
                    store.set_status(conn, client_order_id, OrderStatus.SENT, now=now)
                store.set_status(conn, client_order_id, status, now=now, **values)
            row = store.get_order(conn, client_order_id)
        self.remember(row)

    def remember(self, row: StoredOrder | None) -> None:
        if row is None:
            return
        if row.status in FINAL:
            self.open.pop(row.client_order_id, None)
        else:
            self.open[row.client_order_id] = row

    # ---- fills and resolution ----

    def on_fills(self, reports: Sequence[FillReport], *, new: bool = False,
                 ) -> list[ledger.AppliedFill]:
        """Apply new broker fills once; record the bracket exits they bring (fill_intake).
        `new`: none of them can have been applied before (a simulated broker's match)."""
        return fill_intake.take_fills(self, reports, new=new)

    def adopt(self, client_order_id: str) -> None:
        fill_intake.adopt_exits(self, [client_order_id])

    def resolve_open(self, *, resend: bool = True) -> list[ledger.AppliedFill]:
        """Settle every PENDING or UNRESOLVED order with the broker. `resend=False` leaves
        those the broker never received unsettled (sent later, by a call with resend)."""
        applied: list[ledger.AppliedFill] = []
        for order in [o for o in self.open.values()
                      if o.status in (OrderStatus.PENDING, OrderStatus.UNRESOLVED)]:
            _status, fills = self._resolve_one(order, resend=resend)
            applied.extend(fills)
        self.unsettled = any(o.status in (OrderStatus.PENDING, OrderStatus.UNRESOLVED)
                             for o in self.open.values())
        return applied

    def _resolve_one(self, order: StoredOrder, *, resend: bool = True,
                     ) -> tuple[OrderStatus, list[ledger.AppliedFill]]:
        """Ask the broker about the client id. Unknown there: the request never arrived, so
        sending it again under the same id is safe (the broker dedupes on it)."""
        try:
            report = self.broker.query_order(order.client_order_id)
        except (BrokerTimeout, BrokerDisconnected):
            return order.status, []
        if report is None:
            if not resend:
                return order.status, []
            if not order.reduce_only and self._killed():
                # Killed since the intent was judged: what never reached the broker stays
                # unsent (fail closed); only risk-reducing orders still go.
                self.settle(order.client_order_id, OrderStatus.CANCELED,
                            reason="the bot was killed before the order reached the broker")
                return OrderStatus.CANCELED, []
            return self._send(order, with_bracket=not order.reduce_only)
        return self.adopt_report(report)

    def _killed(self) -> bool:
        with self.engine.connect() as conn:
            gate = store.bot_gate(conn, self.bot_id)
        return gate.kill_state != KillState.NONE.value or bool(gate.kill_switch_engaged)

    def adopt_report(self, report: OrderReport) -> tuple[OrderStatus, list[ledger.AppliedFill]]:
        applied = self.on_fills(list(report.fills))
        current = self.open.get(report.client_order_id)
        if current is not None and current.status is not report.status \
                and report.status not in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED) \
                and not (report.status is OrderStatus.CANCELED and report.reject_code is None
                         and self._transition(report.client_order_id, report.status,
                                              report.broker_order_id)):
            self.settle(report.client_order_id, report.status,
                        broker_order_id=report.broker_order_id,
                        reject_code=report.reject_code)
        return report.status, applied

    def cancel(self, client_order_id: str) -> OrderStatus | None:
        """Cancel a working order at the broker and mirror the outcome."""
        return self.cancel_many([client_order_id])[0]

    def cancel_many(self, client_order_ids: list[str]) -> list[OrderStatus | None]:
        """Cancel working orders, in one call where the broker takes several (the simulated
        brokers: one save for a bracket's two exits); None where the outcome is unknown."""
        if not client_order_ids:
            return []
        many = getattr(self.broker, "cancel_many", None)
        reports: list[OrderReport | None] = []
        if many is None:
            for client_order_id in client_order_ids:
                try:
                    reports.append(self.broker.cancel(client_order_id))
                except (BrokerTimeout, BrokerDisconnected):
                    reports.append(None)
        else:
            try:
                reports = list(many(client_order_ids))
            except (BrokerTimeout, BrokerDisconnected):
                reports = [None] * len(client_order_ids)
        for report in reports:
            if report is not None:
                self.adopt_report(report)
        return [None if r is None else r.status for r in reports]


def _entry_time(conn: Connection, bot_id: str, symbol: str, qty: int) -> datetime | None:
    """When the position of `qty` was opened (or last reversed): the trade log's entry time,
    which a restarted runner would otherwise forget. Walks the fills back from the newest."""
    if qty == 0:
        return None
    fills, orders = store.fills, store.orders
    rows = conn.execute(
        sa.select(fills.c.side, fills.c.qty, fills.c.filled_at)
        .join(orders, orders.c.id == fills.c.order_id)
        .where(fills.c.bot_id == bot_id, orders.c.symbol == symbol)
        .order_by(fills.c.filled_at.desc(), fills.c.id.desc()).limit(500))
    after = qty
    for row in rows:
        before = after - (row.qty if row.side == Side.BUY.value else -row.qty)
        if before == 0 or (before > 0) != (after > 0):
            return row.filled_at  # type: ignore[no-any-return]
        after = before
    return None
