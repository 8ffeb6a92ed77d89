"""Session ids, trading days and flatten windows derived as arrays."""

from __future__ import annotations

import numpy as np

from botwarden.research.sessions import (
    NS_PER_DAY,
    NS_PER_MINUTE,
    flatten_window,
    sessions_from_gaps,
    utc_days,
)


def minutes(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64) * NS_PER_MINUTE


def test_a_pause_longer_than_the_gap_starts_a_session() -> None:
    ts = minutes(0, 1, 2, 5, 65, 66, 200)  # 3 missing minutes stay in one session
    assert sessions_from_gaps(ts).tolist() == [0, 0, 0, 0, 1, 1, 2]
    assert sessions_from_gaps(ts[:0]).tolist() == []


def test_flatten_window_marks_the_last_minutes_of_each_session() -> None:
    ts = minutes(0, 1, 2, 3, 4, 100, 101, 102)
    sessions = sessions_from_gaps(ts)
    flags = flatten_window(ts, sessions, NS_PER_MINUTE, minutes_before_close=2)
    # session 0 closes at minute 5: bars opening at 3 and 4; session 1 closes at 103
    assert flags.tolist() == [False, False, False, True, True, False, True, True]


def test_utc_days() -> None:
    ts = np.array([0, NS_PER_DAY - 1, NS_PER_DAY, 3 * NS_PER_DAY + 5], dtype=np.int64)
    assert utc_days(ts).tolist() == [0, 0, 1, 3]
