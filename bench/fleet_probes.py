"""What the runner capacity bench watches: each runner against its replay schedule and its
job's heartbeat (from the database), the API under a fixed rate of GETs, and processes' CPU
and memory (from /proc). Used by bench/runner_capacity_bench.py."""

from __future__ import annotations

import math
import os
import random
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.domain.jobs import JobType
from botwarden.store.models import BotJob, RunnerState

SPEED = 60.0  # one 1-minute bar per second
MAX_WAIT = 5.0  # the replay feed's cap on one wait (trading/feeds.py)


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- runners -------------------------------------------------------------------------


class Schedule:
    """Each symbol's bars from the start, and when the replay makes each due (seconds after
    its first bar)."""

    def __init__(self, store: BarStore, start: datetime) -> None:
        self.ts: dict[str, np.ndarray] = {}
        self.due: dict[str, np.ndarray] = {}
        for symbol in ("MES", "MNQ"):
            ts = store.load(symbol, start, None, "1m", dataset=SYNTHETIC_DATASET).ts
            waits = np.minimum(np.diff(ts) / 1e9 / SPEED, MAX_WAIT)
            self.ts[symbol], self.due[symbol] = ts, np.concatenate(([0.0], np.cumsum(waits)))

    def index(self, symbol: str, bar_time: datetime) -> int:
        return int(np.searchsorted(self.ts[symbol], int(bar_time.timestamp() * 1e9)))


class Sampler:
    """Once a second: every runner's last saved bar and when it was saved, every RUNNER
    job's heartbeat age. Keeps each runner's anchor (its best moment: saved time minus the
    bar's offset in the schedule, the least seen) and this step's observations."""

    def __init__(self, engine: sa.Engine, schedule: Schedule, symbols: dict[str, str]) -> None:
        self.engine, self.schedule, self.symbols = engine, schedule, symbols
        self.anchor: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self.saved: list[tuple[str, int, float]] = []  # (bot, bar index, saved at)
        self.heartbeat_ages: list[float] = []
        self.alive = 0

    def positions(self) -> dict[str, tuple[int, float]]:
        rs = RunnerState.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(rs.c.bot_id, rs.c.last_bar_time, rs.c.updated_at)
                                .where(rs.c.last_bar_time.is_not(None))).all()
        found = {}
        for bot_id, bar_time, saved in rows:
            symbol = self.symbols.get(bot_id)
            if symbol is not None:
                found[bot_id] = (self.schedule.index(symbol, bar_time), saved.timestamp())
        return found

    def sample(self) -> dict[str, tuple[int, float]]:
        now = time.time()
        jobs = BotJob.__table__
        with self.engine.connect() as conn:
            beats = conn.execute(sa.select(jobs.c.last_heartbeat_at).where(
                jobs.c.job_type == JobType.RUNNER.value,
                jobs.c.status.in_(("RUNNING", "DEGRADED")))).scalars().all()
        self.alive = len(beats)
        self.heartbeat_ages += [now - b.timestamp() for b in beats if b is not None]
        found = self.positions()
        for bot_id, (index, saved) in found.items():
            due = self.schedule.due[self.symbols[bot_id]][index]
            self.anchor[bot_id] = min(self.anchor.get(bot_id, math.inf), saved - due)
            self.saved.append((bot_id, index, saved))
        return found

    def lags(self) -> list[float]:
        return [saved - self.schedule.due[self.symbols[b]][i] - self.anchor[b]
                for b, i, saved in self.saved]

    def expected_bars(self, bots: list[str], t0: float, t1: float) -> int:
        total = 0
        for bot_id in bots:
            if bot_id in self.anchor:
                due = self.schedule.due[self.symbols[bot_id]] + self.anchor[bot_id]
                total += int(np.searchsorted(due, t1) - np.searchsorted(due, t0))
        return total


# ---- the API's load ---------------------------------------------------------------------


class ApiLoad:
    """`clients` threads sending GETs at `rate` per second in total, each request's latency
    counted from when it was due (a slow answer delays the next: that wait counts)."""

    def __init__(self, base: str, tokens: list[str], paths: list[str], rate: float,
                 clients: int) -> None:
        self.base, self.tokens, self.paths = base, tokens, paths
        self.interval = clients / rate
        self.clients = clients
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            due = time.perf_counter() + self.interval * n / self.clients
            while not self._stop.is_set():
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                headers = {"Authorization": f"Bearer {rng.choice(self.tokens)}"}
                try:
                    ok = client.get(rng.choice(self.paths), headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append((time.perf_counter() - due) * 1000)
                self.errors += not ok
                due += self.interval

    def __enter__(self) -> ApiLoad:
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def usable_paths(base: str, token: str, paths: list[str]) -> list[str]:
    found = [p for p in paths
             if httpx.get(base + p, headers={"Authorization": f"Bearer {token}"},
                          timeout=30).status_code == 200]
    if not found:
        raise SystemExit(f"none of {paths} answers 200")
    return found


# ---- processes -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # (busy, all) jiffies
