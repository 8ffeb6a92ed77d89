"""Where in the replayed history the demo's bots should start, read from the backtest of
their own strategy on the same bars (the runner makes exactly the backtest's trades:
tests/trading/test_runner_parity.py).

- The loss bot starts at a session open where the strategy, after a calm start (no new low
  for `first_bar` bars, long enough for the 429 storm, the failover and the failback to
  play out), sinks into a losing stretch while holding a position: its mark-to-market loss
  stays beyond a limit for `hold_bars` bars in a row. That limit becomes the bot's
  `max_daily_loss_usd`, so the risk monitor finds the breach with the position still open
  and the kill has something to flatten.
- The crash bot starts at a session open where the strategy trades early, so the worker can
  be killed mid-trading within seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.calendar import get_calendar, to_datetime
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument
from botwarden.domain.risk_limits import RiskLimits
from botwarden.research import fill_kernel as fk
from botwarden.research.engine import run_backtest
from botwarden.research.market import MarketBars, label
from botwarden.research.spec import build_spec
from botwarden.research.strategies import build_strategy

WARMUP_SESSIONS = 2  # sessions left before a start, for the runner's warm-up
# The monitor's loss (trade logs net of fees plus the open lots at the last close) and the
# backtest's (mark-to-market equity, the entry fee paid) differ by about a round turn's fees:
# the stretch has to stay this far beyond the limit to be seen beyond it.
FEE_SLACK = 2.0


@dataclass(frozen=True, slots=True)
class LosingStretch:
    session_open: datetime
    loss_limit: Decimal  # the max_daily_loss_usd that this stretch breaches
    breach_bar: int  # bars after the open when the loss first reaches the limit
    worst_loss_before: Decimal  # the largest loss before it, below the limit
    loss_in_stretch: Decimal  # the smallest loss while the stretch lasts, beyond the limit


@dataclass(frozen=True, slots=True)
class BusySession:
    session_open: datetime
    entries: int  # trades the strategy opens within the window looked at


class StrategyReplay:
    """The backtest of one strategy over every stored bar of a symbol, per session."""

    def __init__(self, data_dir: Path, *, kind: str, params: dict[str, Any],
                 limits: RiskLimits, capital: Decimal, symbol: str = "MES",
                 dataset: str = SYNTHETIC_DATASET) -> None:
        instrument = get_instrument(symbol)
        bars = BarStore(data_dir).load(instrument.symbol, None, None, "1m", dataset=dataset)
        spec = build_spec(kind=kind, params=params, symbol=instrument.symbol, timeframe="1m",
                          cash=capital, limits=limits)
        self.market: MarketBars = label(bars, spec.config.tick_size, instrument.calendar)
        result = run_backtest(self.market.bars, build_strategy(kind, spec.params), spec.config,
                              sessions=self.market.sessions, days=self.market.days,
                              flatten=self.market.flatten(spec.flatten_minutes))
        assert result.equity is not None
        self.equity = result.equity
        # Which trade (numbered from 1) is held at each bar's close; 0: flat.
        self.held = np.zeros(len(self.market), dtype=np.int64)
        self.entry_bars = np.asarray(result.records[:, fk.T_ENTRY_BAR], dtype=np.int64)
        for number, row in enumerate(result.records, 1):
            self.held[int(row[fk.T_ENTRY_BAR]):int(row[fk.T_EXIT_BAR])] = number
        cal = get_calendar(instrument.calendar)
        ts = self.market.bars.ts
        opens = cal.opens[(cal.opens > ts[0]) & (cal.opens <= ts[-1])]
        starts = [int(i) for i in np.searchsorted(ts, opens)]
        # Sessions whose open bar is stored, past the ones kept for the warm-up.
        self.session_starts = [i for i, o in zip(starts, opens.tolist(), strict=True)
                               if int(ts[i]) == o][WARMUP_SESSIONS:]

    def _length(self, start: int) -> int:
        """Bars of the session that opens at bar `start`."""
        sessions = self.market.sessions
        end = start
        while end < len(sessions) and sessions[end] == sessions[start]:
            end += 1
        return end - start

    def losing_stretch(self, *, first_bar: int, last_bar: int, hold_bars: int,
                       margin: Decimal, min_limit: Decimal,
                       exclude: frozenset[datetime] = frozenset()) -> LosingStretch:
        for start in self.session_starts:
            opened = to_datetime(int(self.market.bars.ts[start]))
            if opened in exclude or self._length(start) <= last_bar + hold_bars:
                continue
            found = self._stretch_in(start, first_bar, last_bar, hold_bars, float(margin),
                                     float(min_limit))
            if found is not None:
                breach, limit, before, during = found
                return LosingStretch(opened, Decimal(limit), breach, _usd(before), _usd(during))
        raise DomainError("NO_LOSING_STRETCH",
                          f"no session of the replayed history has a losing stretch between "
                          f"bars {first_bar} and {last_bar}",
                          "Replay more days of history, or another strategy.")

    def _stretch_in(self, start: int, first_bar: int, last_bar: int, hold_bars: int,
                    margin: float, min_limit: float) -> tuple[int, int, float, float] | None:
        base = self.equity[start - 1]  # flat before the open: the runner starts flat too
        stop = start + last_bar + hold_bars + 1
        loss = base - self.equity[start:stop]  # positive: money lost since the open
        held = self.held[start:stop]
        worst_before = np.maximum.accumulate(np.concatenate(([0.0], loss)))[:-1]
        for t in range(first_bar, last_bar + 1):
            window = slice(t, t + hold_bars + 1)
            trade = held[t]
            if trade == 0 or np.any(held[window] != trade):
                continue  # the breach must find a position open, for the kill to flatten
            limit = math.ceil(max(worst_before[t] + margin, min_limit))
            least = float(np.min(loss[window]))
            if least >= limit + FEE_SLACK:
                return t, limit, float(worst_before[t]), least
        return None

    def busy_session(self, *, within_bars: int, min_entries: int,
                     exclude: frozenset[datetime] = frozenset()) -> BusySession:
        for start in self.session_starts:
            opened = to_datetime(int(self.market.bars.ts[start]))
            if opened in exclude or self._length(start) <= within_bars:
                continue
            entries = int(np.count_nonzero((self.entry_bars >= start)
                                           & (self.entry_bars < start + within_bars)))
            if entries >= min_entries:
                return BusySession(opened, entries)
        raise DomainError("NO_BUSY_SESSION",
                          f"no session opens {min_entries} trades within {within_bars} bars",
                          "Replay more days of history, or another strategy.")


def _usd(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))
