"""Live resampling of a 1-minute bar stream into a coarser timeframe.

The buckets are exactly those of `data.resample.resample` (anchored at the session open,
never crossing a session boundary, out-of-session bars bucketed apart), so a runner on a
5-minute stream sees the bars a 5-minute backtest sees. A bucket is emitted as soon as its
last minute arrives, or, when minutes are missing, when the first bar of a later bucket does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from botwarden.data.calendar import NO_SESSION, get_calendar
from botwarden.data.providers.base import Bar
from botwarden.data.resample import bucket_starts, timeframe_ns
from botwarden.domain.instruments import get_instrument


class BarAggregator:
    def __init__(self, symbol: str, timeframe: str, source_timeframe: str = "1m") -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.calendar_name = get_instrument(symbol).calendar
        self._calendar = get_calendar(self.calendar_name)
        self._step = timeframe_ns(timeframe)
        self._source_step = timeframe_ns(source_timeframe)
        self._key = 0
        self._session = NO_SESSION
        self._end = 0  # exclusive end of the open bucket
        self._open: list[float] | None = None  # [open, high, low, close, volume]

    def push(self, bar: Bar) -> list[Bar]:
        """Add one source bar; return the buckets it completed (zero, one or two)."""
        done: list[Bar] = []
        if self._open is None or not (self._key <= bar.ts < self._end) or (
            self._session == NO_SESSION
        ):
            key, session = self._locate(bar.ts)
            if self._open is not None and (key, session) != (self._key, self._session):
                done.append(self._emit())
            if self._open is None:
                self._start(key, session, bar)
            else:
                self._extend(bar)
        else:
            self._extend(bar)
        if self._open is not None and bar.ts + self._source_step >= self._end:
            done.append(self._emit())
        return done

    def flush(self) -> Bar | None:
        """The open bucket, incomplete (at the end of a finite stream)."""
        return self._emit() if self._open is not None else None

    def _locate(self, ts: int) -> tuple[int, int]:
        keys, sessions = bucket_starts(np.array([ts], dtype=np.int64), self._step,
                                       self.calendar_name)
        return int(keys[0]), int(sessions[0])

    def _start(self, key: int, session: int, bar: Bar) -> None:
        self._key, self._session = key, session
        end = key + self._step
        if session != NO_SESSION:
            end = min(end, int(self._calendar.closes[session]))
        self._end = end
        self._open = [bar.open, bar.high, bar.low, bar.close, bar.volume]

    def _extend(self, bar: Bar) -> None:
        assert self._open is not None
        agg = self._open
        agg[1] = max(agg[1], bar.high)
        agg[2] = min(agg[2], bar.low)
        agg[3] = bar.close
        agg[4] += bar.volume

    def _emit(self) -> Bar:
        assert self._open is not None
        o, h, lo, c, v = self._open
        self._open = None
        return Bar(self.symbol, self.timeframe, self._key, o, h, lo, c, v)


async def resample_stream(source: AsyncIterator[Bar], symbol: str, timeframe: str, *,
                          flush_at_end: bool = False) -> AsyncIterator[Bar]:
    """`source` (1-minute bars) as `timeframe` bars. When the source ends, its last bucket is
    emitted only with `flush_at_end` (a replay, whose end is the data's end, as in a
    backtest); a live feed that stops never knew that bucket complete."""
    aggregator = BarAggregator(symbol, timeframe)
    async for bar in source:
        for done in aggregator.push(bar):
            yield done
    if flush_at_end:
        last = aggregator.flush()
        if last is not None:
            yield last
