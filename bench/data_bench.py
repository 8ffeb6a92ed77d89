"""Market-data figures: CSV import, warm load, resampling, streaming throughput and memory.

    uv run python bench/data_bench.py [--rows 1000000]

Targets: import of 1,000,000 CSV rows (validation included) < 3 s; load one year of
1-minute bars warm < 0.1 s; resample that year to 5m and 15m < 0.2 s; streaming >= 200,000
bars/s with peak memory flat in the length of the stream.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa

from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.importing import import_file
from botwarden.data.provenance import data_hash
from botwarden.data.resample import resample
from botwarden.data.synth import synthesize, write_synthetic

YEAR_END = date(2025, 6, 30)


def best_of(runs: int, action) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def timed(action):  # type: ignore[no-untyped-def]
    """(result, wall seconds, CPU seconds of this process). On a shared machine the CPU
    figure is the steadier one; polars' threads can also make it exceed the wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_csv_import(root: Path, rows: int) -> None:
    days = int(rows / 1380 * 365 / 252) + 30
    bars = synthesize("MES", days, seed=1, end=YEAR_END)
    frame = pl.DataFrame({
        "time": pl.Series(bars.ts[:rows]).cast(pl.Datetime("ns", "UTC")),
        "open": bars.open[:rows], "high": bars.high[:rows], "low": bars.low[:rows],
        "close": bars.close[:rows], "volume": bars.volume[:rows].astype("int64"),
    })
    csv = root / "bars.csv"
    frame.write_csv(csv)
    size = csv.stat().st_size / 1e6
    store = BarStore(root / "import")
    report, elapsed, cpu = timed(lambda: import_file(store, csv, "MES"))
    repeat, again, again_cpu = timed(lambda: import_file(store, csv, "MES"))
    rows = report.validation.rows_accepted
    print(f"CSV import      {rows:,} rows ({size:.0f} MB, ISO times, validated, stored): "
          f"{elapsed:.2f} s wall, {cpu:.2f} s CPU ({rows / elapsed:,.0f} rows/s; target < 3 s)")
    print(f"CSV re-import   {again:.2f} s wall, {again_cpu:.2f} s CPU: "
          f"{repeat.merge.unchanged:,} unchanged, {repeat.merge.files_written} files written")


def bench_year(root: Path) -> None:
    store = BarStore(root / "year")
    write_synthetic(store, "MES", 365, seed=2, end=YEAR_END)
    bars = store.load("MES")
    load = best_of(7, lambda: store.load("MES"))
    print(f"load one year   {len(bars):,} 1m bars warm: {load * 1000:.1f} ms (target < 100 ms)")
    five = best_of(5, lambda: resample(bars, "5m"))
    fifteen = best_of(5, lambda: resample(bars, "15m"))
    hour = best_of(5, lambda: resample(bars, "1h"))
    print(f"resample year   5m {five * 1000:.1f} ms, 15m {fifteen * 1000:.1f} ms "
          f"(together {1000 * (five + fifteen):.1f} ms, target < 200 ms), 1h {hour * 1000:.1f} ms")
    via_store = best_of(5, lambda: store.load("MES", timeframe="5m"))
    print(f"load year as 5m {via_store * 1000:.1f} ms (read + resample)")
    hashing = best_of(5, lambda: data_hash(bars))
    print(f"data hash year  {hashing * 1000:.1f} ms")

    def stream() -> int:
        return sum(len(chunk) for chunk in store.iter_chunks("MES", chunk_rows=50_000))

    streamed = stream()
    elapsed = best_of(5, stream)
    print(f"stream year     {streamed:,} bars in {elapsed * 1000:.1f} ms: "
          f"{streamed / elapsed:,.0f} bars/s (target >= 200,000)")
    # Memory in a fresh process per measurement, so one cannot inherit another's peaks.
    context = multiprocessing.get_context("spawn")
    for what in ("stream 1", "stream 3", "stream 12", "load 12"):
        with context.Pool(1) as pool:
            live, rss = pool.apply(_peak_memory, (str(root / "year"), what))
        action, months = what.split()
        print(f"memory          {action} {months:>2} month(s): peak live Arrow+numpy "
              f"{live / 1e6:.1f} MB, peak RSS growth {rss / 1e3:.1f} MB")


def _peak_memory(data_dir: str, what: str) -> tuple[int, int]:
    """Stream (or, for contrast, load) the last N months of the year. Returns the peak of
    live memory (Arrow's allocations, which back the bars' arrays, plus what tracemalloc
    sees of numpy and Python), sampled after each chunk, and the peak RSS growth in kB."""
    from datetime import UTC, datetime

    action, months = what.split()
    store = BarStore(Path(data_dir))
    start = datetime(2025, 7 - int(months), 1, tzinfo=UTC) if int(months) < 7 else None
    next(store.iter_chunks("MES", chunk_rows=10))  # warm up imports before measuring
    _reset_peak_rss()
    tracemalloc.start()
    base = pa.total_allocated_bytes()
    peak = 0

    def sample() -> None:
        nonlocal peak
        live = pa.total_allocated_bytes() - base + tracemalloc.get_traced_memory()[0]
        peak = max(peak, live)

    if action == "stream":
        for chunk in store.iter_chunks("MES", start, dataset=SYNTHETIC_DATASET,
                                       chunk_rows=50_000):
            sample()
            del chunk
    else:
        bars = store.load("MES", start)
        sample()
        del bars
    tracemalloc.stop()
    return peak, _peak_rss_growth()


_RSS_BASE: list[int] = []


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak-RSS mark (VmHWM) to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    _RSS_BASE[:] = [_status_kb("VmRSS")]


def _peak_rss_growth() -> int:
    """Peak resident memory since `_reset_peak_rss`, above the RSS at that moment, in kB."""
    return _status_kb("VmHWM") - _RSS_BASE[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, polars {pl.__version__}, pyarrow {pa.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_csv_import(root, args.rows)
        bench_year(root)


if __name__ == "__main__":
    main()
