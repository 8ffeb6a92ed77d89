"""What the paper and shadow brokers share: their own persisted book, the exactly-once
submit, cancel and the reports, fault injection and telemetry (sim_calls). They differ only
in how an order meets the market (`_match`, `_accepted`): the paper broker by the backtest's
bar rules, the shadow broker at the quoted bid and ask.

Every change is saved before the call returns, as a journal entry of what changed (a
snapshot of the whole book every `snapshot_every` changes: state_store). A save that fails
leaves the outcome unknown (BrokerTimeout) and the next call reloads the book from the
store, so memory never runs ahead of what a restart would find. A bar that changes nothing
is not saved: matching is deterministic, so after a restart the same bar again changes
nothing again.

Inside `holding_changes` (a runner's bar) the changes are held in memory instead and stored
once: by `write_held`, in the transaction of the caller's next write on the same database
(so what the broker did and what the caller recorded of it commit together), or at the
scope's end. A crash before then loses them as if those calls had never reached the broker:
the caller's intents are still unsent in its own book, and are settled by asking again.

The book remembers the last `history_limit` finished orders (default 100) and their fills,
besides everything still working: exactly-once holds for every client id it remembers. An
order manager resends only recent intents (PENDING or UNRESOLVED), and a paper broker fills
only while its runner feeds it bars, so nothing older is ever needed.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from botwarden.clock import Clock, utcnow
from botwarden.data.providers.base import Bar, CallObserver
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import Instrument, get_instrument
from botwarden.domain.ledger import apply_fill
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.ids import new_id
from botwarden.trading.brokers.base import (
    PROFIT_TARGET_SUFFIX,
    STOP_LOSS_SUFFIX,
    Ack,
    BrokerRejected,
    BrokerTimeout,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
    bracket_ids,
    flatten_request,
)
from botwarden.trading.brokers.faults import BrokerFaultPlan
from botwarden.trading.brokers.fill_rules import bracket_prices
from botwarden.trading.brokers.sim_calls import faulted_call, report_call
from botwarden.trading.brokers.sim_state import (
    DEFAULT_HISTORY_LIMIT,
    SimOrder,
    SimState,
    load_state,
)
from botwarden.trading.brokers.state_store import BrokerStateConflict, StateStore

T = TypeVar("T")
# A whole snapshot after this many journalled changes: loading replays at most this many,
# and only one save in this many pays for encoding the whole book.
SNAPSHOT_EVERY = 500


class SimulatedBrokerCore(ABC):
    name = "simulated"

    def __init__(
        self,
        account_key: str,
        store: StateStore,
        *,
        fees: Mapping[str, Decimal] | None = None,
        faults: BrokerFaultPlan | None = None,
        observer: CallObserver | None = None,
        clock: Clock = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self.account_key = account_key
        self.store = store
        self.fees = {k.upper(): v for k, v in (fees or {}).items()}
        self.faults = faults
        self.observer = observer
        self.clock = clock
        self.sleep = sleep
        self.history_limit = history_limit
        self.snapshot_every = snapshot_every
        self._changes_since_snapshot = 0
        self._lock = threading.RLock()
        self._state = self._load()
        self._stale = False
        self._holding = 0  # nested holding_changes scopes
        self._held = False  # changes in memory that are not stored yet

    # ---- the interface ----

    def submit(self, request: OrderRequest) -> Ack:
        return self._call("submit", lambda reject: self._submit(request, reject))

    def cancel(self, client_order_id: str) -> OrderReport | None:
        return self._call("cancel", lambda _: self._cancel(client_order_id)[0])

    def query_order(self, client_order_id: str) -> OrderReport | None:
        def work(_: str | None) -> OrderReport | None:
            order = self._state.orders.get(client_order_id)
            return self._state.report(order) if order is not None else None

        return self._call("query_order", work)

    def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        def work(_: str | None) -> list[OrderReport]:
            wanted = symbol.upper() if symbol else None
            return [self._state.report(o) for o in sorted(self._state.orders.values(),
                                                          key=lambda o: o.seq)
                    if o.is_open and (wanted is None or o.symbol == wanted)]

        return self._call("open_orders", work)

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        """Fills at or after `since` (inclusive: apply them once by fill id)."""
        return self._call("fills", lambda _: [f for f in self._state.fills.values()
                                              if since is None or f.at >= since])

    def position(self, symbol: str) -> PositionReport:
        return self._call("position", lambda _: self._position(symbol.upper()))

    def flatten(self, symbol: str, client_order_id: str) -> Ack | None:
        """A market order for the whole position of `symbol` (None when flat). Orders still
        working are left alone: cancel them first when they could add to the position."""

        def work(reject: str | None) -> Ack | None:
            asked = self._state.orders.get(client_order_id)  # asked again: the same order
            request = _request_of(asked) if asked is not None else flatten_request(
                self._position(symbol.upper()), client_order_id)
            return None if request is None else self._submit(request, reject)

        return self._call("submit", work)

    def on_bar(self, symbol: str, bar: Bar) -> list[FillReport]:
        """The market moved: match working orders against `bar`; returns the new fills. A bar
        not newer than the last one seen for `symbol` (a replay after a restart) is ignored."""
        with self._lock:
            self._refresh()
            symbol = symbol.upper()
            last = self._state.last_bars.get(symbol)
            if last is not None and bar.ts <= last.ts:
                return []
            self._state.last_bars[symbol] = bar
            fills = self._match(symbol, get_instrument(symbol), bar)
            if fills:
                self._save()
            return fills

    @property
    def last_bar(self) -> dict[str, Bar]:
        with self._lock:
            return dict(self._state.last_bars)

    # ---- what paper and shadow fill differently ----

    @abstractmethod
    def _match(self, symbol: str, instrument: Instrument, bar: Bar) -> list[FillReport]:
        """Fill what `bar` reaches, in the broker's own way; returns the new fills."""

    @abstractmethod
    def _accepted(self, order: SimOrder, instrument: Instrument) -> None:
        """A new order was accepted (before it is saved): fill it now if the broker can."""

    # ---- orders ----

    def _submit(self, request: OrderRequest, injected_reject: str | None) -> Ack:
        state = self._state
        cid = request.client_order_id
        candidate = self._new_order(request)
        existing = state.orders.get(cid)
        if existing is not None:
            if not existing.same_request(candidate):
                raise BrokerRejected("DUPLICATE_CLIENT_ORDER_ID",
                                     f"{cid} already names a different order")
            if existing.status is OrderStatus.REJECTED:
                raise BrokerRejected(existing.reject_code or "REJECTED", existing.message or "")
            return Ack(cid, existing.broker_order_id, existing.status, duplicate=True)
        problem = ((injected_reject, "rejected by an injected fault")
                   if injected_reject is not None else self._validate(request))
        candidate.seq = state.take_seq()
        state.add(candidate)
        if problem is not None:
            candidate.status = OrderStatus.REJECTED
            candidate.reject_code, candidate.message = problem
            self._save()
            raise BrokerRejected(*problem)
        self._accepted(candidate, get_instrument(candidate.symbol))
        self._save()
        return Ack(cid, candidate.broker_order_id, candidate.status)

    def _new_order(self, request: OrderRequest) -> SimOrder:
        bracket = request.bracket
        return SimOrder(
            request.client_order_id, new_id(), request.symbol.upper(), request.side,
            request.order_type, request.qty, 0, self.clock(), request.limit_price,
            request.stop_price,
            bracket=(bracket.stop_loss_ticks, bracket.profit_target_ticks) if bracket else None)

    def _validate(self, request: OrderRequest) -> tuple[str, str] | None:
        if request.client_order_id.endswith((STOP_LOSS_SUFFIX, PROFIT_TARGET_SUFFIX)):
            return ("RESERVED_CLIENT_ORDER_ID",
                    f"client order ids ending in {STOP_LOSS_SUFFIX} or "
                    f"{PROFIT_TARGET_SUFFIX} name a bracket's exits")
        try:
            instrument = get_instrument(request.symbol)
        except DomainError as exc:
            return exc.code, exc.message
        price = request.price
        if price is not None and not instrument.is_on_grid(price):
            return ("PRICE_OFF_TICK_GRID",
                    f"{price} is not a multiple of {instrument.symbol}'s tick "
                    f"{instrument.tick_size}")
        return None

    def cancel_many(self, client_order_ids: list[str]) -> list[OrderReport | None]:
        """Cancel several orders in one call: one save for all (a bracket's two exits)."""
        return self._call("cancel", lambda _: self._cancel(*client_order_ids))

    def _cancel(self, *client_order_ids: str) -> list[OrderReport | None]:
        orders = [self._state.orders.get(c) for c in client_order_ids]
        changed = [o for o in orders if o is not None and o.is_open]
        for order in changed:
            order.status = OrderStatus.CANCELED
            order.message = "canceled on request"
        if changed:
            self._save()
        return [None if o is None else self._state.report(o) for o in orders]

    def _position(self, symbol: str) -> PositionReport:
        book = self._state.book(symbol)
        return PositionReport(symbol, book.qty, book.avg_price, book.realized_pnl, book.fees,
                              book.lots)

    # ---- fills ----

    def _fill(self, order: SimOrder, ticks: int, instrument: Instrument, at: datetime,
              exits_from_ns: int) -> FillReport:
        """Fill `order` whole at `ticks`; its bracket's exits start working at
        `exits_from_ns`; its OCO sibling is cancelled."""
        state = self._state
        price = instrument.from_ticks(ticks)
        fee = self.fees.get(order.symbol, instrument.commission_per_side) * order.qty
        fill = FillReport(new_id(), order.client_order_id, order.broker_order_id, order.symbol,
                          order.side, order.qty, price, fee, at)
        state.books[order.symbol], _ = apply_fill(state.book(order.symbol), order.side,
                                                  order.qty, price, fee,
                                                  instrument.point_value)
        state.fills[fill.fill_id] = fill
        order.fill_ids.append(fill.fill_id)
        order.filled_qty = order.qty
        order.status = OrderStatus.FILLED
        sibling = state.orders.get(order.oco) if order.oco else None
        if sibling is not None and sibling.is_open:
            sibling.status = OrderStatus.CANCELED
            sibling.message = f"one-cancels-other: {order.client_order_id} filled"
        if order.bracket is not None:
            self._open_bracket(order, ticks, instrument, at, exits_from_ns)
        return fill

    def _open_bracket(self, entry: SimOrder, entry_ticks: int, instrument: Instrument,
                      at: datetime, active_from_ns: int) -> None:
        assert entry.bracket is not None
        stop, target = bracket_prices(entry.side, entry_ticks, *entry.bracket)
        stop_id, target_id = bracket_ids(entry.client_order_id)
        side = Side.SELL if entry.side is Side.BUY else Side.BUY
        legs = []
        if stop is not None:
            legs.append(SimOrder(stop_id, new_id(), entry.symbol, side, OrderType.STOP,
                                 entry.qty, self._state.take_seq(), at,
                                 stop_price=instrument.from_ticks(stop)))
        if target is not None:
            legs.append(SimOrder(target_id, new_id(), entry.symbol, side, OrderType.LIMIT,
                                 entry.qty, self._state.take_seq(), at,
                                 limit_price=instrument.from_ticks(target)))
        for leg in legs:
            leg.parent = entry.client_order_id
            leg.active_since_ns = active_from_ns
            if len(legs) == 2:
                leg.oco = target_id if leg.client_order_id == stop_id else stop_id
            self._state.add(leg)

    # ---- persistence, faults, telemetry ----

    def _load(self) -> SimState:
        stored = self.store.load(self.account_key)
        state = load_state(stored, self.history_limit)
        self._changes_since_snapshot = len(stored.changes) if stored else 0
        return state

    def _refresh(self) -> None:
        if self._stale:
            self._state = self._load()
            self._stale = False

    # ---- held changes ----

    @contextmanager
    def holding_changes(self) -> Iterator[None]:
        """Hold the changes made inside for `write_held`; store what is left at the end."""
        with self._lock:
            self._holding += 1
        try:
            yield
        finally:
            with self._lock:
                self._holding -= 1
                if not self._holding and self._held:
                    self._save()

    def write_held(self, conn: Connection) -> bool:
        """Store the held changes in `conn`'s open transaction; True if they went there, and
        then `held_lost()` is owed if that transaction does not commit. A store on another
        database saves them on its own first (False)."""
        with self._lock:
            if not self._held:
                return False
            self._held = False
            joins = getattr(self.store, "writes_in", None)
            if joins is None or not joins(conn):
                self._save(force=True)
                return False
            self._save(conn)
            return True

    def held_lost(self) -> None:
        """The transaction that took the held changes did not commit (or the caller's work
        on them failed): forget them, reload the book."""
        with self._lock:
            self._stale = True
            self._held = False

    def _save(self, conn: Connection | None = None, *, force: bool = False) -> None:
        """Store the book's changes: in `conn`'s transaction if given; held inside
        `holding_changes` unless `force`d."""
        if self._holding and conn is None and not force:
            self._held = True
            return
        state = self._state
        expected = state.revision
        state.revision = expected + 1
        joined = {} if conn is None else {"conn": conn}
        try:
            if expected == 0 or self._changes_since_snapshot >= self.snapshot_every:
                state.compact(self.history_limit)
                self.store.save(self.account_key, state.to_json(), expected, **joined)
                state.mark_saved()
                self._changes_since_snapshot = 0
            else:
                # The change is taken before the book forgets its oldest finished orders:
                # how they finished must be stored, or a reload would find them working.
                change = state.change_json()
                state.compact(self.history_limit)
                self.store.append(self.account_key, change, expected, **joined)
                state.mark_saved(change)
                self._changes_since_snapshot += 1
        except BrokerStateConflict:
            self._stale = True
            raise
        except SQLAlchemyError as exc:
            self._stale = True
            if conn is not None:
                raise  # the caller's transaction failed: it reports that itself
            raise BrokerTimeout(f"the broker's book could not be saved ({type(exc).__name__}): "
                                "the outcome is unknown, query it") from exc

    def _call(self, operation: str, work: Callable[[str | None], T]) -> T:
        """Run one call under the fault plan, on a fresh book, with its telemetry."""
        started = time.perf_counter()

        def locked(reject: str | None) -> T:
            with self._lock:
                self._refresh()
                return work(reject)

        return faulted_call(operation, self.faults, self.sleep, locked, lambda error: report_call(
            self.observer, self.name, self.clock, operation, started, error))


def _request_of(order: SimOrder) -> OrderRequest:
    return OrderRequest(order.client_order_id, order.symbol, order.side, order.qty,
                        order.order_type, order.limit_price, order.stop_price)
