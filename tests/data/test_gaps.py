"""Gap detection against the session calendar."""

from __future__ import annotations

from datetime import date

import numpy as np

from botwarden.data.gaps import find_gaps

from .builders import minutes, ns, utc

SESSION_MINUTES = 23 * 60  # 18:00-17:00 New York


def _session(open_utc: str) -> np.ndarray:
    return minutes(open_utc, SESSION_MINUTES)


def test_missing_minutes_are_reported_as_exact_ranges() -> None:
    ts = _session("2024-03-05 23:00")  # trading day 2024-03-06
    drop = (ts >= ns("2024-03-06 01:00")) & (ts < ns("2024-03-06 01:07"))
    drop |= ts == ns("2024-03-06 14:31")
    gaps = find_gaps(ts[~drop])
    assert [(g.start, g.end, g.minutes, g.session) for g in gaps.ranges()] == [
        (utc("2024-03-06 01:00"), utc("2024-03-06 01:07"), 7, date(2024, 3, 6)),
        (utc("2024-03-06 14:31"), utc("2024-03-06 14:32"), 1, date(2024, 3, 6)),
    ]
    assert gaps.missing_minutes == 8
    assert len(find_gaps(ts[~drop], min_minutes=5)) == 1
    assert gaps.largest(1)[0].minutes == 7


def test_the_daily_halt_and_weekend_are_not_gaps() -> None:
    friday_to_tuesday = np.concatenate([
        _session("2024-03-06 23:00"),  # Thursday
        _session("2024-03-07 23:00"),  # Friday
        _session("2024-03-10 22:00"),  # Monday, first session after the DST change
    ])
    assert len(find_gaps(friday_to_tuesday)) == 0


def test_holidays_and_early_closes_are_not_gaps() -> None:
    christmas = np.concatenate([
        minutes("2024-12-23 23:00", 19 * 60),  # Christmas Eve: closes 12:00 Chicago
        _session("2024-12-25 23:00"),  # 26 December
    ])
    assert len(find_gaps(christmas)) == 0


def test_a_missing_session_is_one_gap_of_a_whole_session() -> None:
    ts = np.concatenate([_session("2024-03-03 23:00"), _session("2024-03-05 23:00")])
    gaps = find_gaps(ts)
    assert len(gaps) == 1
    only = gaps.gap(0)
    assert (only.session, only.minutes) == (date(2024, 3, 5), SESSION_MINUTES)
    assert only.start == utc("2024-03-04 23:00") and only.end == utc("2024-03-05 22:00")


def test_an_explicit_range_counts_minutes_before_the_first_bar() -> None:
    ts = minutes("2024-03-06 14:30", 30)
    gaps = find_gaps(ts, utc("2024-03-06 14:00"), utc("2024-03-06 15:30"))
    assert [(g.start, g.minutes) for g in gaps.ranges()] == [
        (utc("2024-03-06 14:00"), 30), (utc("2024-03-06 15:00"), 30)]
    assert find_gaps(np.empty(0, dtype=np.int64), utc("2024-03-06 14:00"),
                     utc("2024-03-06 14:10")).missing_minutes == 10
