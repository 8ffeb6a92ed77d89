"""Positions in exact decimals: fills in, position, lots and realised PnL out. The same
arithmetic serves the runner's book, the paper broker's and reconciliation.

Open quantity is kept as FIFO lots (qty, price) rather than an average price, because an
average of several fills is not a terminating decimal, while a FIFO PnL always is."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from botwarden.domain.trading import Side

ZERO = Decimal(0)
PRICE_QUANTUM = Decimal("0.00000001")

Lot = tuple[int, Decimal]  # (contracts > 0, price)


@dataclass(frozen=True, slots=True)
class Book:
    qty: int = 0  # signed contracts
    lots: tuple[Lot, ...] = ()
    realized_pnl: Decimal = ZERO  # net of fees
    fees: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        if self.qty == 0:
            return None
        cost = sum((q * p for q, p in self.lots), ZERO)
        return (cost / abs(self.qty)).quantize(PRICE_QUANTUM)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip closed by a fill: what the trade log records."""

    side: str  # LONG or SHORT: the side of the position that was closed
    qty: int
    entry_price: Decimal  # quantity-weighted over the lots consumed
    exit_price: Decimal
    gross_pnl: Decimal


def apply_fill(
    book: Book, side: Side, qty: int, price: Decimal, fee: Decimal, point_value: Decimal
) -> tuple[Book, ClosedTrade | None]:
    """Apply one fill. A fill against the position closes lots first-in first-out; what is
    left of it opens a position on the other side at the fill price."""
    if qty <= 0:
        raise ValueError("fill quantity must be positive")
    delta = qty if side is Side.BUY else -qty
    fees = book.fees + fee
    realized = book.realized_pnl - fee
    if book.qty == 0 or (book.qty > 0) == (delta > 0):
        return Book(book.qty + delta, (*book.lots, (qty, price)), realized, fees), None
    direction = 1 if book.qty > 0 else -1
    remaining, lots = qty, list(book.lots)
    closed, cost = 0, ZERO
    while remaining and lots:
        lot_qty, lot_price = lots[0]
        take = min(remaining, lot_qty)
        closed += take
        cost += take * lot_price
        remaining -= take
        lots = lots[1:] if take == lot_qty else [(lot_qty - take, lot_price), *lots[1:]]
    gross = (price * closed - cost) * direction * point_value
    trade = ClosedTrade("LONG" if direction > 0 else "SHORT", closed,
                        (cost / closed).quantize(PRICE_QUANTUM), price, gross)
    if remaining:
        lots = [(remaining, price)]
    return Book(book.qty + delta, tuple(lots), realized + gross, fees), trade


def unrealized(book: Book, mark: Decimal, point_value: Decimal) -> Decimal:
    sign = 1 if book.qty > 0 else -1
    return sum(((mark - p) * q * sign * point_value for q, p in book.lots), ZERO)
