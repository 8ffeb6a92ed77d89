"""The backtest's fill rules as pure functions on integer ticks, for the simulated brokers.

They are the rules of `research.fill_kernel` (its docstring has the reasoning). The kernel is
a numba function that keeps its rules inline, on purpose: numba's cache does not notice edits
to jitted functions in other modules. So the rules are stated once more here, as plain
Python, and `tests/trading/brokers/test_paper_parity.py` holds the two together: hypothesis
drives the paper broker and the kernel over the same random bars and orders and requires
the same fills, trade for trade and tick for tick.

- Market: fills at the bar's open, `slippage` ticks against us.
- Stop: triggers when the bar trades at or through the stop; fills at the stop, or at the open
  when the order rested through an open that was already through it; `slippage` against us.
- Limit: fills only when the bar trades strictly through the limit (queue position is
  unknown); at the limit, or at a better open when it rested through the open; no slippage.
- Within one bar: market orders at the open first, then stops, then limits (when one bar
  reaches both a stop and a target, the stop is assumed first: the conservative reading of a
  bar whose path is unknown).

`rested` says whether the order was working before the bar opened. An order sent between
bars always was; the exits of a bracket whose entry filled at this bar's open were not (they
see the bar from its open on, so a "gap" cannot fill them at the open).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from botwarden.data.providers.base import Bar
from botwarden.domain.instruments import Instrument
from botwarden.domain.trading import Side


@dataclass(frozen=True, slots=True)
class TickBar:
    ts: int  # bar open time, ns since the epoch (UTC)
    open: int
    high: int
    low: int
    close: int


def to_tick_bar(bar: Bar, instrument: Instrument) -> TickBar:
    """A stream bar on the instrument's grid, as exact tick counts (off-grid is refused)."""

    def ticks(value: float) -> int:
        return instrument.to_ticks(Decimal(repr(float(value))))

    return TickBar(int(bar.ts), ticks(bar.open), ticks(bar.high), ticks(bar.low),
                   ticks(bar.close))


def sign(side: Side) -> int:
    return 1 if side is Side.BUY else -1


def market_fill(side: Side, bar: TickBar, slippage: int) -> int:
    return bar.open + sign(side) * slippage


def stop_fill(side: Side, stop: int, bar: TickBar, rested: bool, slippage: int) -> int | None:
    """A buy stop sits above the market, a sell stop below it."""
    if side is Side.BUY:
        if bar.high < stop:
            return None
        base = max(bar.open, stop) if rested else stop
    else:
        if bar.low > stop:
            return None
        base = min(bar.open, stop) if rested else stop
    return base + sign(side) * slippage


def limit_fill(side: Side, limit: int, bar: TickBar, rested: bool) -> int | None:
    """A buy limit sits below the market, a sell limit above it."""
    if side is Side.BUY:
        if not bar.low < limit:
            return None
        return min(bar.open, limit) if rested else limit
    if not bar.high > limit:
        return None
    return max(bar.open, limit) if rested else limit


def bracket_prices(entry_side: Side, entry_ticks: int, stop_loss: int | None,
                   profit_target: int | None) -> tuple[int | None, int | None]:
    """(stop price, target price) in ticks of the exits protecting a fill at `entry_ticks`."""
    direction = sign(entry_side)
    stop = entry_ticks - direction * stop_loss if stop_loss is not None else None
    target = entry_ticks + direction * profit_target if profit_target is not None else None
    return stop, target
