"""Backtest engine speed against vectorbt and backtesting.py, printed side by side.

    uv run python bench/research_bench.py [--bars 1000000] [--vbt-sweep-combos 100]

- single SMA(10/30) cross backtest on N synthetic 1-minute bars (a random walk on the MES
  tick grid), warm and in a fresh process (imports and JIT/cache load included);
- a 100-combination SMA sweep on backtesting.py's EURUSD sample;
- a 1,000-combination SMA sweep on the N bars, and its peak memory.

backtesting.py runs on a slice (--bt-slice bars) and is scaled linearly to N; vectorbt's
1,000-combination sweep runs on the first --vbt-sweep-combos combinations, in chunks of
25 columns (all at once would need tens of GB), and is scaled linearly: both say so.
A bench prints figures; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars

import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

from botwarden.domain.bars import Bars
from botwarden.research.batch import run_many
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.sessions import sessions_from_gaps
from botwarden.research.strategies import build_strategy
from botwarden.research.ticks import to_tick_bars

warnings.filterwarnings("ignore")
TICK = Decimal("0.25")
FAST, SLOW = 10, 30
# point value 1 and no fees so that our figures and vectorbt's can be compared directly
CONFIG = ExecutionConfig(TICK, Decimal(1), Decimal(0), size=1, cash=Decimal(1_000_000))
SWEEP_1M = [(f, s) for f in range(2, 52, 2) for s in range(60, 460, 10)]  # 25 x 40 = 1000
SWEEP_EURUSD = [(f, s) for f in range(2, 22, 2) for s in range(25, 275, 25)]  # 10 x 10 = 100
VBT_CHUNK = 25


def synthetic_bars(n: int, seed: int = 7) -> Bars:
    """A random walk on the tick grid: each close moves -3..+3 ticks from the previous one;
    open = previous close, high/low reach 0-2 ticks beyond the body."""
    rng = np.random.default_rng(seed)
    close = 20_000 + np.cumsum(rng.integers(-3, 4, n))
    open_ = np.r_[20_000, close[:-1]]
    high = np.maximum(open_, close) + rng.integers(0, 3, n)
    low = np.minimum(open_, close) - rng.integers(0, 3, n)
    ts = np.datetime64("2024-01-02T00:00", "ns").astype(np.int64) + np.arange(n) * 60_000_000_000
    tick = float(TICK)
    return Bars("MES", "1m", ts.astype(np.int64), open_ * tick, high * tick, low * tick,
                close * tick, rng.integers(1, 500, n).astype(np.float64))


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------- vectorbt


def vbt_sma_cross(open_: np.ndarray, close: np.ndarray, pairs: list[tuple[int, int]]):
    """Stop-and-reverse SMA cross in vectorbt: MAs by vbt.MA, crosses decided at a close
    and filled at the next open (signals shifted one bar, price = open), no fees."""
    import vectorbt as vbt

    n = close.shape[0]
    fast = vbt.MA.run(close, window=[f for f, _ in pairs]).ma.values.reshape(n, -1)
    slow = vbt.MA.run(close, window=[s for _, s in pairs]).ma.values.reshape(n, -1)
    above, below = fast > slow, fast < slow
    up = np.zeros_like(above)
    down = np.zeros_like(above)
    up[2:] = above[1:-1] & below[:-2]
    down[2:] = below[1:-1] & above[:-2]
    portfolio = vbt.Portfolio.from_signals(
        close[:, None], entries=up, short_entries=down, price=open_[:, None], size=1,
        init_cash=float(CONFIG.cash), freq="1min",
    )
    return portfolio.final_value().to_numpy(), portfolio.trades.count().to_numpy()


# ---------------------------------------------------------------- backtesting.py


def bt_frame(bars: Bars) -> pd.DataFrame:
    return pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
         "Volume": bars.volume},
        index=pd.to_datetime(bars.ts),
    )


class BtSmaCross(Strategy):
    """backtesting.py's SmaCross, stop-and-reverse with a fixed size."""

    n1, n2, size = FAST, SLOW, 1

    def init(self):
        self.a = self.I(SMA, self.data.Close, self.n1)
        self.b = self.I(SMA, self.data.Close, self.n2)

    def next(self):
        if crossover(self.a, self.b):
            self.position.close()
            self.buy(size=self.size)
        elif crossover(self.b, self.a):
            self.position.close()
            self.sell(size=self.size)


def bt_run(frame: pd.DataFrame, size: int = 1) -> Backtest:
    bt = Backtest(frame, BtSmaCross, cash=10_000_000, trade_on_close=False)
    bt.run(size=size)
    return bt


# ---------------------------------------------------------------- fresh processes

OURS_FRESH = """
import time; t0 = time.perf_counter()
import numpy as np
from decimal import Decimal
from botwarden.domain.bars import Bars
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.strategies import build_strategy
t1 = time.perf_counter()
z = np.load({path!r})
bars = Bars("MES", "1m", z["ts"], z["open"], z["high"], z["low"], z["close"], z["volume"])
config = ExecutionConfig(Decimal("0.25"), Decimal(1), Decimal(0), size=1, cash=Decimal(1000000))
t2 = time.perf_counter()
result = run_backtest(bars, build_strategy("sma_cross", {{"fast": {fast}, "slow": {slow}}}), config)
t3 = time.perf_counter()
print({{"imports": t1 - t0, "first_backtest": t3 - t2, "trades": result.metrics.trades}})
"""

VBT_FRESH = """
import time, warnings; warnings.filterwarnings("ignore"); t0 = time.perf_counter()
import numpy as np
import sys; sys.path.insert(0, {bench!r})
from research_bench import vbt_sma_cross
import vectorbt
t1 = time.perf_counter()
z = np.load({path!r})
t2 = time.perf_counter()
vbt_sma_cross(z["open"], z["close"], [({fast}, {slow})])
t3 = time.perf_counter()
print({{"imports": t1 - t0, "first_backtest": t3 - t2}})
"""

MEMORY = """
import time
import numpy as np
from decimal import Decimal
from botwarden.domain.bars import Bars
from botwarden.research.batch import run_many
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.sessions import sessions_from_gaps
from botwarden.research.strategies import build_strategy
from botwarden.research.ticks import to_tick_bars
def peak_kb():  # this process's own high-water mark (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
z = np.load({path!r})
bars = Bars("MES", "1m", z["ts"], z["open"], z["high"], z["low"], z["close"], z["volume"])
config = ExecutionConfig(Decimal("0.25"), Decimal(1), Decimal(0), size=1, cash=Decimal(1000000))
tick_bars = to_tick_bars(bars, config.tick_size)
sessions = sessions_from_gaps(tick_bars.ts)
run_backtest(tick_bars, build_strategy("sma_cross", {{"fast": 10, "slow": 30}}), config,
             sessions=sessions, record_equity=False)
base = peak_kb()
pairs = {pairs!r}
if pairs:
    start = time.perf_counter()
    run_many(tick_bars, "sma_cross", [{{"fast": f, "slow": s}} for f, s in pairs], config,
             sessions=sessions, threads=2)
    print({{"base_kb": base, "peak_kb": peak_kb(), "seconds": time.perf_counter() - start}})
else:
    print({{"base_kb": base}})
"""


def run_child(code: str, env: dict[str, str]) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    wall = time.perf_counter() - start
    return eval(done.stdout.strip().splitlines()[-1]), wall  # noqa: S307 - our own child's dict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--bt-slice", type=int, default=100_000)
    parser.add_argument("--vbt-sweep-combos", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, object] = {}

    bars = synthetic_bars(args.bars)
    n = len(bars)
    print(f"== single SMA({FAST}/{SLOW}) cross backtest on {n:,} synthetic 1-minute bars")
    strategy = build_strategy("sma_cross", {"fast": FAST, "slow": SLOW})
    ours = run_backtest(bars, strategy, CONFIG)
    ours_warm = best_of(lambda: run_backtest(bars, strategy, CONFIG), args.repeat)
    vbt_value, vbt_trades = vbt_sma_cross(bars.open, bars.close, [(FAST, SLOW)])
    vbt_warm = best_of(lambda: vbt_sma_cross(bars.open, bars.close, [(FAST, SLOW)]), 3)
    frame = bt_frame(bars.slice(0, min(args.bt_slice, n)))
    start = time.perf_counter()
    bt_run(frame)
    bt_slice_s = time.perf_counter() - start
    bt_scaled = bt_slice_s * n / len(frame)
    still_open = int(ours.open_position is not None)
    print(f"  results: ours {ours.metrics.trades} closed trades (+{still_open}"
          f" open), final equity {ours.metrics.final_equity:,.2f}; vectorbt {int(vbt_trades[0])}"
          f" trades incl. open, final value {float(vbt_value[0]):,.2f}")
    print(f"  ours warm            {ours_warm * 1000:9.1f} ms")
    print(f"  vectorbt warm        {vbt_warm * 1000:9.1f} ms   ours is"
          f" {vbt_warm / ours_warm:5.1f}x faster (target >= 2x)")
    print(f"  backtesting.py       {bt_scaled * 1000:9.1f} ms   (ran {len(frame):,} bars in"
          f" {bt_slice_s:.2f} s, scaled x{n / len(frame):g}); ours is {bt_scaled / ours_warm:,.0f}x"
          f" faster (target >= 50x)")
    figures.update(single_ours_warm_s=ours_warm, single_vbt_warm_s=vbt_warm,
                   single_bt_scaled_s=bt_scaled)

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bars.npz")
        np.savez(path, ts=bars.ts, open=bars.open, high=bars.high, low=bars.low, close=bars.close,
                 volume=bars.volume)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a deployed venv has its bytecode compiled
        code = OURS_FRESH.format(path=path, fast=FAST, slow=SLOW)
        cold_env = dict(env, NUMBA_CACHE_DIR=str(Path(tmp) / "empty-numba-cache"))
        cold, cold_wall = run_child(code, cold_env)
        run_child(code, env)  # make sure the on-disk caches and bytecode exist
        fresh, fresh_wall = run_child(code, env)
        bench_dir = str(Path(__file__).parent)
        vbt_fresh, vbt_fresh_wall = run_child(
            VBT_FRESH.format(path=path, fast=FAST, slow=SLOW, bench=bench_dir), env)
        print("  fresh process (imports | first backtest | whole process wall):")
        print(f"    ours, numba cache on disk  {fresh['imports']:.2f} s |"
              f" {fresh['first_backtest']:.2f} s | {fresh_wall:.2f} s   (target: < 2 s)")
        print(f"    ours, empty numba cache    {cold['imports']:.2f} s |"
              f" {cold['first_backtest']:.2f} s | {cold_wall:.2f} s   (JIT compile included)")
        print(f"    vectorbt                   {vbt_fresh['imports']:.2f} s | "
              f"{vbt_fresh['first_backtest']:.2f} s | {vbt_fresh_wall:.2f} s")
        figures.update(fresh_first_backtest_s=fresh["first_backtest"], fresh_wall_s=fresh_wall,
                       cold_first_backtest_s=cold["first_backtest"],
                       vbt_fresh_wall_s=vbt_fresh_wall)

        print(f"\n== {len(SWEEP_EURUSD)}-combination SMA sweep on backtesting.py's EURUSD sample")
        sweep_eurusd(figures, args.repeat)

        print(f"\n== {len(SWEEP_1M)}-combination SMA sweep on the {n:,} bars")
        tick_bars = to_tick_bars(bars, CONFIG.tick_size)
        sessions = sessions_from_gaps(tick_bars.ts)
        params = [{"fast": f, "slow": s} for f, s in SWEEP_1M]
        start = time.perf_counter()
        run_many(tick_bars, "sma_cross", params, CONFIG, sessions=sessions, threads=2)
        ours_sweep = time.perf_counter() - start
        subset = SWEEP_1M[: args.vbt_sweep_combos]
        start = time.perf_counter()
        for k in range(0, len(subset), VBT_CHUNK):
            vbt_sma_cross(bars.open, bars.close, subset[k : k + VBT_CHUNK])
        vbt_subset = time.perf_counter() - start
        vbt_sweep = vbt_subset * len(SWEEP_1M) / len(subset)
        print(f"  ours (2 threads)     {ours_sweep:9.2f} s")
        scale = len(SWEEP_1M) / len(subset)
        print(f"  vectorbt             {vbt_sweep:9.2f} s   (ran {len(subset)} combinations in"
              f" {vbt_subset:.1f} s, chunks of {VBT_CHUNK}, scaled x{scale:g});"
              f" ours is {vbt_sweep / ours_sweep:.1f}x faster (target >= 2x)")
        memory, _ = run_child(MEMORY.format(path=path, pairs=SWEEP_1M), env)
        print(f"  peak memory of our sweep process {memory['peak_kb'] / 1024:,.0f} MiB, of the same"
              f" process after one backtest {memory['base_kb'] / 1024:,.0f} MiB (all equity curves"
              f" at once would be {len(SWEEP_1M) * n * 8 / 2**30:,.1f} GiB)")
        figures.update(sweep_ours_s=ours_sweep, sweep_vbt_scaled_s=vbt_sweep,
                       sweep_peak_mib=memory["peak_kb"] / 1024,
                       sweep_base_mib=memory["base_kb"] / 1024)
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    print("\n" + json.dumps(rounded))


def sweep_eurusd(figures: dict[str, object], repeat: int) -> None:
    from backtesting.test import EURUSD

    tick = Decimal("0.00001")
    columns = [EURUSD[c].to_numpy(dtype=np.float64)
               for c in ("Open", "High", "Low", "Close", "Volume")]
    bars = Bars("EURUSD", "1h", EURUSD.index.values.astype("datetime64[ns]").astype(np.int64),
                *columns)
    config = ExecutionConfig(tick, Decimal(1), Decimal(0), size=10_000, cash=Decimal(1_000_000))
    tick_bars = to_tick_bars(bars, tick)
    sessions = sessions_from_gaps(tick_bars.ts)
    params = [{"fast": f, "slow": s} for f, s in SWEEP_EURUSD]
    run_many(tick_bars, "sma_cross", params, config, sessions=sessions)
    ours = best_of(lambda: run_many(tick_bars, "sma_cross", params, config, sessions=sessions),
                   repeat)
    vbt_sma_cross(bars.open, bars.close, SWEEP_EURUSD)
    vbt = best_of(lambda: vbt_sma_cross(bars.open, bars.close, SWEEP_EURUSD), 3)
    bt = bt_run(EURUSD, size=10_000)
    start = time.perf_counter()
    bt.optimize(n1=list(range(2, 22, 2)), n2=list(range(25, 275, 25)), size=[10_000],
                maximize="Equity Final [$]")
    bt_time = time.perf_counter() - start
    print(f"  ours (2 threads)     {ours * 1000:9.1f} ms")
    print(f"  vectorbt             {vbt * 1000:9.1f} ms   ours is {vbt / ours:.1f}x faster")
    print(f"  backtesting.py       {bt_time * 1000:9.1f} ms   (Backtest.optimize, its own process"
          f" pool); ours is {bt_time / ours:,.0f}x faster")
    figures.update(eurusd_ours_s=ours, eurusd_vbt_s=vbt, eurusd_bt_s=bt_time)


if __name__ == "__main__":
    main()
