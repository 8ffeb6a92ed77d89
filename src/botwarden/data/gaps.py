"""Gap detection: minutes inside open sessions that have no bar, reported as ranges.

Vendors publish a 1-minute bar only when something traded, so thin overnight minutes of micro
contracts show up as short gaps in real data; long gaps mean missing data. Callers filter
with `min_minutes` to see the ones that matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from botwarden.data.calendar import (
    DEFAULT_CALENDAR,
    NS_PER_MINUTE,
    Timestamp,
    day_to_date,
    get_calendar,
    to_datetime,
    to_ns,
)
from botwarden.domain.bars import I64


@dataclass(frozen=True, slots=True)
class Gap:
    start: datetime  # open time of the first missing minute
    end: datetime  # end of the last missing minute (exclusive)
    session: date
    minutes: int


@dataclass(frozen=True, slots=True, eq=False)
class Gaps:
    """Missing ranges as arrays: range `k` is `[starts[k], ends[k])` in ns, within session
    `sessions[k]` (days since the epoch)."""

    starts: I64
    ends: I64
    sessions: I64

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    @property
    def minutes(self) -> I64:
        return (self.ends - self.starts) // NS_PER_MINUTE

    @property
    def missing_minutes(self) -> int:
        return int(self.minutes.sum())

    def gap(self, k: int) -> Gap:
        return Gap(
            to_datetime(int(self.starts[k])),
            to_datetime(int(self.ends[k])),
            day_to_date(int(self.sessions[k])),
            int(self.minutes[k]),
        )

    def ranges(self) -> list[Gap]:
        return [self.gap(k) for k in range(len(self))]

    def largest(self, count: int) -> list[Gap]:
        order = np.argsort(-self.minutes, kind="stable")[:count]
        return [self.gap(int(k)) for k in order]


def find_gaps(
    ts: I64,
    start: Timestamp | None = None,
    end: Timestamp | None = None,
    *,
    calendar: str = DEFAULT_CALENDAR,
    min_minutes: int = 1,
) -> Gaps:
    """Missing 1-minute bars in `[start, end)` (default: first bar to last bar) against the
    session calendar; only gaps of at least `min_minutes` are reported."""
    ts = np.asarray(ts, dtype=np.int64)
    if start is None and end is None and ts.size == 0:
        return _empty()
    lo = to_ns(start) if start is not None else int(ts[0])
    hi = to_ns(end) if end is not None else int(ts[-1]) + NS_PER_MINUTE
    expected, session = expected_minutes(lo, hi, calendar)
    if expected.size == 0:
        return _empty()
    pos = np.minimum(np.searchsorted(ts, expected), max(ts.size - 1, 0))
    present = (ts[pos] == expected) if ts.size else np.zeros(expected.size, dtype=bool)
    missing = expected[~present]
    missing_session = session[~present]
    if missing.size == 0:
        return _empty()
    breaks = (np.diff(missing) != NS_PER_MINUTE) | (np.diff(missing_session) != 0)
    first = np.concatenate(([0], np.flatnonzero(breaks) + 1))
    last = np.append(first[1:] - 1, missing.size - 1)
    gaps = Gaps(missing[first], missing[last] + NS_PER_MINUTE, missing_session[first])
    keep = gaps.minutes >= min_minutes
    return Gaps(gaps.starts[keep], gaps.ends[keep], gaps.sessions[keep])


def expected_minutes(lo: int, hi: int, calendar: str = DEFAULT_CALENDAR) -> tuple[I64, I64]:
    """Every whole-minute bar open time inside a session within `[lo, hi)`, with the session
    id (days since the epoch) of each."""
    cal = get_calendar(calendar)
    window = cal.sessions_between(lo, hi)
    first = np.maximum(cal.opens[window], _ceil_minute(lo))
    stop = np.minimum(cal.closes[window], hi)
    counts = np.maximum((stop - first + NS_PER_MINUTE - 1) // NS_PER_MINUTE, 0)
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # Minute k of session s sits at first[s] + k minutes: build all of them in one pass.
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    minutes = np.repeat(first, counts) + offsets * NS_PER_MINUTE
    return minutes, np.repeat(cal.days[window], counts)


def _ceil_minute(ns: int) -> int:
    return -(-ns // NS_PER_MINUTE) * NS_PER_MINUTE


def _empty() -> Gaps:
    empty = np.empty(0, np.int64)
    return Gaps(empty, empty, empty)
