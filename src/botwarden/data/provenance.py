"""Provenance of the bars a result was computed from: which dataset and provider, which time
range, and a hash of the exact bars (stored as `research_runs.data_hash`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from botwarden.data.bar_store import STORED_TIMEFRAME, BarStore
from botwarden.data.calendar import Timestamp, to_datetime
from botwarden.domain.bars import Bars

_HASH_LAYOUT = "botwarden-bars-v1"


def data_hash(bars: Bars) -> str:
    """SHA-256 (64 hex chars) of the symbol, timeframe and every value of every bar, in a
    fixed byte layout (little-endian int64 times, float64 prices), so the same bars give the
    same hash however they were stored, chunked or loaded."""
    digest = hashlib.sha256()
    digest.update(f"{_HASH_LAYOUT}|{bars.symbol}|{bars.timeframe}|{len(bars)}|".encode())
    digest.update(np.ascontiguousarray(bars.ts, dtype="<i8").tobytes())
    for column in (bars.open, bars.high, bars.low, bars.close, bars.volume):
        # +0.0 folds a negative zero into zero: equal numbers must hash equally.
        digest.update(np.ascontiguousarray(column + 0.0, dtype="<f8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Provenance:
    provider: str
    dataset: str
    synthetic: bool
    symbol: str
    timeframe: str
    range_start: datetime | None  # first bar's open time
    range_end: datetime | None  # last bar's open time
    bars: int
    data_hash: str


def load_with_provenance(
    store: BarStore,
    symbol: str,
    start: Timestamp | None = None,
    end: Timestamp | None = None,
    timeframe: str = STORED_TIMEFRAME,
    *,
    dataset: str | None = None,
) -> tuple[Bars, Provenance]:
    """`BarStore.load` plus the record research attaches to its results."""
    name = store.resolve_dataset(symbol, dataset)
    bars = store.load(symbol, start, end, timeframe, dataset=name)
    info = store.dataset_info(name)
    empty = len(bars) == 0
    return bars, Provenance(
        provider=info.provider,
        dataset=name,
        synthetic=info.synthetic,
        symbol=bars.symbol,
        timeframe=timeframe,
        range_start=None if empty else to_datetime(int(bars.ts[0])),
        range_end=None if empty else to_datetime(int(bars.ts[-1])),
        bars=len(bars),
        data_hash=data_hash(bars),
    )
