"""Bars from a CSV file with columns time, open, high, low, close, volume (for the
`backtest --data FILE` command; the bar store is the home of imported market data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from botwarden.domain.bars import I64, TIMEFRAME_SECONDS, Bars
from botwarden.domain.errors import DomainError

COLUMNS = ("time", "open", "high", "low", "close", "volume")


def _refuse(path: Path, message: str) -> DomainError:
    return DomainError("INVALID_BAR_FILE", f"{path}: {message}",
                       f"Give a CSV with the columns {', '.join(COLUMNS)}; time in ISO 8601 "
                       "(UTC when it has no offset), rows in increasing time.", status=422)


def read_csv_bars(path: Path, symbol: str) -> Bars:
    try:
        frame = pl.read_csv(path, try_parse_dates=True)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise _refuse(path, str(exc)) from exc
    frame = frame.rename({name: name.strip().lower() for name in frame.columns})
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise _refuse(path, f"missing columns {missing}")
    time = frame["time"]
    if time.dtype == pl.Date:
        time = time.cast(pl.Datetime("ns"))
    if not isinstance(time.dtype, pl.Datetime):
        raise _refuse(path, f"the time column does not parse as dates ({time.dtype})")
    time = (time.dt.replace_time_zone("UTC") if time.dtype.time_zone is None
            else time.dt.convert_time_zone("UTC"))
    ts = time.dt.epoch("ns").to_numpy().astype(np.int64)
    if ts.shape[0] > 1 and not bool(np.all(np.diff(ts) > 0)):
        raise _refuse(path, "times are not strictly increasing")
    prices = [frame[name].cast(pl.Float64).to_numpy() for name in COLUMNS[1:]]
    if any(bool(np.isnan(column).any()) for column in prices):
        raise _refuse(path, "empty or non-numeric prices or volumes")
    return Bars(symbol, _timeframe(ts), ts, *prices)


def _timeframe(ts: I64) -> str:
    if ts.shape[0] < 2:
        return "1m"
    seconds = int(np.median(np.diff(ts))) // 1_000_000_000
    names = {value: name for name, value in TIMEFRAME_SECONDS.items()}
    return names.get(seconds, f"{seconds}s")
