"""Bars for the research-job tests: seeded synthetic sessions, and crafted price paths on
the real CME session minutes (so calendars, sessions and resampling behave as in
production) whose outcome for a strategy is known in advance."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np

from botwarden.data.bar_store import BarStore
from botwarden.data.calendar import NS_PER_DAY
from botwarden.data.synth import synthesize, write_synthetic
from botwarden.domain.bars import Bars
from botwarden.research.engine import ExecutionConfig
from botwarden.research.spec import RunSpec

END = date(2026, 3, 6)  # a Friday: the last session of every series here
TICK = 0.25
CRAFTED = "CRAFTED"
# Stands in for a vendor import: the gates count walk-forward and stress runs only on real
# market data, and these tests check that path (the bars themselves are seeded ones).
IMPORTED, IMPORT_PROVIDER = "TEST.IMPORT", "test-vendor"


def write_synthetic_days(data_dir: Path, days: int, seed: int = 11, symbol: str = "MES") -> None:
    write_synthetic(BarStore(data_dir), symbol, days, seed=seed, end=END)


def write_imported_days(data_dir: Path, days: int, seed: int = 11) -> None:
    bars = synthesize("MES", days, seed=seed, end=END)
    BarStore(data_dir).write(bars, dataset=IMPORTED, provider=IMPORT_PROVIDER, synthetic=False)


def session_minutes(days: int) -> np.ndarray:
    """Open times of every 1-minute bar of the MES sessions in the `days` days to END."""
    return synthesize("MES", days, seed=0, end=END).ts


def write_ticks(data_dir: Path, ts: np.ndarray, close_ticks: np.ndarray,
                dataset: str = CRAFTED) -> None:
    """Bars whose open is the previous close and whose high/low are the body's ends
    (`dataset` IMPORTED: as if imported from a vendor)."""
    close = close_ticks.astype(np.float64) * TICK
    open_ = np.r_[close[0], close[:-1]]
    bars = Bars("MES", "1m", ts, open_, np.maximum(open_, close), np.minimum(open_, close),
                close, np.ones(ts.shape[0]))
    real = dataset == IMPORTED
    BarStore(data_dir).write(bars, dataset=dataset,
                             provider=IMPORT_PROVIDER if real else "test", synthetic=not real)


def trend_then_flat(data_dir: Path, days: int, flat_days: float) -> int:
    """Rising one tick a minute, then flat for the last `flat_days` days; returns the time
    (ns) the flat part starts. A Donchian breakout goes long in the rise and holds it (a
    flat market breaks no channel): every window reaching into the rise is profitable, and
    one inside the flat part does nothing."""
    ts = session_minutes(days)
    flat_from = int(ts[-1]) + 1 - int(flat_days * NS_PER_DAY)
    steps = np.where(ts < flat_from, 1, 0)
    write_ticks(data_dir, ts, 16_000 + np.cumsum(steps))
    return flat_from


def sawtooth(data_dir: Path, days: int, leg: int = 30, jitter: int = 0, seed: int = 0,
             dataset: str = CRAFTED) -> None:
    """Legs of `leg` (+- `jitter`, seeded) minutes up one tick a minute, then down, and so
    on: a Donchian breakout reverses a few bars into each leg and wins the rest of it."""
    ts = session_minutes(days)
    n = ts.shape[0]
    lengths = np.random.default_rng(seed).integers(leg - jitter, leg + jitter + 1, n // 2 + 1)
    phase = np.repeat(np.arange(lengths.shape[0]) % 2, lengths)[:n]
    write_ticks(data_dir, ts, 16_000 + np.cumsum(np.where(phase == 0, 1, -1)), dataset)


def crafted_spec(kind: str = "donchian_breakout", params: dict[str, int] | None = None,
                 commission: str = "0.62", timeframe: str = "1m") -> RunSpec:
    config = ExecutionConfig(Decimal("0.25"), Decimal(5), Decimal(commission), size=1,
                             slippage_ticks=0, cash=Decimal(50_000))
    return RunSpec(kind=kind, params=params or {"period": 5}, symbol="MES", timeframe=timeframe,
                   config=config, flatten_minutes=0, dataset=CRAFTED)
