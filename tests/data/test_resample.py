"""Session-aware resampling, checked against a naive reference on random data."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.data import calendar as cal
from botwarden.data.resample import resample
from botwarden.domain.bars import TIMEFRAME_SECONDS, Bars
from botwarden.domain.errors import DomainError

from .builders import NS_MIN, make_bars, minutes, ns

# Thursday 2024-03-07 to Tuesday 2024-03-12: a Friday close, a weekend, the spring DST
# change and several daily halts.
WINDOW_START = ns("2024-03-07 18:00")
WINDOW_MINUTES = 5 * 24 * 60


def naive_resample(bars: Bars, timeframe: str) -> Bars:
    """Reference: group bar by bar on (trading day, clock-aligned bucket). CME sessions open
    on whole hours, so the clock grid and the session grid coincide there."""
    step = TIMEFRAME_SECONDS[timeframe] * 1_000_000_000
    groups: dict[tuple[object, int], list[int]] = defaultdict(list)
    for i, t in enumerate(bars.ts.tolist()):
        groups[(cal.session_of(t), t - t % step)].append(i)
    keys = sorted(groups, key=lambda k: k[1])
    rows = [groups[k] for k in keys]
    return Bars(
        bars.symbol,
        timeframe,
        np.array([k[1] for k in keys], dtype=np.int64),
        np.array([bars.open[r[0]] for r in rows]),
        np.array([max(bars.high[r]) for r in rows]),
        np.array([min(bars.low[r]) for r in rows]),
        np.array([bars.close[r[-1]] for r in rows]),
        np.array([sum(bars.volume[r]) for r in rows]),
    )


@settings(max_examples=40, deadline=None)
@given(
    offsets=st.sets(st.integers(0, WINDOW_MINUTES - 1), min_size=1, max_size=400),
    seed=st.integers(0, 2**16),
    timeframe=st.sampled_from(["5m", "15m", "1h"]),
)
def test_resample_matches_the_naive_reference(offsets: set[int], seed: int,
                                              timeframe: str) -> None:
    # Includes bars at closed times (weekend, halt): vendors do publish such bars at times.
    ts = WINDOW_START + np.array(sorted(offsets), dtype=np.int64) * NS_MIN
    bars = make_bars(ts, seed=seed)
    got, want = resample(bars, timeframe), naive_resample(bars, timeframe)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.timeframe == timeframe


def test_a_5m_bar_never_spans_the_daily_halt() -> None:
    before_halt = minutes("2024-03-05 21:57", 3)  # 21:57-21:59, the session's last minutes
    after_halt = minutes("2024-03-05 23:00", 2)  # the next session's first minutes
    bars = make_bars(np.concatenate((before_halt, after_halt)))
    five = resample(bars, "5m")
    assert five.ts.tolist() == [ns("2024-03-05 21:55"), ns("2024-03-05 23:00")]
    assert five.volume.tolist() == [bars.volume[:3].sum(), bars.volume[3:].sum()]
    assert five.close[0] == bars.close[2] and five.open[1] == bars.open[3]


def test_hour_bars_follow_the_session_open_through_dst() -> None:
    edt = resample(make_bars(minutes("2024-03-10 22:00", 120)), "1h")  # opens 18:00 EDT
    assert edt.ts.tolist() == [ns("2024-03-10 22:00"), ns("2024-03-10 23:00")]
    est = resample(make_bars(minutes("2024-03-03 23:00", 120)), "1h")  # opens 18:00 EST
    assert est.ts.tolist() == [ns("2024-03-03 23:00"), ns("2024-03-04 00:00")]


def test_a_daily_bar_is_one_session() -> None:
    two_sessions = np.concatenate((minutes("2024-03-04 23:00", 1380),
                                   minutes("2024-03-05 23:00", 1380)))
    bars = make_bars(two_sessions)
    daily = resample(bars, "1d")
    assert daily.ts.tolist() == [ns("2024-03-04 23:00"), ns("2024-03-05 23:00")]
    assert daily.high[0] == bars.high[:1380].max() and daily.low[1] == bars.low[1380:].min()


def test_resampling_refuses_finer_or_unknown_timeframes() -> None:
    five = resample(make_bars(minutes("2024-03-05 14:30", 10)), "5m")
    with pytest.raises(DomainError) as finer:
        resample(five, "1m")
    assert finer.value.code == "INVALID_RESAMPLE"
    with pytest.raises(DomainError) as unknown:
        resample(five, "7m")
    assert unknown.value.code == "UNKNOWN_TIMEFRAME"


def test_empty_bars_resample_to_empty_bars() -> None:
    empty = make_bars(np.empty(0, dtype=np.int64))
    assert len(resample(empty, "15m")) == 0
