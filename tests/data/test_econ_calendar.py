"""Economic calendar: the built-in table in UTC across DST, files, idempotent loading and the
news-blackout rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.data.econ_calendar import (
    CalendarFileError,
    EconEvent,
    Impact,
    blackout,
    parse_events,
)
from botwarden.data.econ_calendar_store import (
    import_file,
    query_events,
    sync_builtin,
    upsert_events,
)
from botwarden.data.econ_calendar_table import builtin_events


def _at(name_part: str, day: str) -> datetime:
    return next(e.at for e in builtin_events()
                if name_part in e.name and e.at.date().isoformat() == day)


def test_fomc_decisions_at_14_et_across_dst() -> None:
    assert _at("FOMC", "2025-01-29") == datetime(2025, 1, 29, 19, 0, tzinfo=UTC)  # EST
    assert _at("FOMC", "2025-03-19") == datetime(2025, 3, 19, 18, 0, tzinfo=UTC)  # EDT
    assert _at("FOMC", "2025-12-10") == datetime(2025, 12, 10, 19, 0, tzinfo=UTC)
    assert _at("FOMC", "2026-06-17") == datetime(2026, 6, 17, 18, 0, tzinfo=UTC)


def test_cpi_and_payrolls_at_0830_et_across_dst() -> None:
    assert _at("CPI for January 2025", "2025-02-12") == datetime(2025, 2, 12, 13, 30,
                                                                 tzinfo=UTC)
    # DST began 2025-03-09: the March release is an hour earlier in UTC.
    assert _at("CPI for February 2025", "2025-03-12") == datetime(2025, 3, 12, 12, 30,
                                                                  tzinfo=UTC)
    assert _at("Employment Situation", "2025-07-03") == datetime(2025, 7, 3, 12, 30,
                                                                 tzinfo=UTC)
    # DST ended 2025-11-02: the shutdown-delayed September report came out in EST.
    assert _at("Employment Situation", "2025-11-20") == datetime(2025, 11, 20, 13, 30,
                                                                 tzinfo=UTC)


def test_table_shape() -> None:
    events = builtin_events()
    fomc = [e for e in events if e.name == "FOMC rate decision"]
    assert len(fomc) == 16 and all(e.impact is Impact.HIGH for e in events)
    assert not any("October 2025" in e.name and e.name.startswith("CPI") for e in events)
    assert len({(e.at, e.name) for e in events}) == len(events)
    assert all(e.at.weekday() < 5 for e in events)


def test_blackout_edges() -> None:
    cpi = EconEvent(datetime(2025, 3, 12, 12, 30, tzinfo=UTC), "US", "CPI", Impact.HIGH)
    low = EconEvent(datetime(2025, 3, 12, 12, 33, tzinfo=UTC), "US", "Low one", Impact.LOW)
    events = [cpi, low]
    assert blackout(events, cpi.at) == cpi
    assert blackout(events, cpi.at - timedelta(minutes=10)) == cpi  # the edge is inside
    assert blackout(events, cpi.at + timedelta(minutes=10)) == cpi
    assert blackout(events, cpi.at - timedelta(minutes=10, seconds=1)) is None
    assert blackout(events, cpi.at + timedelta(minutes=10, microseconds=1)) is None
    assert blackout([low], low.at) is None  # only high impact counts by default
    assert blackout([low], low.at, impacts=frozenset({Impact.LOW})) == low
    assert blackout([], cpi.at) is None
    assert blackout(events, cpi.at, minutes=0) == cpi


def test_blackout_prefers_the_nearest_then_the_earlier() -> None:
    base = datetime(2025, 6, 6, 12, 30, tzinfo=UTC)
    before = EconEvent(base - timedelta(minutes=4), "US", "A", Impact.HIGH)
    after = EconEvent(base + timedelta(minutes=4), "US", "B", Impact.HIGH)
    near = EconEvent(base + timedelta(minutes=2), "US", "C", Impact.HIGH)
    assert blackout([after, before], base) == before
    assert blackout([before, after, near], base) == near


@given(offset=st.integers(-30 * 60, 30 * 60), minutes=st.integers(0, 20))
def test_blackout_is_exactly_the_window(offset: int, minutes: int) -> None:
    event = EconEvent(datetime(2025, 1, 10, 13, 30, tzinfo=UTC), "US", "NFP", Impact.HIGH)
    hit = blackout([event], event.at + timedelta(seconds=offset), minutes)
    assert (hit is not None) == (abs(offset) <= minutes * 60)


def test_parse_csv_in_new_york_time_and_json_in_utc() -> None:
    text = "date,time,name,impact\n2025-07-30,14:00,FOMC,HIGH\n2025-12-01,10:00,ISM,medium\n"
    fomc, ism = parse_events(text, "csv")
    assert fomc.at == datetime(2025, 7, 30, 18, 0, tzinfo=UTC)
    assert ism.at == datetime(2025, 12, 1, 15, 0, tzinfo=UTC) and ism.impact is Impact.MEDIUM
    (ecb,) = parse_events('[{"at": "2025-06-05T12:15:00Z", "name": "ECB", "country": "eu"}]',
                          "json")
    assert ecb.at == datetime(2025, 6, 5, 12, 15, tzinfo=UTC) and ecb.country == "EU"


def test_parse_names_every_bad_row() -> None:
    text = "date,time,name,impact\n2025-07-30,14:00,,HIGH\n2025-13-01,10:00,X,HIGH\n" \
           "2025-01-02,08:30,Y,EXTREME\n"
    with pytest.raises(CalendarFileError) as caught:
        parse_events(text, "csv")
    message = str(caught.value)
    assert "3 invalid" in message and "line 2" in message and "line 4" in message


def test_builtin_sync_and_imports_are_idempotent(engine, tmp_path) -> None:
    first = sync_builtin(engine)
    assert first.inserted == len(builtin_events()) and first.removed == 0
    assert sync_builtin(engine).inserted == 0
    path = tmp_path / "mine.csv"
    path.write_text("at,name,impact\n2025-04-02T20:00:00Z,Tariff announcement,HIGH\n")
    assert import_file(engine, path).inserted == 1
    assert import_file(engine, path).inserted == 0
    again = upsert_events(engine, [EconEvent(datetime(2025, 4, 2, 20, tzinfo=UTC), "US",
                                             "Tariff announcement", Impact.MEDIUM, "import")])
    assert again.updated == 1
    april = query_events(engine, datetime(2025, 4, 1, tzinfo=UTC),
                         datetime(2025, 5, 1, tzinfo=UTC))
    assert [e.name for e in april] == [
        "Tariff announcement", "Employment Situation (nonfarm payrolls) for March 2025",
        "CPI for March 2025"]
    high = query_events(engine, datetime(2025, 4, 1, tzinfo=UTC),
                        datetime(2025, 5, 1, tzinfo=UTC), [Impact.HIGH])
    assert "Tariff announcement" not in [e.name for e in high] and len(high) == 2
