"""CME Globex sessions: Sunday open, the daily halt, holidays with early closes, DST."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.data import calendar as cal
from botwarden.domain.errors import DomainError

from .builders import ns, utc


def test_the_calendar_is_built_once() -> None:
    assert cal.get_calendar() is cal.get_calendar("CMES")


def test_unknown_calendar_is_refused() -> None:
    with pytest.raises(DomainError) as caught:
        cal.get_calendar("XNYS")
    assert caught.value.code == "UNKNOWN_CALENDAR"


def test_sunday_evening_opens_the_monday_session() -> None:
    # 2024-03-03 is a Sunday in EST: 18:00 New York = 23:00 UTC.
    assert not cal.is_open(utc("2024-03-02 12:00"))  # Saturday
    assert not cal.is_open(utc("2024-03-03 22:59"))
    assert cal.is_open(utc("2024-03-03 23:00"))
    assert cal.session_of(utc("2024-03-03 23:00")) == date(2024, 3, 4)
    assert cal.next_open(utc("2024-03-02 12:00")) == utc("2024-03-03 23:00")
    # Friday's session ends at 17:00 New York and nothing opens until Sunday.
    assert cal.next_close(utc("2024-03-01 15:00")) == utc("2024-03-01 22:00")
    assert cal.next_open(utc("2024-03-01 22:00")) == utc("2024-03-03 23:00")


def test_daily_halt_between_17_and_18_new_york() -> None:
    assert cal.is_open(utc("2024-03-05 21:59"))
    assert cal.minutes_to_close(utc("2024-03-05 21:45")) == 15.0
    for halted in ("2024-03-05 22:00", "2024-03-05 22:30", "2024-03-05 22:59"):
        assert not cal.is_open(utc(halted))
        assert cal.session_of(utc(halted)) is None
        assert cal.minutes_to_close(utc(halted)) == 0.0
    assert cal.next_open(utc("2024-03-05 22:00")) == utc("2024-03-05 23:00")
    assert cal.next_close(utc("2024-03-05 22:00")) == utc("2024-03-06 22:00")
    assert cal.session_of(utc("2024-03-05 23:00")) == date(2024, 3, 6)
    assert cal.session_of(utc("2024-03-05 21:59")) == date(2024, 3, 5)


def test_spring_forward_moves_the_session_an_hour_earlier_in_utc() -> None:
    # Friday 2024-03-08 in EST closes 22:00 UTC; Sunday 2024-03-10 in EDT opens 22:00 UTC.
    assert cal.next_close(utc("2024-03-08 12:00")) == utc("2024-03-08 22:00")
    assert not cal.is_open(utc("2024-03-10 21:59"))
    assert cal.is_open(utc("2024-03-10 22:00"))
    assert cal.session_of(utc("2024-03-10 22:00")) == date(2024, 3, 11)
    # The halt is now 21:00-22:00 UTC.
    assert cal.next_close(utc("2024-03-11 12:00")) == utc("2024-03-11 21:00")
    assert not cal.is_open(utc("2024-03-11 21:30"))
    assert cal.is_open(utc("2024-03-11 22:00"))


def test_fall_back_moves_the_session_an_hour_later_in_utc() -> None:
    # Friday 2024-11-01 in EDT closes 21:00 UTC; Sunday 2024-11-03 in EST opens 23:00 UTC.
    assert cal.next_close(utc("2024-11-01 12:00")) == utc("2024-11-01 21:00")
    assert cal.next_open(utc("2024-11-01 21:00")) == utc("2024-11-03 23:00")
    assert not cal.is_open(utc("2024-11-03 22:30"))
    assert cal.minutes_to_close(utc("2024-11-04 21:00")) == 60.0


def test_thanksgiving_closes_early_and_black_friday_too() -> None:
    # Thanksgiving 2024-11-28: equity futures stop at 12:00 Chicago = 18:00 UTC.
    assert cal.is_open(utc("2024-11-28 17:59"))
    assert not cal.is_open(utc("2024-11-28 18:00"))
    assert cal.next_close(utc("2024-11-28 10:00")) == utc("2024-11-28 18:00")
    assert cal.next_open(utc("2024-11-28 18:00")) == utc("2024-11-28 23:00")
    assert cal.session_of(utc("2024-11-28 23:00")) == date(2024, 11, 29)
    assert cal.next_close(utc("2024-11-29 10:00")) == utc("2024-11-29 18:00")


def test_christmas_eve_closes_early_and_christmas_day_is_shut() -> None:
    assert cal.next_close(utc("2024-12-24 10:00")) == utc("2024-12-24 18:00")
    assert not cal.is_open(utc("2024-12-24 20:00"))
    assert not cal.is_open(utc("2024-12-25 15:00"))
    assert cal.next_open(utc("2024-12-24 18:00")) == utc("2024-12-25 23:00")
    assert cal.session_of(utc("2024-12-25 23:00")) == date(2024, 12, 26)


def test_new_years_day_is_shut() -> None:
    assert cal.next_close(utc("2024-12-31 12:00")) == utc("2024-12-31 22:00")
    assert not cal.is_open(utc("2025-01-01 15:00"))
    assert cal.next_open(utc("2024-12-31 22:00")) == utc("2025-01-01 23:00")
    assert cal.session_of(utc("2025-01-01 23:30")) == date(2025, 1, 2)


def test_good_friday_is_shut() -> None:
    # Thursday 2024-03-28 closes as usual (EDT), then nothing until Sunday evening.
    assert cal.next_close(utc("2024-03-28 12:00")) == utc("2024-03-28 21:00")
    assert cal.next_open(utc("2024-03-28 21:00")) == utc("2024-03-31 22:00")
    assert not cal.is_open(utc("2024-03-29 14:00"))


def test_naive_datetimes_and_times_outside_the_calendar_are_refused() -> None:
    with pytest.raises(DomainError) as naive:
        cal.is_open(datetime(2024, 3, 5, 12, 0))
    assert naive.value.code == "NAIVE_DATETIME"
    with pytest.raises(DomainError) as early:
        cal.next_open(utc("1990-01-02 12:00"))
    assert early.value.code == "CALENDAR_OUT_OF_RANGE"


def test_int_nanoseconds_are_accepted() -> None:
    assert cal.is_open(ns("2024-03-05 21:59"))
    assert not cal.is_open(ns("2024-03-05 22:00"))


def test_label_sessions_flags_each_bar() -> None:
    times = np.array(
        [ns(t) for t in ("2024-03-05 21:59", "2024-03-05 22:00", "2024-03-05 23:00",
                         "2024-12-25 12:00", "1999-01-01 00:00")],
        dtype=np.int64,
    )
    labels = cal.label_sessions(times)
    assert labels.in_session.tolist() == [True, False, True, False, False]
    days = [cal.day_to_date(d) if d != cal.NO_SESSION else None for d in labels.session]
    assert days == [date(2024, 3, 5), None, date(2024, 3, 6), None, None]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(ns("2023-01-01 00:00") // 60_000_000_000,
                            ns("2025-12-31 00:00") // 60_000_000_000), min_size=1, max_size=40))
def test_vectorised_labels_agree_with_the_scalar_functions(minutes: list[int]) -> None:
    times = np.array(sorted(m * 60_000_000_000 for m in minutes), dtype=np.int64)
    labels = cal.label_sessions(times)
    for t, inside, day in zip(times, labels.in_session, labels.session, strict=True):
        assert bool(inside) == cal.is_open(int(t))
        expected = cal.session_of(int(t))
        assert (cal.day_to_date(int(day)) if inside else None) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(ns("1999-06-01 00:00") // 60_000_000_000,
                            ns("2080-01-01 00:00") // 60_000_000_000), min_size=1, max_size=40))
def test_one_bar_session_ids_agree_with_the_vectorised_labels(minutes: list[int]) -> None:
    times = np.array(sorted(m * 60_000_000_000 for m in minutes), dtype=np.int64)
    calendar = cal.get_calendar()
    labels = calendar.label(times)  # out of the calendar's range too: labelled closed
    assert [calendar.session_id(int(t)) for t in times] == labels.session.tolist()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(["open", "close"]),
                          st.integers(-2, 2)), min_size=1, max_size=60))
def test_lookups_in_any_order_agree_with_the_arrays(picks: list[tuple[int, str, int]]) -> None:
    """The span the last lookup remembers never answers for a time outside it: times at
    and around session edges, asked in any order, get what a fresh search gives."""
    calendar = cal.get_calendar()
    first = calendar.session_index(date(2024, 1, 2))
    for offset, edge, nudge in picks:
        i = first + offset
        t = int((calendar.opens if edge == "open" else calendar.closes)[i]) + nudge
        j = int(np.searchsorted(calendar.opens, t, side="right")) - 1
        expected = j if j >= 0 and t < int(calendar.closes[j]) else cal.NO_SESSION
        assert calendar.is_open(t) == (expected != cal.NO_SESSION)
        assert calendar.session_id(t) == (cal.NO_SESSION if expected == cal.NO_SESSION
                                          else int(calendar.days[expected]))
