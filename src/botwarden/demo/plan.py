"""The demo fleet's plan: which bots, with which risk configs and research grids, and the
timeline they follow on the seeded demo history.

The timeline splits the synthetic history the way a desk would use real history, oldest
first (S sessions in all):

- research: sessions [0, B), B = S - live - paper. Each slot's parameter sweep, and each
  bot's three backtests, read only these bars. The backtests are the same lookback re-run
  as the history grows (windows ending `window_shifts` sessions before B, newest last), so
  "the last three backtests pass" asks that the edge held at three recent dates;
- paper: sessions [B, S - live). The bots the demo takes on to SHADOW paper-trade them at
  full speed (a RUNNER job with an `end`): out-of-sample evidence for the PAPER gates;
- live: the last `live` sessions, replayed at one bar a second. A bot bound for SHADOW goes
  live at the first bar of session S - live, where it is flat (it flattens before every
  close), so its new shadow book agrees with its position. A bot that stays in PAPER keeps
  its paper book: it goes live just before its first trade from the 09:30 New York cash
  open on (demo/staging.py), after paper trading the hour before that at full speed, so the
  demo shows live orders at once.

The slots are the bots. Mean reversion (VWAP and RSI) is what the synthetic data rewards
(its range regime pulls prices back to the session open); the trend strategies are in the
fleet too, and their gates honestly refuse them: they stay in TRIALS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.calendar import to_datetime
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument
from botwarden.domain.stages import Stage
from botwarden.research.market import label

CASH_OPEN_MINUTE = 9 * 60 + 30  # 09:30 New York
STOPS_A_DAY = 5


@dataclass(frozen=True, slots=True)
class FleetSlot:
    """One demo bot: its strategy, the grid its parameters are chosen from, its bracket,
    and how far the demo takes it (PAPER, or SHADOW through paper trading on history)."""

    name: str
    symbol: str
    kind: str
    grid: Mapping[str, Sequence[int]]
    stop_loss_ticks: int
    profit_target_ticks: int
    aims_for: Stage = Stage.PAPER

    @property
    def max_daily_loss_usd(self) -> int:
        """Room for `STOPS_A_DAY` full stop-losses in a day (at least $1,000): a wider bracket
        risks more a trade, and the kill engine should stop a bad day, not a normal one."""
        stop = get_instrument(self.symbol).tick_value * self.stop_loss_ticks
        return max(1000, math.ceil(float(stop) * STOPS_A_DAY / 100) * 100)

    def risk_config(self) -> dict[str, object]:
        """A complete risk config: one contract, stop and target, flat before each close."""
        return {"max_contracts_per_order": 1, "max_position_contracts": 1,
                "max_daily_loss_usd": self.max_daily_loss_usd, "max_drawdown_pct": 20,
                "max_daily_loss_pct": 5, "stop_loss_ticks": self.stop_loss_ticks,
                "profit_target_ticks": self.profit_target_ticks, "flatten_intraday": True,
                "flatten_before_close_minutes": 15}

    @property
    def research_key(self) -> tuple[object, ...]:
        """What its sweep is found again by (the sweep's request)."""
        return (self.symbol, self.kind, tuple(sorted((k, tuple(v)) for k, v in self.grid.items())),
                self.stop_loss_ticks, self.profit_target_ticks)


_RSI = {"period": (30, 45, 60, 90), "lower": (25, 30, 35, 40), "upper": (60, 65, 70)}
_MES_VWAP = {"band_ticks": tuple(range(30, 200, 10))}
_MNQ_VWAP = {"band_ticks": tuple(range(100, 800, 40))}
_SHADOW = Stage.SHADOW

# In the order their research is queued.
FLEET: tuple[FleetSlot, ...] = (
    FleetSlot("mes-vwap-1", "MES", "vwap_reversion", _MES_VWAP, 160, 320, _SHADOW),
    FleetSlot("mes-vwap-4", "MES", "vwap_reversion", _MES_VWAP, 240, 480),
    FleetSlot("mnq-vwap-1", "MNQ", "vwap_reversion", _MNQ_VWAP, 600, 1200, _SHADOW),
    FleetSlot("mnq-vwap-2", "MNQ", "vwap_reversion", _MNQ_VWAP, 800, 800),
    FleetSlot("mes-vwap-2", "MES", "vwap_reversion", _MES_VWAP, 200, 200, _SHADOW),
    FleetSlot("mes-rsi-1", "MES", "rsi_reversion", _RSI, 200, 200),
    FleetSlot("mnq-vwap-5", "MNQ", "vwap_reversion", _MNQ_VWAP, 1000, 2000, _SHADOW),
    FleetSlot("mnq-vwap-3", "MNQ", "vwap_reversion", _MNQ_VWAP, 1200, 1200),
    FleetSlot("mes-vwap-3", "MES", "vwap_reversion", _MES_VWAP, 400, 400, _SHADOW),
    FleetSlot("mes-rsi-2", "MES", "rsi_reversion", _RSI, 600, 600),
    FleetSlot("mnq-vwap-6", "MNQ", "vwap_reversion", _MNQ_VWAP, 800, 1600, _SHADOW),
    FleetSlot("mnq-vwap-4", "MNQ", "vwap_reversion", _MNQ_VWAP, 400, 800),
    # Trend following: no edge on these bars. Their research runs, and their gates say no.
    FleetSlot("mes-sma", "MES", "sma_cross", {"fast": (5, 10, 20), "slow": (30, 60, 120)},
              40, 80),
    FleetSlot("mnq-ema", "MNQ", "ema_cross", {"fast": (5, 10, 20), "slow": (30, 60, 120)},
              120, 240),
    FleetSlot("mes-donchian", "MES", "donchian_breakout", {"period": (20, 60, 120, 240)},
              60, 120),
    FleetSlot("mnq-orb", "MNQ", "opening_range", {"range_bars": (15, 30, 60)}, 120, 240),
)


@dataclass(frozen=True, slots=True)
class FleetShape:
    """The knobs of the plan (tests shrink them with a short history)."""

    slots: tuple[FleetSlot, ...] = FLEET
    live_sessions: int = 15
    paper_sessions: int = 10
    window_shifts: tuple[int, ...] = (4, 2, 0)  # oldest first: the newest backtest ends at B
    dataset: str = SYNTHETIC_DATASET
    # Sweeps in the queue at once: the bots researched first get their backtests (queued
    # behind these) and their runners without waiting for the whole fleet's research.
    max_pending_sweeps: int = 2
    # Selection margins: a sweep's pick should clear the gates it will face with room.
    expectancy_margin: float = 1.2
    trades_margin: float = 1.3

    def __post_init__(self) -> None:
        if len({s.name for s in self.slots}) != len(self.slots) or \
                len({s.research_key for s in self.slots}) != len(self.slots):
            raise ValueError("fleet slots need distinct names and distinct research")


@dataclass(frozen=True, slots=True)
class Timeline:
    history_start: datetime
    paper_start: datetime  # the research history ends here
    shadow_live_start: datetime  # a session's first bar: every bot is flat there
    paper_live_start: datetime  # that session's 09:30 New York cash open (demo/staging.py)
    backtest_windows: tuple[tuple[datetime, datetime], ...]  # oldest first
    research_sessions: int
    paper_sessions: int
    live_sessions: int
    history_end: datetime



def plan_timeline(store: BarStore, shape: FleetShape, symbol: str = "MES") -> Timeline:
    """The timeline on the stored bars of `symbol` (MES and MNQ share the CME calendar)."""
    instrument = get_instrument(symbol)
    bars = store.load(instrument.symbol, None, None, "1m", dataset=shape.dataset)
    market = label(bars, instrument.tick_size, instrument.calendar)
    sessions = market.sessions
    firsts = np.flatnonzero(np.r_[True, sessions[1:] != sessions[:-1]]) if len(sessions) else \
        np.array([], dtype=np.int64)
    total = len(firsts)
    research = total - shape.live_sessions - shape.paper_sessions
    length = research - max(shape.window_shifts)
    if length < 2:
        raise DomainError(
            "DEMO_HISTORY_TOO_SHORT",
            f"{total} sessions of {shape.dataset} {instrument.symbol} bars: too few for the "
            "demo fleet's research, paper and live periods",
            "Delete the demo bar store (var/data) so `botwarden serve` writes it afresh.")
    ts = bars.ts

    def at(session: int) -> datetime:
        return to_datetime(int(ts[firsts[session]]))

    live = total - shape.live_sessions
    windows = tuple((at(research - shift - length), at(research - shift))
                    for shift in shape.window_shifts)
    return Timeline(
        history_start=at(0), paper_start=at(research), shadow_live_start=at(live),
        paper_live_start=_cash_open(ts, int(firsts[live]),
                                    int(firsts[live + 1]) if live + 1 < total else len(ts)),
        backtest_windows=windows, research_sessions=research,
        paper_sessions=shape.paper_sessions, live_sessions=shape.live_sessions,
        history_end=to_datetime(int(ts[-1])))


def _cash_open(ts: np.ndarray, first: int, end: int) -> datetime:  # type: ignore[type-arg]
    """The first bar at or after 09:30 New York in bars [first, end); the session's first bar
    when it has no cash session (a holiday's short session)."""
    local = pd.DatetimeIndex(ts[first:end], tz="UTC").tz_convert("America/New_York")
    minutes = np.asarray(local.hour * 60 + local.minute)
    # The evening's bars (18:00 onwards) belong to the next morning's trading date.
    morning = np.flatnonzero((minutes >= CASH_OPEN_MINUTE) & (minutes < 18 * 60))
    return to_datetime(int(ts[first + int(morning[0])] if len(morning) else ts[first]))
