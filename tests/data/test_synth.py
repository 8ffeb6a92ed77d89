"""Synthetic bars: deterministic, on the tick grid, in session only, shaped like the market."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.calendar import label_sessions
from botwarden.data.gaps import find_gaps
from botwarden.data.synth import ensure_demo_data, synthesize
from botwarden.domain.bars import Bars
from botwarden.domain.errors import DomainError

from .builders import make_bars, minutes

# 2024-11-20 to 2025-01-05 spans Thanksgiving, Christmas, New Year and their early closes.
HOLIDAY_END = date(2025, 1, 5)
HOLIDAY_DAYS = 47


@pytest.fixture(scope="module")
def mes() -> Bars:
    return synthesize("MES", HOLIDAY_DAYS, seed=11, end=HOLIDAY_END)


def test_same_seed_same_bars_other_seed_other_bars(mes: Bars) -> None:
    again = synthesize("MES", HOLIDAY_DAYS, seed=11, end=HOLIDAY_END)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(mes, name), getattr(again, name))
    other = synthesize("MES", HOLIDAY_DAYS, seed=12, end=HOLIDAY_END)
    np.testing.assert_array_equal(other.ts, mes.ts)
    assert not np.array_equal(other.close, mes.close)


def test_prices_sit_on_the_tick_grid_and_bars_are_consistent(mes: Bars) -> None:
    for prices in (mes.open, mes.high, mes.low, mes.close):
        np.testing.assert_array_equal(prices * 4, np.round(prices * 4))
    assert np.all(mes.high >= np.maximum(mes.open, mes.close))
    assert np.all(mes.low <= np.minimum(mes.open, mes.close))
    assert np.all(mes.low > 0) and np.all(mes.volume >= 1)
    mcl = synthesize("MCL", 5, seed=1, end=HOLIDAY_END)
    np.testing.assert_allclose(mcl.close * 100, np.round(mcl.close * 100), atol=1e-7)


def test_bars_cover_every_session_minute_and_nothing_else(mes: Bars) -> None:
    assert np.all(np.diff(mes.ts) > 0)
    assert label_sessions(mes.ts).in_session.all()  # no halt, weekend or holiday bars
    assert len(find_gaps(mes.ts)) == 0  # and no session minute skipped
    christmas = (mes.ts >= _ns(2024, 12, 24, 18)) & (mes.ts < _ns(2024, 12, 25, 23))
    assert not christmas.any()  # from the 12:00 Chicago early close to the evening reopen
    assert mes.ts[-1] == _ns(2025, 1, 3, 21, 59)  # last bar of Friday 3 January


def test_overnight_is_quieter_than_the_us_cash_session(mes: Bars) -> None:
    local = pd.DatetimeIndex(mes.ts, tz="UTC").tz_convert("America/New_York")
    minute = np.asarray(local.hour * 60 + local.minute)
    overnight = (minute >= 19 * 60) | (minute < 3 * 60)
    cash = (minute >= 9 * 60 + 30) & (minute < 16 * 60)
    bar_range = mes.high - mes.low
    assert bar_range[overnight].mean() < 0.6 * bar_range[cash].mean()
    assert mes.volume[overnight].mean() < 0.2 * mes.volume[cash].mean()
    # U-shaped cash volume: the first and last half hours outtrade midday.
    midday = (minute >= 12 * 60) & (minute < 13 * 60)
    opening = (minute >= 9 * 60 + 30) & (minute < 10 * 60)
    closing = (minute >= 15 * 60 + 30) & (minute < 16 * 60)
    assert mes.volume[opening].mean() > 1.5 * mes.volume[midday].mean()
    assert mes.volume[closing].mean() > 1.5 * mes.volume[midday].mean()


def test_volatility_clusters_beyond_the_time_of_day_pattern(mes: Bars) -> None:
    moves = np.abs(np.diff(np.log(mes.close)))
    local = pd.DatetimeIndex(mes.ts[1:], tz="UTC").tz_convert("America/New_York")
    minute_of_day = np.asarray(local.hour * 60 + local.minute)
    # Divide out the intraday profile, which alone would make neighbouring hours alike.
    usual = pd.Series(moves).groupby(minute_of_day).transform("mean").to_numpy()
    surprise = moves / usual
    hourly = surprise[: surprise.size // 60 * 60].reshape(-1, 60).mean(axis=1)
    centred = hourly - hourly.mean()
    lag_one = (centred[:-1] * centred[1:]).mean() / centred.var()
    assert lag_one > 0.5  # busy hours follow busy hours (about 0.05 without clustering)


def test_price_levels_look_like_each_market() -> None:
    mes = synthesize("MES", 30, seed=3, end=HOLIDAY_END)
    mnq = synthesize("MNQ", 30, seed=3, end=HOLIDAY_END)
    assert 4500 < mes.close.mean() < 6500
    assert 16500 < mnq.close.mean() < 22500


def test_invalid_requests_are_refused() -> None:
    with pytest.raises(DomainError) as days:
        synthesize("MES", 0, end=HOLIDAY_END)
    assert days.value.code == "INVALID_DAYS"
    with pytest.raises(DomainError) as symbol:
        synthesize("XYZ", 5, end=HOLIDAY_END)
    assert symbol.value.code == "UNKNOWN_SYMBOL"


def test_default_end_is_the_last_session_closed_by_now() -> None:
    def clock() -> datetime:
        return datetime(2024, 3, 6, 15, 0, tzinfo=UTC)  # Wednesday, mid-session
    bars = synthesize("MES", 3, seed=1, clock=clock)
    assert bars.ts[-1] == _ns(2024, 3, 5, 21, 59)  # Tuesday's session is the last closed one


def test_ensure_demo_data_creates_once_and_respects_real_data(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = BarStore.from_settings(settings)
    store.write(make_bars(minutes("2024-03-05 14:30", 5), symbol="MNQ"), dataset="CSV",
                provider="csv", synthetic=False)

    def clock() -> datetime:
        return datetime(2025, 1, 10, 12, tzinfo=UTC)

    first = ensure_demo_data(settings, ("MES", "MNQ"), days=5, clock=clock)
    assert first["MES"] > 0 and first["MNQ"] == 0  # MNQ already had (real) bars
    assert ensure_demo_data(settings, ("MES", "MNQ"), days=5, clock=clock) == {"MES": 0,
                                                                                "MNQ": 0}
    assert store.resolve_dataset("MES") == SYNTHETIC_DATASET
    assert store.dataset_info(SYNTHETIC_DATASET).synthetic
    assert len(store.load("MES")) == first["MES"]


def _ns(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp()) * 1_000_000_000
