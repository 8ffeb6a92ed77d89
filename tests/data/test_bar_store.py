"""The bar store: round trip, idempotent upsert, ranges, streaming, datasets, provenance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore, MergeResult
from botwarden.data.provenance import data_hash, load_with_provenance
from botwarden.data.resample import resample
from botwarden.domain.errors import DomainError

from .builders import NS_MIN, assert_bars_equal, make_bars, minutes, ns, utc


def _write_real(store: BarStore, bars, dataset: str = "GLBX.MDP3") -> MergeResult:  # type: ignore[no-untyped-def]
    return store.write(bars, dataset=dataset, provider="databento", synthetic=False)


def test_round_trip_keeps_every_value_and_type(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 500))
    assert _write_real(store, bars) == MergeResult(inserted=500, files_written=1)
    loaded = store.load("MES")
    assert_bars_equal(loaded, bars)
    assert loaded.ts.dtype == np.int64 and loaded.close.dtype == np.float64


def test_writing_the_same_bars_again_changes_nothing(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 300))
    _write_real(store, bars)
    path = store.root / "GLBX.MDP3" / "MES" / "1m" / "2024.parquet"
    before = path.stat().st_mtime_ns
    assert _write_real(store, bars) == MergeResult(unchanged=300)
    assert path.stat().st_mtime_ns == before


def test_upsert_replaces_changed_bars_and_adds_new_ones(store: BarStore) -> None:
    first = make_bars(minutes("2024-03-05 14:30", 100))
    _write_real(store, first)
    later = make_bars(minutes("2024-03-05 15:00", 100), seed=1)  # 70 overlap, 30 new
    later = replace(later, volume=later.volume + 1_000)  # surely differs from `first`
    result = _write_real(store, later)
    assert (result.inserted, result.updated, result.unchanged) == (30, 70, 0)
    loaded = store.load("MES")
    assert len(loaded) == 130
    assert np.all(np.diff(loaded.ts) > 0)
    np.testing.assert_array_equal(loaded.volume[30:], later.volume)
    np.testing.assert_array_equal(loaded.volume[:30], first.volume[:30])


def test_bars_across_new_year_go_to_one_file_per_year_and_load_as_one(store: BarStore) -> None:
    bars = make_bars(minutes("2023-12-31 23:00", 120))  # 60 minutes in each year
    assert _write_real(store, bars).files_written == 2
    years = sorted(p.name for p in (store.root / "GLBX.MDP3" / "MES" / "1m").glob("*.parquet"))
    assert years == ["2023.parquet", "2024.parquet"]
    assert_bars_equal(store.load("MES"), bars)
    assert len(store.load("MES", start=utc("2024-01-01 00:00"))) == 60


def test_load_range_is_start_inclusive_end_exclusive(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 60))
    _write_real(store, bars)
    part = store.load("MES", utc("2024-03-05 14:40"), utc("2024-03-05 14:50"))
    assert len(part) == 10
    assert part.ts[0] == ns("2024-03-05 14:40") and part.ts[-1] == ns("2024-03-05 14:49")
    assert len(store.load("MES", ns("2024-03-05 14:40"), ns("2024-03-05 14:50"))) == 10
    assert len(store.load("MES", utc("2024-03-06 00:00"))) == 0


def test_coarser_timeframes_are_built_from_complete_buckets(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 120))
    _write_real(store, bars)
    whole = resample(bars, "5m")
    # A start in the middle of a bucket returns the buckets that open after it, each whole.
    part = store.load("MES", utc("2024-03-05 14:37"), utc("2024-03-05 15:30"), timeframe="5m")
    expected = whole.slice(*np.searchsorted(whole.ts, [ns("2024-03-05 14:37"),
                                                       ns("2024-03-05 15:30")]))
    assert part.ts[0] == ns("2024-03-05 14:40")
    assert_bars_equal(part, expected)


def test_streaming_yields_the_same_bars_in_bounded_chunks(store: BarStore) -> None:
    bars = make_bars(minutes("2023-12-31 20:00", 2_000))
    _write_real(store, bars)
    chunks = list(store.iter_chunks("MES", chunk_rows=300))
    assert max(len(c) for c in chunks) <= 300
    joined = np.concatenate([c.close for c in chunks])
    np.testing.assert_array_equal(joined, bars.close)
    ranged = list(store.iter_chunks("MES", utc("2024-01-01 00:10"), utc("2024-01-01 02:00"),
                                    chunk_rows=50))
    ts = np.concatenate([c.ts for c in ranged])
    assert ts[0] == ns("2024-01-01 00:10") and ts[-1] == ns("2024-01-01 01:59")
    assert ts.size == 110


def test_synthetic_bars_cannot_enter_a_real_dataset(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 10))
    _write_real(store, bars)
    with pytest.raises(DomainError) as caught:
        store.write(bars, dataset="GLBX.MDP3", provider="synthetic", synthetic=True)
    assert caught.value.code == "DATASET_MISMATCH"


def test_dataset_choice_prefers_real_data_and_refuses_to_guess(store: BarStore) -> None:
    with pytest.raises(DomainError) as none:
        store.load("MES")
    assert none.value.code == "NO_DATA"
    synthetic = make_bars(minutes("2024-03-05 14:30", 10), seed=5)
    store.write(synthetic, dataset=SYNTHETIC_DATASET, provider="synthetic", synthetic=True)
    assert store.resolve_dataset("MES") == SYNTHETIC_DATASET
    _write_real(store, make_bars(minutes("2024-03-05 14:30", 10)))
    assert store.resolve_dataset("MES") == "GLBX.MDP3"
    assert_bars_equal(store.load("MES", dataset=SYNTHETIC_DATASET), synthetic)
    _write_real(store, make_bars(minutes("2024-03-05 14:30", 10)), dataset="CSV")
    with pytest.raises(DomainError) as ambiguous:
        store.load("MES")
    assert ambiguous.value.code == "AMBIGUOUS_DATASET"


def test_series_lists_rows_and_first_and_last_bar(store: BarStore) -> None:
    _write_real(store, make_bars(minutes("2023-12-31 23:00", 120)))
    _write_real(store, make_bars(minutes("2024-03-05 14:30", 5), symbol="MNQ"))
    found = {(s.dataset.name, s.symbol): s for s in store.series()}
    mes = found[("GLBX.MDP3", "MES")]
    assert (mes.rows, mes.first_ts, mes.last_ts) == (
        120, ns("2023-12-31 23:00"), ns("2024-01-01 00:59"))
    assert mes.dataset.provider == "databento" and not mes.dataset.synthetic
    assert [s.symbol for s in store.series("MNQ")] == ["MNQ"]


def test_write_refuses_unsorted_bars_and_other_timeframes(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 5))
    shuffled = replace(bars, ts=bars.ts[::-1].copy())
    with pytest.raises(DomainError) as unsorted:
        _write_real(store, shuffled)
    assert unsorted.value.code == "BARS_NOT_SORTED"
    with pytest.raises(DomainError) as coarse:
        _write_real(store, replace(bars, timeframe="5m"))
    assert coarse.value.code == "UNSUPPORTED_TIMEFRAME"


def test_data_hash_is_stable_and_sensitive(store: BarStore) -> None:
    bars = make_bars(minutes("2024-03-05 14:30", 1_000))
    _write_real(store, bars)
    streamed = list(store.iter_chunks("MES", chunk_rows=128))
    rejoined = replace(
        bars, **{name: np.concatenate([getattr(c, name) for c in streamed])
                 for name in ("ts", "open", "high", "low", "close", "volume")})
    assert data_hash(store.load("MES")) == data_hash(bars) == data_hash(rejoined)
    assert len(data_hash(bars)) == 64
    bumped = bars.close.copy()
    bumped[500] += 0.25
    assert data_hash(replace(bars, close=bumped)) != data_hash(bars)
    assert data_hash(replace(bars, symbol="MNQ")) != data_hash(bars)


def test_load_with_provenance_names_the_source(store: BarStore) -> None:
    _write_real(store, make_bars(minutes("2024-03-05 14:30", 30)))
    bars, record = load_with_provenance(store, "MES", timeframe="5m")
    assert (record.provider, record.dataset, record.synthetic) == ("databento", "GLBX.MDP3", False)
    assert record.bars == len(bars) == 6
    assert record.range_start == utc("2024-03-05 14:30")
    assert record.range_end == utc("2024-03-05 14:55")
    assert record.data_hash == data_hash(bars)
    assert bars.ts[1] - bars.ts[0] == 5 * NS_MIN
