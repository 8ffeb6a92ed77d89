"""Bars for research runs: loaded from the bar store with their provenance, labelled with
the exchange calendar, and re-loadable anywhere from a small reference.

A run resolves its bars once (`open_series`), which pins the exact range and the data hash
into a `DataRef`. Parallel workers receive only that reference and load the bars from the
store themselves, once per process (`load_ref`, cached), so a 1,000-task sweep never pickles
the bars; each load is checked against the pinned hash, so every worker provably computed
on the same bars as the run's provenance says.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import numpy.typing as npt

from botwarden.data.bar_store import BarStore
from botwarden.data.calendar import (
    NO_SESSION,
    NS_PER_DAY,
    NS_PER_MINUTE,
    Timestamp,
    get_calendar,
)
from botwarden.data.provenance import Provenance, data_hash, load_with_provenance
from botwarden.domain.bars import I64, Bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument
from botwarden.research.ticks import TickBars, to_tick_bars

NO_CLOSE = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class DataRef:
    """Where a run's bars live and what they hash to; `end_ns` is exclusive."""

    data_dir: str
    symbol: str
    dataset: str
    timeframe: str
    start_ns: int
    end_ns: int
    data_hash: str


@dataclass(frozen=True, slots=True, eq=False)
class MarketBars:
    """Bars on the tick grid with their calendar labels, one value per bar:
    `sessions` the trading date of the bar's session (NO_SESSION outside one), `days` the
    trading day its equity is booked on (the session, carried over closed-market bars) and
    `closes` the close of its session in ns (NO_CLOSE outside one)."""

    bars: TickBars
    sessions: I64
    days: I64
    closes: I64

    def __len__(self) -> int:
        return len(self.bars)

    @property
    def start_ns(self) -> int:
        return int(self.bars.ts[0])

    @property
    def end_ns(self) -> int:
        """Exclusive end: just after the last bar's open."""
        return int(self.bars.ts[-1]) + 1

    @property
    def span_days(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_DAY

    def index(self, ns: int) -> int:
        """Index of the first bar opening at or after `ns`."""
        return int(np.searchsorted(self.bars.ts, ns, side="left"))

    def flatten(self, minutes: int) -> npt.NDArray[np.bool_] | None:
        """The no-hold window: bars opening within `minutes` of their session's close."""
        if minutes <= 0:
            return None
        return self.bars.ts >= self.closes - minutes * NS_PER_MINUTE

    def with_volatility(self, factor: float) -> MarketBars:
        """Every bar's range scaled by `factor` around its close, on the tick grid (wicks
        rounded outwards, the open to the nearest tick); the closes stay as they were."""
        if factor == 1.0:
            return self
        b = self.bars
        close = b.close
        high = close + np.ceil((b.high - close) * factor - 1e-9).astype(np.int64)
        low = close - np.ceil((close - b.low) * factor - 1e-9).astype(np.int64)
        open_ = close + np.floor((b.open - close) * factor + 0.5).astype(np.int64)
        high = np.maximum(high, np.maximum(open_, close))
        low = np.minimum(low, np.minimum(open_, close))
        shocked = TickBars(b.ts, open_, high, low, close, b.volume, b.tick_size)
        return MarketBars(shocked, self.sessions, self.days, self.closes)


def label(bars: Bars, tick_size: Decimal, calendar_name: str) -> MarketBars:
    """Put `bars` on the tick grid and label them with the exchange calendar."""
    calendar = get_calendar(calendar_name)
    index = calendar.locate(bars.ts)
    inside = index != NO_SESSION
    safe = np.clip(index, 0, None)
    sessions = np.where(inside, calendar.days[safe], NO_SESSION).astype(np.int64)
    closes = np.where(inside, calendar.closes[safe], NO_CLOSE).astype(np.int64)
    # Session dates only grow with time, so a running maximum books a bar outside any
    # session on the day before it; daily equity then stays one value per trading day.
    days = np.maximum.accumulate(sessions) if len(sessions) else sessions
    return MarketBars(to_tick_bars(bars, tick_size), sessions, days, closes)


def open_series(data_dir: Path, symbol: str, timeframe: str, start: Timestamp | None = None,
                end: Timestamp | None = None,
                dataset: str | None = None) -> tuple[MarketBars, Provenance, DataRef]:
    """A run's bars from the store, their provenance and the reference that pins them."""
    instrument = get_instrument(symbol)
    store = BarStore(data_dir)
    bars, provenance = load_with_provenance(store, instrument.symbol, start, end, timeframe,
                                            dataset=dataset)
    if len(bars) < 2:
        raise DomainError(
            "NO_DATA",
            f"{len(bars)} {timeframe} bars of {instrument.symbol} in the requested range",
            "Widen the range, or import or synthesise bars "
            f"(`botwarden data synth --symbol {instrument.symbol} --days 90`).",
            status=422,
        )
    market = label(bars, instrument.tick_size, instrument.calendar)
    ref = DataRef(str(data_dir), instrument.symbol, provenance.dataset, timeframe,
                  market.start_ns, market.end_ns, provenance.data_hash)
    return market, provenance, ref


# --- the per-process cache of workers ---------------------------------------------------

_CACHE_SIZE = 4
_cache: OrderedDict[DataRef, MarketBars] = OrderedDict()
_cache_lock = threading.Lock()


def load_ref(ref: DataRef) -> MarketBars:
    """The bars `ref` names, loaded at most once per process (a few recent ones are kept),
    refused if they no longer hash to what the run recorded."""
    with _cache_lock:
        if ref in _cache:
            _cache.move_to_end(ref)
            return _cache[ref]
    instrument = get_instrument(ref.symbol)
    bars = BarStore(Path(ref.data_dir)).load(ref.symbol, ref.start_ns, ref.end_ns, ref.timeframe,
                                              dataset=ref.dataset)
    if data_hash(bars) != ref.data_hash:
        raise DomainError(
            "DATA_CHANGED",
            f"the {ref.dataset} {ref.symbol} bars changed while the run was computing",
            "Run it again: it will pin the new bars.",
        )
    market = label(bars, instrument.tick_size, instrument.calendar)
    with _cache_lock:
        _cache[ref] = market
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return market


def remember(ref: DataRef, market: MarketBars) -> None:
    """Seed this process's cache with bars it already holds (the run's own process)."""
    with _cache_lock:
        _cache[ref] = market
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
