"""The backtest's fills replayed through the exact ledger (botwarden.domain.ledger).

The fill kernel keeps money in float64 for speed; the store keeps Decimal, computed by the
same FIFO book the runner and the paper broker use. Replaying a backtest's fills through
that book gives its exact trade PnLs and final equity, which the kernel must match to the
cent (`ledger_mismatches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from botwarden.domain.bars import I64
from botwarden.domain.ledger import Book, apply_fill, unrealized
from botwarden.domain.trading import Side
from botwarden.research import fill_kernel as fk

if TYPE_CHECKING:
    from botwarden.research.engine import BacktestResult, ExecutionConfig

# "To the cent": within half a cent, the float rounds to the ledger's cent. Float error of
# these sums is around 1e-9 dollars; a real mistake of one cent is caught.
HALF_CENT = Decimal("0.005")


@dataclass(frozen=True, slots=True)
class LedgerReplay:
    trade_pnls: list[Decimal]  # each closed trade, net of both sides' fees
    book: Book  # after the last fill: the open position and all realised money


def replay(records: I64, config: ExecutionConfig,
           open_entry: tuple[int, int] | None = None) -> LedgerReplay:
    """Replay closed trades (kernel records), then the entry of a position still open
    (`open_entry` = (signed qty, entry ticks)), through a FIFO book."""
    tick, point_value, fee = config.tick_size, config.point_value, config.commission_per_side
    book = Book()
    pnls = []
    for row in records:
        qty = int(row[fk.T_QTY])
        long = row[fk.T_SIDE] > 0
        entry_side, exit_side = (Side.BUY, Side.SELL) if long else (Side.SELL, Side.BUY)
        book, _ = apply_fill(book, entry_side, qty, tick * int(row[fk.T_ENTRY_TICKS]),
                             qty * fee, point_value)
        book, closed = apply_fill(book, exit_side, qty, tick * int(row[fk.T_EXIT_TICKS]),
                                  qty * fee, point_value)
        if closed is None or book.qty != 0:
            raise ValueError("trade records must be round trips of one position at a time")
        pnls.append(closed.gross_pnl - 2 * qty * fee)
    if open_entry is not None:
        qty, entry_ticks = open_entry
        book, _ = apply_fill(book, Side.BUY if qty > 0 else Side.SELL, abs(qty),
                             tick * entry_ticks, abs(qty) * fee, point_value)
    return LedgerReplay(pnls, book)


def ledger_trade_pnls(records: I64, config: ExecutionConfig) -> list[Decimal]:
    """Exact net PnL of each closed trade."""
    return replay(records, config).trade_pnls


def ledger_final_equity(result: BacktestResult) -> Decimal:
    """Cash + realised PnL net of every fee paid + the open position marked to the last
    close: the exact counterpart of the kernel's final equity."""
    config = result.config
    position = result.open_position
    open_entry = None
    if position is not None:
        sign = 1 if position.side == "LONG" else -1
        open_entry = (sign * position.qty, int(position.entry_price / config.tick_size))
    book = replay(result.records, config, open_entry).book
    equity = config.cash + book.realized_pnl
    if position is not None:
        equity += unrealized(book, position.mark_price, config.point_value)
    return equity


def ledger_mismatches(result: BacktestResult) -> list[str]:
    """Every figure where the float engine and the exact ledger differ by half a cent or
    more: an empty list means they agree to the cent."""
    problems = []
    exact = ledger_trade_pnls(result.records, result.config)
    for index, (fast, slow) in enumerate(zip(result.pnls, exact, strict=True)):
        if abs(Decimal(float(fast)) - slow) >= HALF_CENT:
            problems.append(f"trade {index}: engine {fast!r} vs ledger {slow}")
    net = sum(exact, Decimal(0))
    if abs(Decimal(result.metrics.net_pnl) - net) >= HALF_CENT:
        problems.append(f"net PnL: engine {result.metrics.net_pnl!r} vs ledger {net}")
    final = ledger_final_equity(result)
    if abs(Decimal(result.metrics.final_equity) - final) >= HALF_CENT:
        problems.append(f"final equity: engine {result.metrics.final_equity!r} vs ledger {final}")
    return problems
