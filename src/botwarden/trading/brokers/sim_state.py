"""A simulated broker's own book: its orders, fills, positions and the last bar it saw, apart
from the runner's (so reconciliation compares two real sides), as JSON: a whole snapshot
(`to_json`), or one change since the last save (`change_json`), which `apply_change` folds
back in on load.

Money and prices are exact: decimals travel as strings, positions are `domain.ledger.Book`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from botwarden.data.providers.base import Bar
from botwarden.domain.ledger import PRICE_QUANTUM, ZERO, Book
from botwarden.domain.orders import OPEN
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers.base import FillReport, OrderReport
from botwarden.trading.brokers.state_store import Stored

FORMAT = 1
DEFAULT_HISTORY_LIMIT = 100  # finished orders a book remembers (exactly-once for their ids)


@dataclass(slots=True)
class SimOrder:
    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: int
    seq: int  # submission order: who fills first within a phase of a bar
    created_at: datetime
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: OrderStatus = OrderStatus.WORKING
    filled_qty: int = 0
    fill_ids: list[str] = field(default_factory=list)
    bracket: tuple[int | None, int | None] | None = None  # (stop-loss, target) ticks
    parent: str | None = None  # the entry this exit protects
    oco: str | None = None  # the exit that this one cancels when it fills
    # First instant (ns) the order works; None: sent between bars, so it rests through the
    # next open. See fill_rules ("rested").
    active_since_ns: int | None = None
    reject_code: str | None = None
    message: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def same_request(self, other: SimOrder) -> bool:
        keys = ("symbol", "side", "order_type", "qty", "limit_price", "stop_price", "bracket")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def to_json(self) -> dict[str, Any]:
        encoded = {
            "cid": self.client_order_id, "bid": self.broker_order_id, "sym": self.symbol,
            "side": self.side.value, "type": self.order_type.value, "qty": self.qty,
            "seq": self.seq, "created": self.created_at.isoformat(),
            "limit": _s(self.limit_price), "stop": _s(self.stop_price),
            "status": self.status.value, "filled": self.filled_qty, "fills": self.fill_ids,
            "bracket": list(self.bracket) if self.bracket else None, "parent": self.parent,
            "oco": self.oco, "active_ns": self.active_since_ns, "reject": self.reject_code,
            "msg": self.message,
        }
        return {k: v for k, v in encoded.items() if v is not None}  # smaller rows, faster saves

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SimOrder:
        bracket = d.get("bracket")
        return cls(
            d["cid"], d["bid"], d["sym"], Side(d["side"]), OrderType(d["type"]), d["qty"],
            d["seq"], datetime.fromisoformat(d["created"]), _d(d.get("limit")),
            _d(d.get("stop")), OrderStatus(d["status"]), d["filled"], list(d.get("fills", [])),
            (bracket[0], bracket[1]) if bracket else None, d.get("parent"), d.get("oco"),
            d.get("active_ns"), d.get("reject"), d.get("msg"),
        )


def fill_to_json(fill: FillReport) -> dict[str, Any]:
    return {"id": fill.fill_id, "cid": fill.client_order_id, "bid": fill.broker_order_id,
            "sym": fill.symbol, "side": fill.side.value, "qty": fill.qty,
            "price": str(fill.price), "fee": _s(fill.fee), "at": fill.at.isoformat()}


def fill_from_json(d: dict[str, Any]) -> FillReport:
    return FillReport(d["id"], d["cid"], d["bid"], d["sym"], Side(d["side"]), d["qty"],
                      Decimal(d["price"]), _d(d.get("fee")), datetime.fromisoformat(d["at"]))


def book_to_json(book: Book) -> dict[str, Any]:
    return {"qty": book.qty, "lots": [[q, str(p)] for q, p in book.lots],
            "realized": str(book.realized_pnl), "fees": str(book.fees)}


def book_from_json(d: dict[str, Any]) -> Book:
    return Book(d["qty"], tuple((int(q), Decimal(p)) for q, p in d["lots"]),
                Decimal(d["realized"]), Decimal(d["fees"]))


@dataclass(slots=True)
class SimState:
    revision: int = 0  # bumped by every save; a second writer on the same key is refused
    next_seq: int = 1
    orders: dict[str, SimOrder] = field(default_factory=dict)  # by client order id
    fills: dict[str, FillReport] = field(default_factory=dict)  # by fill id, in time order
    books: dict[str, Book] = field(default_factory=dict)
    last_bars: dict[str, Bar] = field(default_factory=dict)
    # JSON of finished orders and of fills: they never change again, so each is encoded once
    # (a save re-encodes only the orders still working).
    _encoded: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # What the store holds: each order's JSON and the fill ids as last saved, so a change
    # carries only what differs.
    _saved_orders: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _saved_fills: set[str] = field(default_factory=set, repr=False)
    _saved_final: set[str] = field(default_factory=set, repr=False)  # broker ids, finished
    # Every open order, and some finished since (dropped when `working` meets them): an
    # order never opens again once finished. `working` runs twice a bar; the book keeps up
    # to the history limit of finished orders, and scanning them all cost 40 us a call.
    _maybe_open: dict[str, SimOrder] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._maybe_open = {c: o for c, o in self.orders.items() if o.is_open}

    def add(self, order: SimOrder) -> None:
        """A new order, or an order's newer version (a stored change folded in)."""
        cid = order.client_order_id
        self.orders[cid] = order
        if order.is_open:
            self._maybe_open[cid] = order
        else:
            self._maybe_open.pop(cid, None)

    def book(self, symbol: str) -> Book:
        return self.books.get(symbol, Book())

    def take_seq(self) -> int:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        return seq

    def working(self, symbol: str, order_type: OrderType | None = None) -> list[SimOrder]:
        """Working orders of `symbol` (of one type), in submission order."""
        finished = [c for c, o in self._maybe_open.items() if not o.is_open]
        for cid in finished:
            del self._maybe_open[cid]
        found = [o for o in self._maybe_open.values() if o.symbol == symbol
                 and (order_type is None or o.order_type is order_type)]
        return sorted(found, key=lambda o: o.seq)

    def report(self, order: SimOrder) -> OrderReport:
        fills = tuple(self.fills[i] for i in order.fill_ids if i in self.fills)
        avg = None
        if fills:
            qty = sum(f.qty for f in fills)
            avg = (sum((f.price * f.qty for f in fills), ZERO) / qty).quantize(PRICE_QUANTUM)
        return OrderReport(
            order.client_order_id, order.broker_order_id, order.symbol, order.side,
            order.order_type, order.qty, order.filled_qty, order.status, avg,
            order.limit_price, order.stop_price, fills, order.reject_code, order.message,
            order.parent)

    def compact(self, history_limit: int) -> None:
        """Forget the oldest finished orders (and their fills) beyond `history_limit`, so the
        row stays small. Exactly-once holds for every client id still remembered."""
        finished = sorted((o for o in self.orders.values() if not o.is_open),
                          key=lambda o: o.seq)
        excess = len(finished) - history_limit
        if excess <= 0:
            return
        forgotten = finished[:excess]
        gone = {o.client_order_id for o in forgotten}
        self.orders = {k: o for k, o in self.orders.items() if k not in gone}
        dropped = [k for k, f in self.fills.items() if f.client_order_id in gone]
        for key in [f"o:{o.broker_order_id}" for o in forgotten] + [f"f:{f}" for f in dropped]:
            self._encoded.pop(key, None)
        for key in dropped:
            del self.fills[key]
            self._saved_fills.discard(key)
        for order in forgotten:
            self._saved_orders.pop(order.client_order_id, None)
            self._saved_final.discard(order.broker_order_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "revision": self.revision, "next_seq": self.next_seq,
            "orders": [self._order_json(o) for o in self.orders.values()],
            "fills": [self._fill_json(f) for f in self.fills.values()],
            "books": {s: book_to_json(b) for s, b in self.books.items()},
            "last_bars": {s: list(b) for s, b in self.last_bars.items()},
        }

    def change_json(self) -> dict[str, Any]:
        """What changed since the last `mark_saved`: new or changed orders, new fills, and
        the (small) positions, last bars and sequence, at this revision."""
        orders = []
        final = self._saved_final
        for cid, order in self.orders.items():
            if order.broker_order_id in final:
                continue  # stored as finished: it never changes again
            encoded = self._order_json(order)
            saved = self._saved_orders.get(cid)
            if saved is not encoded and saved != encoded:
                orders.append(encoded)
        return {
            "format": FORMAT, "revision": self.revision, "next_seq": self.next_seq,
            "orders": orders,
            "fills": [self._fill_json(f) for k, f in self.fills.items()
                      if k not in self._saved_fills],
            "books": {s: book_to_json(b) for s, b in self.books.items()},
            "last_bars": {s: list(b) for s, b in self.last_bars.items()},
        }

    def mark_saved(self, saved: dict[str, Any] | None = None) -> None:
        """The store now holds this state: `saved` is the change just stored (None: the
        whole state, a snapshot or a load)."""
        if saved is None:
            self._saved_orders = {c: self._order_json(o) for c, o in self.orders.items()}
            self._saved_final = {o.broker_order_id for o in self.orders.values()
                                 if not o.is_open}
            self._saved_fills = set(self.fills)
            return
        for encoded in saved["orders"]:
            if encoded["cid"] in self.orders:  # not those just forgotten (compact)
                self._saved_orders[encoded["cid"]] = encoded
                if OrderStatus(encoded["status"]) not in OPEN:
                    self._saved_final.add(encoded["bid"])
        self._saved_fills.update(f["id"] for f in saved["fills"] if f["id"] in self.fills)

    def apply_change(self, change: dict[str, Any]) -> None:
        """Fold in one stored change (`change_json`), as on load."""
        if change.get("format") != FORMAT:
            raise ValueError(f"unknown simulated broker change format {change.get('format')!r}")
        self.revision, self.next_seq = change["revision"], change["next_seq"]
        for encoded in change["orders"]:
            self.add(SimOrder.from_json(encoded))
        for encoded in change["fills"]:
            fill = fill_from_json(encoded)
            self.fills[fill.fill_id] = fill
        self.books.update({s: book_from_json(b) for s, b in change["books"].items()})
        self.last_bars.update({s: Bar(*b) for s, b in change["last_bars"].items()})

    def _order_json(self, order: SimOrder) -> dict[str, Any]:
        if order.is_open:
            return order.to_json()
        key = "o:" + order.broker_order_id  # not the client id: a forgotten one can come back
        if key not in self._encoded:
            self._encoded[key] = order.to_json()
        return self._encoded[key]

    def _fill_json(self, fill: FillReport) -> dict[str, Any]:
        key = "f:" + fill.fill_id
        if key not in self._encoded:
            self._encoded[key] = fill_to_json(fill)
        return self._encoded[key]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SimState:
        if d.get("format") != FORMAT:
            raise ValueError(f"unknown simulated broker state format {d.get('format')!r}")
        orders = [SimOrder.from_json(o) for o in d["orders"]]
        fills = [fill_from_json(f) for f in d["fills"]]
        return cls(
            d["revision"], d["next_seq"], {o.client_order_id: o for o in orders},
            {f.fill_id: f for f in fills},
            {s: book_from_json(b) for s, b in d["books"].items()},
            {s: Bar(*b) for s, b in d["last_bars"].items()},
        )


def load_state(stored: Stored | None, history_limit: int) -> SimState:
    """The book a store holds: its snapshot with the changes after it folded in, each trimmed
    to `history_limit` finished orders as the broker that saved it trimmed it."""
    if stored is None:
        return SimState()
    state = SimState.from_json(stored.snapshot)
    for change in stored.changes:
        state.apply_change(change)
        state.compact(history_limit)  # as the broker did after taking each change
    state.mark_saved()
    return state


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
