"""The research jobs' sweep path, end to end from the bar store: a 1,000-combination SMA
cross sweep on about 1,000,000 1-minute bars (seeded synthetic MES sessions), run in-process,
on the local process pool and on a local Dask cluster, with each one's peak memory.

    uv run python bench/research_sweep_bench.py [--days 1050] [--combos 1000] [--no-dask]

This is the code a SWEEP job runs (research.sweep.run_grid through research.executors):
tasks carry a reference to the bars, each worker loads them once from the store and checks
their hash, and only per-combination summaries come back. bench/research_bench.py measures
the engine itself against vectorbt and backtesting.py. A bench prints figures; nothing here
is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import psutil

from botwarden.data.bar_store import BarStore
from botwarden.data.synth import synthesize
from botwarden.research import sweep
from botwarden.research.executors import DaskExecutor, ProcessPoolExecutor, SerialExecutor
from botwarden.research.market import open_series
from botwarden.research.spec import build_spec

END = date(2026, 3, 6)


def peak_mib(pid: int) -> float:
    """A process's own high-water resident memory (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def grid(count: int) -> dict[str, list[int]]:
    fast = list(range(2, 52, 2))  # 25
    slow = list(range(60, 60 + 10 * max(1, count // len(fast)), 10))  # 40 for 1,000
    return {"fast": fast, "slow": slow}


def timed(label: str, run: object) -> tuple[float, dict]:
    start = time.perf_counter()
    result = run()  # type: ignore[operator]
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.2f} s")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=1050)
    parser.add_argument("--combos", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    bars = synthesize("MES", args.days, seed=7, end=END)
    BarStore(data_dir).write(bars, dataset="SYNTH", provider="synthetic", synthetic=True)
    del bars
    spec = build_spec(kind="sma_cross", params={"fast": 10, "slow": 60}, symbol="MES",
                      timeframe="1m", cash=Decimal(100_000), flatten_minutes=0)
    start = time.perf_counter()
    _, provenance, ref = open_series(data_dir, "MES", "1m")
    print(f"{provenance.bars:,} bars ({provenance.range_start:%Y-%m-%d} to "
          f"{provenance.range_end:%Y-%m-%d}) loaded and labelled in "
          f"{time.perf_counter() - start:.2f} s")
    combos, _ = sweep.expand_grid(spec.kind, spec.params, grid(args.combos))
    print(f"\n== {len(combos)}-combination SMA cross sweep, {os.cpu_count()} cores")
    me = os.getpid()
    base = peak_mib(me)
    figures: dict[str, object] = {"bars": provenance.bars, "combinations": len(combos)}

    pool = ProcessPoolExecutor(args.workers)
    cold, pooled = timed(f"process pool x{args.workers} (cold start)",
                         lambda: sweep.run_grid(ref, spec, combos, pool))
    warm, _ = timed(f"process pool x{args.workers} (warm)",
                    lambda: sweep.run_grid(ref, spec, combos, pool))
    from botwarden.research.executors import shared_pool

    workers = [p.pid for p in shared_pool(args.workers)._processes.values()]  # noqa: SLF001
    worker_peaks = [peak_mib(pid) for pid in workers]
    figures.update(pool_cold_s=cold, pool_warm_s=warm, pool_worker_peak_mib=max(worker_peaks))

    serial_s, serial = timed("in-process (1 core)", lambda: sweep.run_grid(ref, spec, combos,
                                                                             SerialExecutor()))
    figures.update(serial_s=serial_s, parent_peak_mib=peak_mib(me), parent_base_mib=base)
    assert serial["results"] == pooled["results"], "executors disagree"

    if not args.no_dask:
        from distributed import LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40) as cluster:
            dask = DaskExecutor(cluster)
            dask_cold, dasked = timed(f"dask local x{args.workers} (cold)",
                                      lambda: sweep.run_grid(ref, spec, combos, dask))
            dask_warm, _ = timed(f"dask local x{args.workers} (warm)",
                                 lambda: sweep.run_grid(ref, spec, combos, dask))
            dask_peaks = [peak_mib(p.pid) for p in psutil.Process(me).children(recursive=True)
                          if p.pid not in workers]
        figures.update(dask_cold_s=dask_cold, dask_warm_s=dask_warm,
                       dask_worker_peak_mib=max(dask_peaks, default=float("nan")))
        assert dasked["results"] == serial["results"], "executors disagree"

    summaries = len(json.dumps(serial["results"]).encode())
    print(f"\n  per-combination throughput (warm pool) {len(combos) / warm:8.1f} /s"
          f"   pool speed-up over in-process {serial_s / warm:.2f}x")
    print(f"  peak memory: this process {peak_mib(me):,.0f} MiB (before the sweeps "
          f"{base:,.0f}), each pool worker <= {max(worker_peaks):,.0f} MiB")
    print(f"  the ranked results of {len(combos)} combinations: {summaries / 1024:,.0f} KiB of "
          "JSON; no equity curve is kept")
    print("\n" + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                             for k, v in figures.items()}))


if __name__ == "__main__":
    main()
