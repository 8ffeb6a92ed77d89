"""The backtest's execution kernel: target positions in, fills, trades and equity out.

Futures semantics, all prices in integer ticks:

- Whole contracts. The strategy's target at bar i's close (-1/0/+1, times `size`) is
  traded by market orders that fill at bar i+1's open, `slippage` ticks against us. A
  reversal is two orders: the exit, then the entry.
- A stop-loss (`stop` ticks from entry) triggers when the bar trades at or through it and
  fills at the stop, or at the open when the bar gaps through it, minus slippage. A profit
  target (`target` ticks) is a resting limit: it fills only when price trades strictly
  through it (queue position is unknown), at the limit or at a better open, no slippage.
  Both are checked from the entry bar on; when one bar reaches both, the stop is assumed
  first (the conservative reading of a bar whose path is unknown).
- `flatten[i]` marks bars inside the no-hold window before a session close: a position
  still open at such a bar's open is closed there, and nothing is opened during it.
- After a forced exit (stop, target, flatten) the engine stays flat until the strategy's
  target changes: it re-enters on a new decision, never on a stale one.
- Fees: `fee` per contract per side, charged at each fill. Equity is cash plus the open
  position marked to the close (no exit fee until it is closed), like a futures account.

Pre-trade risk seam: every order the engine would send passes `check_order` first, the
same place the runner's order manager consults the risk engine. Risk-reducing orders
always pass; an entry is refused with MAX_ORDER_SIZE or MAX_POSITION and counted per
reason in `denials`, then retried at the next bar while the target still asks for it.
New pre-trade rules are added here, next to their reason codes, because numba's cache
does not notice edits to a jitted function that lives in another module.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

# cfg vector
CFG_SIZE, CFG_TICK_VALUE, CFG_FEE, CFG_SLIPPAGE, CFG_STOP, CFG_TARGET = 0, 1, 2, 3, 4, 5
CFG_CASH, CFG_MAX_ORDER, CFG_MAX_POSITION = 6, 7, 8
CFG_LEN = 9

# trade record columns (int64)
T_ENTRY_BAR, T_EXIT_BAR, T_SIDE, T_QTY, T_ENTRY_TICKS, T_EXIT_TICKS, T_REASON = range(7)
TRADE_COLUMNS = 7

EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_PROFIT_TARGET, EXIT_SESSION_FLATTEN = 0, 1, 2, 3
EXIT_REASONS = ("SIGNAL", "STOP_LOSS", "PROFIT_TARGET", "SESSION_FLATTEN")

# pre-trade outcomes; names are the risk engine's reason codes (domain.md, "Risk engine")
ALLOWED, DENY_MAX_ORDER_SIZE, DENY_MAX_POSITION = 0, 1, 2
PRETRADE_CODES = ("ALLOWED", "MAX_ORDER_SIZE", "MAX_POSITION")


@njit(cache=True, nogil=True)
def check_order(cfg, position, quantity):  # type: ignore[no-untyped-def]
    """Pre-trade check of a signed order `quantity` against the current `position`."""
    reducing = position != 0 and (position > 0) != (quantity > 0) and abs(quantity) <= abs(position)
    if reducing:
        return ALLOWED
    if abs(quantity) > cfg[CFG_MAX_ORDER]:
        return DENY_MAX_ORDER_SIZE
    if abs(position + quantity) > cfg[CFG_MAX_POSITION]:
        return DENY_MAX_POSITION
    return ALLOWED


@njit(cache=True, nogil=True)
def simulate(open_, high, low, close, targets, day_id, flatten, cfg,  # type: ignore[no-untyped-def]
             trades, pnls, equity, daily_equity, denials):
    """Run the bars. Writes closed trades into `trades`/`pnls`, the per-bar equity into
    `equity` when it has one slot per bar (pass an empty array to skip it), each day's
    closing equity into `daily_equity`, and denied orders per reason into `denials`.

    Returns (trade count, max drawdown %, final equity, position, entry ticks, entry bar)."""
    n = close.shape[0]
    size = np.int64(cfg[CFG_SIZE])
    tick_value = cfg[CFG_TICK_VALUE]
    fee = cfg[CFG_FEE]
    slip = np.int64(cfg[CFG_SLIPPAGE])
    stop = np.int64(cfg[CFG_STOP])
    profit = np.int64(cfg[CFG_TARGET])
    record_equity = equity.shape[0] == n

    cash = cfg[CFG_CASH]
    peak = cash
    worst = 0.0
    eq = cash
    # `| int`: plain ints are assigned below (numba types both as int64)
    position: np.int64 | int = np.int64(0)
    entry_ticks = np.int64(0)
    entry_bar: np.int64 | int = np.int64(-1)
    latched = False
    previous_target = np.int8(0)
    count = 0
    day = 0

    for i in range(n):
        bar_open = open_[i]
        # 1. market orders decided at the previous close fill at this open
        if i > 0:
            wanted_side = targets[i - 1]
            if wanted_side != previous_target:
                latched = False
                previous_target = wanted_side
            wanted = np.int64(0) if latched or flatten[i] else np.int64(wanted_side) * size
            if position != 0 and (wanted == 0 or (wanted > 0) != (position > 0)):
                verdict = check_order(cfg, position, -position)
                if verdict == ALLOWED:
                    exit_ticks = bar_open - slip if position > 0 else bar_open + slip
                    reason = EXIT_SIGNAL
                    if flatten[i] and wanted_side * position > 0:
                        reason = EXIT_SESSION_FLATTEN
                    count = _close_trade(trades, pnls, count, position, entry_ticks, entry_bar,
                                         exit_ticks, i, reason, tick_value, fee)
                    cash += position * (exit_ticks - entry_ticks) * tick_value - abs(position) * fee
                    position = 0
                else:
                    denials[verdict] += 1
            if flatten[i]:
                latched = True
            if position == 0 and wanted != 0:
                verdict = check_order(cfg, position, wanted)
                if verdict == ALLOWED:
                    position = wanted
                    entry_ticks = bar_open + slip if wanted > 0 else bar_open - slip
                    entry_bar = i
                    cash -= abs(wanted) * fee
                else:
                    denials[verdict] += 1

        # 2. resting exits: stop-loss, then profit target
        if position != 0 and (stop > 0 or profit > 0):
            exit_ticks = np.int64(0)
            exit_reason = -1
            gapped = entry_bar < i  # held through the open: a gap fills at the open
            if position > 0:
                stop_px = entry_ticks - stop
                limit_px = entry_ticks + profit
                if stop > 0 and low[i] <= stop_px:
                    exit_ticks = (min(bar_open, stop_px) if gapped else stop_px) - slip
                    exit_reason = EXIT_STOP_LOSS
                elif profit > 0 and high[i] > limit_px:
                    exit_ticks = max(bar_open, limit_px) if gapped else limit_px
                    exit_reason = EXIT_PROFIT_TARGET
            else:
                stop_px = entry_ticks + stop
                limit_px = entry_ticks - profit
                if stop > 0 and high[i] >= stop_px:
                    exit_ticks = (max(bar_open, stop_px) if gapped else stop_px) + slip
                    exit_reason = EXIT_STOP_LOSS
                elif profit > 0 and low[i] < limit_px:
                    exit_ticks = min(bar_open, limit_px) if gapped else limit_px
                    exit_reason = EXIT_PROFIT_TARGET
            if exit_reason >= 0:
                count = _close_trade(trades, pnls, count, position, entry_ticks, entry_bar,
                                     exit_ticks, i, exit_reason, tick_value, fee)
                cash += position * (exit_ticks - entry_ticks) * tick_value - abs(position) * fee
                position = 0
                latched = True

        # 3. mark to market at the close
        eq = cash + position * (close[i] - entry_ticks) * tick_value
        if eq > peak:
            peak = eq
        elif peak > 0 and (peak - eq) / peak > worst:
            worst = (peak - eq) / peak
        if record_equity:
            equity[i] = eq
        if i == n - 1 or day_id[i + 1] != day_id[i]:
            daily_equity[day] = eq
            day += 1
    return count, 100.0 * worst, eq, position, entry_ticks, entry_bar


@njit(cache=True, nogil=True)
def _close_trade(trades, pnls, count, position, entry_ticks, entry_bar, exit_ticks, exit_bar,  # type: ignore[no-untyped-def]
                 reason, tick_value, fee):
    qty = abs(position)
    side = 1 if position > 0 else -1
    trades[count, T_ENTRY_BAR] = entry_bar
    trades[count, T_EXIT_BAR] = exit_bar
    trades[count, T_SIDE] = side
    trades[count, T_QTY] = qty
    trades[count, T_ENTRY_TICKS] = entry_ticks
    trades[count, T_EXIT_TICKS] = exit_ticks
    trades[count, T_REASON] = reason
    pnls[count] = position * (exit_ticks - entry_ticks) * tick_value - 2 * qty * fee
    return count + 1


def trade_capacity(targets: npt.NDArray[np.int8]) -> int:
    """An upper bound on the trades `simulate` can close: every entry needs a change of
    target (after a forced exit the engine waits for one), so trades <= changes + 1."""
    changes = int(np.count_nonzero(targets[1:] != targets[:-1])) if targets.shape[0] else 0
    return changes + 2
