"""Session ids, trading days and no-hold windows as arrays, the form the kernels take.

The exchange calendar (botwarden.data.calendar) is the authority on sessions. When a
caller has no calendar ids, `sessions_from_gaps` derives them from the bars themselves: a
new session starts after a pause in trading (CME's daily 17:00-18:00 ET halt and the
weekend show as gaps of an hour or more in intraday bars, and every daily bar is its own
session), so no hand-written hours are involved.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from botwarden.domain.bars import I64

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000
DEFAULT_SESSION_GAP_NS = 30 * NS_PER_MINUTE


def sessions_from_gaps(ts: I64, min_gap_ns: int = DEFAULT_SESSION_GAP_NS) -> I64:
    """int64 session id per bar: 0 for the first session, +1 after every gap between bar
    open times larger than `min_gap_ns`."""
    ids = np.zeros(ts.shape[0], dtype=np.int64)
    if ts.shape[0] > 1:
        np.cumsum(np.diff(ts) > min_gap_ns, out=ids[1:])
    return ids


def utc_days(ts: I64) -> I64:
    """Days since the epoch (UTC) of each bar: the default grouping of the daily equity
    behind the Sharpe ratio when no calendar trading days are given."""
    days: I64 = np.floor_divide(ts, NS_PER_DAY)
    return days


def flatten_window(
    ts: I64, sessions: I64, bar_ns: int, minutes_before_close: int
) -> npt.NDArray[np.bool_]:
    """True for bars opening within `minutes_before_close` of their session's close, taken
    as the end of the session's last bar. A position is flattened at the first such bar's
    open (domain.md: auto-flatten 15 minutes before the session close)."""
    n = ts.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    last = np.flatnonzero(np.append(sessions[1:] != sessions[:-1], True))
    session_close = np.repeat(ts[last] + bar_ns, np.diff(np.append(-1, last)))
    return ts >= session_close - minutes_before_close * NS_PER_MINUTE
