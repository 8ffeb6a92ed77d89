from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.ledger import Book, apply_fill, unrealized
from botwarden.domain.trading import Side

PV = Decimal(5)  # MES point value
D = Decimal


def test_round_trip_long_with_fees() -> None:
    book, trade = apply_fill(Book(), Side.BUY, 2, D("5000.25"), D("1.24"), PV)
    assert (book.qty, book.avg_price, trade) == (2, D("5000.25"), None)
    book, trade = apply_fill(book, Side.SELL, 2, D("5001.00"), D("1.24"), PV)
    assert trade is not None and trade.side == "LONG" and trade.gross_pnl == D("7.50")
    assert book.qty == 0 and book.avg_price is None
    assert book.realized_pnl == D("7.50") - D("2.48") and book.fees == D("2.48")


def test_flip_opens_the_remainder_at_the_fill_price() -> None:
    book, _ = apply_fill(Book(), Side.SELL, 1, D("100"), D(0), PV)
    book, trade = apply_fill(book, Side.BUY, 3, D("99"), D(0), PV)
    assert trade is not None and trade.side == "SHORT" and trade.gross_pnl == D(5)
    assert (book.qty, book.avg_price) == (2, D("99.00000000"))
    assert unrealized(book, D("100"), PV) == D(10)


fills = st.lists(st.tuples(st.sampled_from(list(Side)), st.integers(1, 5),
                           st.integers(19000, 21000)), max_size=30)


@given(fills=fills)
def test_pnl_is_conserved(fills: list[tuple[Side, int, int]]) -> None:
    """Realised + unrealised PnL equals the cash flow of all fills marked to the last price,
    exactly, whatever the order of fills."""
    book, cash = Book(), D(0)
    tick = D("0.25")
    for side, qty, ticks in fills:
        price = tick * ticks
        book, _ = apply_fill(book, side, qty, price, D(0), PV)
        cash += (-price if side is Side.BUY else price) * qty * PV
    mark = tick * 20000
    qty = sum(q if s is Side.BUY else -q for s, q, _ in fills)
    assert book.qty == qty
    assert book.realized_pnl + unrealized(book, mark, PV) == cash + qty * mark * PV
