"""Session-aware resampling of bars to a coarser timeframe.

Buckets are anchored at the session open, not at the clock, and never cross a session
boundary: a 5-minute bar can never span the daily halt, a holiday or an early close, and the
last bucket of a session simply ends at the close. On CME the session boundaries fall on whole
hours, so the buckets coincide with the clock grid there; anchoring on the session keeps that
true for any calendar. Bars outside every session (data a vendor published while the calendar
says closed) are kept and bucketed on the clock grid, separately from session bars.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from botwarden.data.calendar import DEFAULT_CALENDAR, NO_SESSION, get_calendar
from botwarden.domain.bars import I64, TIMEFRAME_SECONDS, Bars
from botwarden.domain.errors import DomainError


def timeframe_ns(timeframe: str) -> int:
    try:
        return TIMEFRAME_SECONDS[timeframe] * 1_000_000_000
    except KeyError:
        raise DomainError(
            "UNKNOWN_TIMEFRAME",
            f"unknown timeframe {timeframe!r}",
            f"Use one of {', '.join(TIMEFRAME_SECONDS)}.",
            status=422,
        ) from None


def bucket_starts(ts: I64, step_ns: int, calendar: str = DEFAULT_CALENDAR) -> tuple[I64, I64]:
    """For each bar time: the open time of its bucket and its session index (NO_SESSION when
    closed). Both are non-decreasing along sorted `ts`."""
    cal = get_calendar(calendar)
    session = cal.locate(ts)
    inside = session != NO_SESSION
    anchor = np.where(inside, cal.opens[np.clip(session, 0, None)], 0)
    starts = anchor + ((ts - anchor) // step_ns) * step_ns
    return starts.astype(np.int64), session


def resample(bars: Bars, timeframe: str, calendar: str = DEFAULT_CALENDAR) -> Bars:
    """Aggregate `bars` into `timeframe` bars: first open, max high, min low, last close, summed
    volume. A bucket's timestamp is its open time, as for every bar."""
    source_ns = timeframe_ns(bars.timeframe)
    target_ns = timeframe_ns(timeframe)
    if target_ns == source_ns:
        return bars
    if target_ns < source_ns or target_ns % source_ns:
        raise DomainError(
            "INVALID_RESAMPLE",
            f"cannot resample {bars.timeframe} bars to {timeframe}",
            "Resample to a coarser timeframe that is a multiple of the source's.",
            status=422,
        )
    if len(bars) == 0:
        return replace(bars, timeframe=timeframe)
    keys, session = bucket_starts(bars.ts, target_ns, calendar)
    first = group_starts(keys, session)
    last = np.append(first[1:] - 1, len(bars) - 1)
    return Bars(
        bars.symbol,
        timeframe,
        keys[first],
        bars.open[first],
        np.maximum.reduceat(bars.high, first),
        np.minimum.reduceat(bars.low, first),
        bars.close[last],
        np.add.reduceat(bars.volume, first),
    )


def group_starts(keys: I64, session: I64) -> I64:
    """Row indices where a new bucket begins: the bucket open or the session changes."""
    change = (np.diff(keys) != 0) | (np.diff(session) != 0)
    return np.concatenate(([0], np.flatnonzero(change) + 1)).astype(np.int64)
