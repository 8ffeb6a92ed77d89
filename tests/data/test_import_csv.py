"""CSV import: every malformed row named and counted, every good row kept, re-import a no-op."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from botwarden.data.bar_store import BarStore, MergeResult
from botwarden.data.importing import import_file
from botwarden.domain.errors import DomainError

from .builders import ns

MESSY = """timestamp,open,high,low,close,volume
2024-03-05 14:30:00,5000.00,5001.00,4999.50,5000.50,10
2024-03-05 14:31:00,5000.50,5001.25,5000.00,5001.00,12
not-a-time,5000,5001,4999,5000,1
2024-03-05 14:33:00,5000.00,4999.75,4999.50,5000.00,5
2024-03-05 14:34:00,5000.00,5001.00,5000.25,5000.00,5
2024-03-05 14:35:00,5000.00,5001.00,4999.50,5000.10,5
2024-03-05 14:36:00,-5,5001.00,4999.50,5000.00,5
2024-03-05 14:37:00,5000.00,5001.00,4999.50,5000.00,-3
2024-03-05 14:38:00,5000.00,5001.00,4999.50,5000.25,7
2024-03-05 14:38:00,5000.00,5001.00,4999.50,5000.25,7
2024-03-05 14:39:00,5000.00,5001.00,4999.50,5000.25,7
2024-03-05 14:39:00,5000.00,5001.00,4999.50,5000.75,7
2024-03-05 14:40:00,5000.00,5001.00,4999.50,5000.25,7,99
2024-03-05 14:41:00,5000.00,5001.00
2024-03-05 14:45:30,5000.00,5001.00,4999.50,5000.25,7

2024-03-05T14:50:00Z,5000.00,5002.00,4999.00,5001.00,20
1709650260000,5001.00,5001.00,5000.00,5000.25,3
"""


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_rows_are_counted_named_and_skipped(store: BarStore, tmp_path: Path) -> None:
    report = import_file(store, _write(tmp_path, MESSY), "MES")
    check = report.validation
    assert (check.rows_read, check.rows_accepted, check.rows_rejected) == (17, 5, 11)
    assert check.duplicates_dropped == 1
    assert check.rejected_by_reason == {
        "duplicate time with conflicting values": 2,
        "close off the 0.25 tick grid": 1,
        "high below open/close": 1,
        "low above open/close": 1,
        "low missing or not a number": 1,
        "more than 6 fields": 1,
        "open price not positive": 1,
        "time missing or not parseable": 1,
        "time not on a whole minute": 1,
        "volume negative": 1,
    }
    assert [(r.location, r.reason) for r in check.examples] == [
        (4, "time missing or not parseable"),
        (5, "high below open/close"),
        (6, "low above open/close"),
        (7, "close off the 0.25 tick grid"),
        (8, "open price not positive"),
    ]
    summary = check.summary()
    assert "5 of 17 rows accepted, 11 rejected" in summary
    assert "line 4 (time missing or not parseable)" in summary
    assert report.merge == MergeResult(inserted=5, files_written=1)

    kept = store.load("MES", dataset="CSV")
    expected_minutes = ["14:30", "14:31", "14:38", "14:50", "14:51"]
    assert kept.ts.tolist() == [ns(f"2024-03-05 {m}") for m in expected_minutes]
    assert kept.close.tolist() == [5000.5, 5001.0, 5000.25, 5001.0, 5000.25]
    assert kept.volume.tolist() == [10, 12, 7, 20, 3]


def test_importing_the_same_file_again_changes_nothing(store: BarStore, tmp_path: Path) -> None:
    path = _write(tmp_path, MESSY)
    import_file(store, path, "MES")
    again = import_file(store, path, "MES")
    assert again.merge == MergeResult(unchanged=5)


def test_time_formats_all_land_on_the_same_minute(store: BarStore, tmp_path: Path) -> None:
    rows = [
        "2024-03-05T09:30:00-05:00",  # offset
        "2024-03-05 14:31",  # naive: UTC
        "1709649120",  # epoch seconds
        "1709649180000",  # epoch milliseconds
        "1709649240000000",  # epoch microseconds
        "1709649300000000000",  # epoch nanoseconds
        "2024-03-05T14:36:00.000+00:00",
    ]
    text = "time,open,high,low,close,volume\n" + "".join(
        f"{t},5000,5000.25,4999.75,5000,1\n" for t in rows)
    report = import_file(store, _write(tmp_path, text), "MES")
    assert report.validation.rows_accepted == 7
    got = store.load("MES").ts
    np.testing.assert_array_equal(got, ns("2024-03-05 14:30") + np.arange(7) * 60_000_000_000)


def test_naive_times_can_be_read_in_new_york_time(store: BarStore, tmp_path: Path) -> None:
    text = "time,open,high,low,close,volume\n2024-07-01 09:30,5000,5000,5000,5000,1\n"
    import_file(store, _write(tmp_path, text), "MES", naive_tz="America/New_York")
    assert store.load("MES").ts.tolist() == [ns("2024-07-01 13:30")]


def test_bars_outside_sessions_are_kept_with_a_warning(store: BarStore, tmp_path: Path) -> None:
    text = "time,open,high,low,close,volume\n2024-03-09 12:00,5000,5000,5000,5000,1\n"
    report = import_file(store, _write(tmp_path, text), "MES")  # a Saturday
    assert report.validation.outside_session == 1
    assert "outside the exchange sessions" in report.validation.summary()
    assert len(store.load("MES")) == 1


def test_prices_are_stored_exactly_on_a_cent_grid(store: BarStore, tmp_path: Path) -> None:
    text = ("time,open,high,low,close,volume\n"
            "2024-03-05 14:30,75.37,75.40,75.30,75.39,4\n"
            "2024-03-05 14:31,75.375,75.40,75.30,75.39,4\n")
    report = import_file(store, _write(tmp_path, text), "MCL")
    assert report.validation.rejected_by_reason == {"open off the 0.01 tick grid": 1}
    bars = store.load("MCL")
    assert bars.open.tolist() == [75.37] and bars.close.tolist() == [75.39]


def test_missing_columns_are_refused_before_reading(store: BarStore, tmp_path: Path) -> None:
    path = _write(tmp_path, "when,open,high,low,close\n2024-03-05 14:30,1,1,1,1\n")
    with pytest.raises(DomainError) as caught:
        import_file(store, path, "MES")
    assert caught.value.code == "CSV_MISSING_COLUMNS"
    assert "volume" in caught.value.message and "time" in caught.value.message


def test_unknown_symbols_and_files_are_refused(store: BarStore, tmp_path: Path) -> None:
    with pytest.raises(DomainError) as symbol:
        import_file(store, _write(tmp_path, MESSY), "ZZZ")
    assert symbol.value.code == "UNKNOWN_SYMBOL"
    with pytest.raises(DomainError) as missing:
        import_file(store, tmp_path / "nope.csv", "MES")
    assert missing.value.code == "FILE_NOT_FOUND"
