"""Runner capacity: how many PAPER runners one machine sustains on replayed 1-minute bars at
one bar per second each, while their heartbeats stay fresh, their bars stay on time and the
API stays responsive.

    uv run python bench/runner_capacity_bench.py [--steps 50,100,200,300,500,750,1000]
        [--seconds 60] [--workers 1] [--api-rate 20] [--pg-url postgresql://...]

Set-up: the demo's synthetic MES and MNQ bars (`ensure_demo_data`) in a temporary data dir;
a migrated database (SQLite file, or with --pg-url a database made on that server and
dropped after); accounts of 10 PAPER bots each (sma_cross 5/20, one contract, bracket, loss
limits out of reach) with an API token each. Processes: the API (`botwarden serve
--no-workers`) and `--workers` `botwarden worker` processes taking RUNNER jobs (runner slots
enough for the largest step; the first one also runs the self-healing loops and the risk
monitor).

The ramp adds RUNNER jobs (payload as services.runners builds it, speed 60, but with an
explicit start: every runner begins at the same session open) up to each step's N, waits
until each has saved a bar, lets them settle (`--settle` seconds, then until the start-up
backlog has drained: no more bars a second than runners, at most `--settle-max`; the
seconds are printed), then measures for `--seconds` while GETs of
/api/runners and /api/bots (each with a random account's token) go at a fixed rate,
latency counted from when each request was due. Sampled each second from the database:
each RUNNER job's heartbeat age (now - last_heartbeat_at, as the stale-heartbeat detector
sees it) and each runner's bar lag: when its last bar's state was saved, minus when the
replay made that bar due (its schedule: the bar gaps / 60, capped at 5 s as in
trading/feeds.py), taken against the runner's own best moment (so a runner never on time
reads low).

A step passes when every runner is alive, heartbeat age max < 30 s (stale limit), bar lag
p99 < 2 s (the STALE_DATA rule: two bar intervals), bars processed >= 95% of those due,
API p99 < 200 ms and no API error. The ramp stops at the first step that fails (unless
--keep-going); the largest N up to which every step passed is printed. "ms/bar CPU" is the
worker processes' CPU time per bar processed (scheduler loops included): on one process
(one GIL) a core runs about 1000 / that many runners. Target (issue 6): at least 500 on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fleet_probes import (
    SPEED,
    ApiLoad,
    Sampler,
    Schedule,
    cpu_seconds,
    machine_busy,
    pct,
    rss_mb,
    usable_paths,
)
from runner_latency_bench import pg_database

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.calendar import get_calendar
from botwarden.data.synth import ensure_demo_data
from botwarden.domain.jobs import JobType
from botwarden.store import jobs as job_store
from botwarden.store.db import make_engine, write_transaction
from botwarden.store.migrate import upgrade
from botwarden.store.models import Bot, BotJob, RiskConfig
from botwarden.workers.registry import HANDLER_MODULES

ROOT = Path(__file__).resolve().parents[1]
BOTS_PER_ACCOUNT = 10
STALE_HEARTBEAT = 30.0  # domain.md: a RUNNER is stale after 30 s without heartbeat
MAX_LAG = 2.0  # two bar intervals at speed 60: the risk engine's STALE_DATA rule
API_P99_MS = 200.0
DRAIN_WINDOW = 5  # seconds of bars counted to tell a draining backlog from steady state
# Limits that keep every bot trading for the whole ramp (a killed bot's runner ends, which
# would read as lost capacity): replay runs a session in 23 minutes, so the loss limits and
# the monitor's bands (percent of the capital) would otherwise stop some bots mid-ramp.
RISK = {"max_contracts_per_order": 1, "max_position_contracts": 1,
        "max_daily_loss_usd": 1_000_000, "max_drawdown_pct": 99, "max_daily_loss_pct": 100,
        "capital_usd": 10_000_000, "stop_loss_ticks": 12, "profit_target_ticks": 24}
CHEAP_HASHING = {"BOTWARDEN_PASSWORD_HASH_TIME_COST": "1",
                 "BOTWARDEN_PASSWORD_HASH_MEMORY_KIB": "8",
                 "BOTWARDEN_PASSWORD_HASH_PARALLELISM": "1"}


# ---- fleet ------------------------------------------------------------------------------


def seed_fleet(url: str, bots: int) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Accounts of BOTS_PER_ACCOUNT PAPER bots, alternating MES and MNQ; a token per
    account. -> ([(account_id, bot_id, symbol)], tokens)."""
    from sqlalchemy.orm import Session

    from botwarden.services.accounts import create_account, issue_token

    engine = make_engine(url)
    fleet, tokens = [], []
    with Session(engine) as session:
        for a in range(math.ceil(bots / BOTS_PER_ACCOUNT)):
            account, user = create_account(session, f"bench-{a}@example.com", "bench password")
            account.starting_capital = Decimal(50_000)
            tokens.append(issue_token(session, user, timedelta(hours=12)).token)
            for b in range(min(BOTS_PER_ACCOUNT, bots - a * BOTS_PER_ACCOUNT)):
                symbol = ("MES", "MNQ")[b % 2]
                bot = Bot(account_id=account.id, name=f"bench-{a}-{b}", strategy_kind="sma_cross",
                          strategy_params={"fast": 5, "slow": 20}, symbol=symbol,
                          timeframe="1m", stage="PAPER")
                session.add(bot)
                session.flush()
                session.add(RiskConfig(bot_id=bot.id, config=RISK))
                fleet.append((account.id, bot.id, symbol))
        session.commit()
    engine.dispose()
    return fleet, tokens


def start_runners(engine: sa.Engine, fleet: list[tuple[str, str, str]], start: datetime) -> None:
    with write_transaction(engine) as conn:
        for account_id, bot_id, symbol in fleet:
            payload = {"bot_id": bot_id, "mode": "PAPER", "broker": "paper",
                       "provider": "replay", "dataset": SYNTHETIC_DATASET, "symbol": symbol,
                       "timeframe": "1m", "speed": SPEED, "start": start.isoformat()}
            job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                                 actor="bench", bot_id=bot_id, payload=payload, now=utcnow())


@contextmanager
def workers(url: str, data_dir: Path, log_dir: Path, count: int, slots: int,
            ) -> Iterator[list[Any]]:
    from tests.workers.processes import WorkerProcess, wait_registered

    env = {"DATA_DIR": str(data_dir), "WORKER_RUNNER_SLOTS": str(slots), "LOG_LEVEL": "INFO",
           "DEMO_DATA": "false", "INTEGRATION_CHECKS": "false"}
    procs = [WorkerProcess(url, log_dir, f"worker-{n}", types="RUNNER", scheduler=n == 0,
                           modules=HANDLER_MODULES, env=env, fast=False)
             for n in range(count)]
    engine = make_engine(url)
    try:
        wait_registered(engine, procs)
        yield procs
    finally:
        engine.dispose()
        for proc in procs:
            proc.stop()


# ---- the ramp ---------------------------------------------------------------------------


def wait_started(sampler: Sampler, bots: list[str], timeout: float) -> float:
    began = time.monotonic()
    while True:
        found = sampler.positions()
        if all(b in found for b in bots):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"{sum(b in found for b in bots)} of {len(bots)} runners "
                               f"saved a bar within {timeout:.0f} s")
        time.sleep(1.0)


def settle(sampler: Sampler, bots: list[str], least: float, most: float) -> float:
    """Seconds waited before the measure: at least `least`, then until the start-up backlog
    has drained (every runner began at the same session open, so a large step's first
    minutes replay bars late): over the last DRAIN_WINDOW seconds the fleet processed no more
    bars than one a second each (the replay's rate) would give; at most `most`."""
    began = time.monotonic()
    time.sleep(least)
    window: list[int] = []
    while time.monotonic() - began < most:
        window.append(sum(index for index, _ in sampler.positions().values()))
        if len(window) > DRAIN_WINDOW and \
                window[-1] - window[-1 - DRAIN_WINDOW] <= 1.05 * len(bots) * DRAIN_WINDOW:
            break
        time.sleep(1.0)
    return time.monotonic() - began


def measure(sampler: Sampler, bots: list[str], api: ApiLoad, pids: dict[str, int],
            seconds: float) -> dict[str, Any]:
    sampler.reset()
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    busy0, all0 = machine_busy()
    t0 = time.time()
    first = sampler.sample()
    rss = {k: 0.0 for k in pids}
    with api:
        while time.time() - t0 < seconds:
            time.sleep(max(0.0, 1.0 - (time.time() - t0) % 1.0))
            last = sampler.sample()
            rss = {k: max(rss[k], rss_mb(p)) for k, p in pids.items()}
    t1 = time.time()
    busy1, all1 = machine_busy()
    jobs = BotJob.__table__
    with sampler.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(jobs.c.status, sa.func.count()).where(
            jobs.c.job_type == JobType.RUNNER.value).group_by(jobs.c.status)).all())
    processed = sum(last[b][0] - first[b][0] for b in bots if b in first and b in last)
    lags = sampler.lags()
    return {
        "alive": sampler.alive, "statuses": statuses, "bars_per_s": processed / (t1 - t0),
        "expected_per_s": sampler.expected_bars(bots, t0, t1) / (t1 - t0),
        "hb_p99": pct(sampler.heartbeat_ages, .99), "hb_max": max(sampler.heartbeat_ages),
        "lag_p99": pct(lags, .99), "lag_max": max(lags),
        "api_p50": pct(api.latencies, .5), "api_p99": pct(api.latencies, .99),
        "api_n": len(api.latencies), "api_errors": api.errors,
        "cpu": {k: (cpu_seconds(p) - cpu0[k]) / (t1 - t0) for k, p in pids.items()},
        "rss": rss, "busy": (busy1 - busy0) / (all1 - all0), "load": os.getloadavg()[0]}


def verdict(n: int, f: dict[str, Any]) -> list[str]:
    broken = []
    if f["alive"] < n:
        broken.append(f"only {f['alive']} runners alive (jobs by status: {f['statuses']})")
    if f["hb_max"] >= STALE_HEARTBEAT:
        broken.append(f"heartbeat {f['hb_max']:.1f} s old")
    if f["lag_p99"] >= MAX_LAG:
        broken.append(f"bar lag p99 {f['lag_p99']:.2f} s")
    if f["bars_per_s"] < 0.95 * f["expected_per_s"]:
        broken.append("bars behind schedule")
    if f["api_p99"] >= API_P99_MS or f["api_errors"]:
        broken.append(f"API p99 {f['api_p99']:.0f} ms, {f['api_errors']} errors")
    return broken


COLUMNS = (("N", 5), ("start s", 8), ("settle s", 9), ("bars/s got/due", 16),
           ("hb age s", 11),
           ("bar lag s", 12), ("API ms", 11), ("API err", 8), ("worker CPU", 11),
           ("ms/bar", 7), ("RSS MB", 7), ("API CPU", 8), ("busy", 6), ("load", 6))
SUBHEAD = {"hb age s": "p99/max", "bar lag s": "p99/max", "API ms": "p50/p99",
           "ms/bar": "CPU", "busy": "(all)"}


def print_header() -> None:
    print("".join(f"{name:>{width}}" for name, width in COLUMNS))
    print("".join(f"{SUBHEAD.get(name, ''):>{width}}" for name, width in COLUMNS))


def print_row(n: int, started: float, settled: float, f: dict[str, Any],
              broken: list[str]) -> None:
    workers_cpu = sum(v for k, v in f["cpu"].items() if k.startswith("worker"))
    workers_rss = sum(v for k, v in f["rss"].items() if k.startswith("worker"))
    cells = [f"{n}", f"{started:.0f}", f"{settled:.0f}",
             f"{f['bars_per_s']:.1f}/{f['expected_per_s']:.1f}",
             f"{f['hb_p99']:.1f}/{f['hb_max']:.1f}", f"{f['lag_p99']:.2f}/{f['lag_max']:.2f}",
             f"{f['api_p50']:.0f}/{f['api_p99']:.0f}", f"{f['api_errors']}",
             f"{workers_cpu:.0%}", f"{workers_cpu / max(f['bars_per_s'], 1e-9) * 1e3:.2f}",
             f"{workers_rss:.0f}", f"{f['cpu']['api']:.0%}",
             f"{f['busy']:.0%}", f"{f['load']:.1f}"]
    line = "".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))
    print(f"{line}  {'ok' if not broken else 'FAIL: ' + '; '.join(broken)}", flush=True)


def session_open(store: BarStore) -> datetime:
    """The first minute of a session about 10 days before the data ends: hours of replay at
    60x, room for a long ramp."""
    last = max(s.last_ts for s in store.series("MES") if s.dataset.name == SYNTHETIC_DATASET)
    start = datetime.fromtimestamp(last / 1e9, UTC) - timedelta(days=10)
    calendar = get_calendar()
    while not calendar.is_open(start) or calendar.is_open(start - timedelta(minutes=1)):
        start += timedelta(minutes=1)
    return start


def run(url: str, args: argparse.Namespace, tmp: Path) -> int | None:
    sys.path.insert(0, str(ROOT))  # tests.e2e.servers, tests.workers.processes
    steps = sorted(int(s) for s in args.steps.split(","))
    settings = Settings(database_url=url, data_dir=tmp / "data", demo_data=True,
                        run_workers=False, integration_checks=False, log_json=False)
    ensure_demo_data(settings)
    store = BarStore(settings.data_dir)
    start = session_open(store)
    fleet, tokens = seed_fleet(url, steps[-1])
    symbols = {bot_id: symbol for _, bot_id, symbol in fleet}
    engine = make_engine(url)
    sampler = Sampler(engine, Schedule(store, start), symbols)
    from tests.e2e.servers import serve

    env = {"BOTWARDEN_DEMO_DATA": "false", "BOTWARDEN_INTEGRATION_CHECKS": "false",
           "BOTWARDEN_DATA_DIR": str(settings.data_dir),
           "BOTWARDEN_RATE_LIMIT_USER_PER_MINUTE": str(10**9),
           "BOTWARDEN_RATE_LIMIT_GLOBAL_PER_MINUTE": str(10**9)}
    passed = None
    with ExitStack() as stack:
        server = stack.enter_context(serve(url, tmp, env))  # botwarden serve --no-workers
        base = server.url
        procs = stack.enter_context(workers(url, settings.data_dir, tmp, args.workers,
                                            math.ceil(steps[-1] / args.workers) + 10))
        pids = {"api": server.process.pid,
                **{f"worker-{n}": p.pid for n, p in enumerate(procs)}}
        paths = usable_paths(base, tokens[0], ["/api/runners", "/api/bots"])
        print(f"replay from {start:%Y-%m-%d %H:%M} UTC at {SPEED:.0f}x; API GETs of "
              f"{', '.join(paths)} at {args.api_rate:g}/s from {args.api_clients} clients; "
              f"{args.workers} worker process(es); {os.cpu_count()} cores; load average "
              f"{os.getloadavg()[0]:.1f} before the first step")
        print_header()
        running, intact = 0, True
        for n in steps:
            start_runners(engine, fleet[running:n], start)
            running = n
            bots = [bot_id for _, bot_id, _ in fleet[:n]]
            try:
                started = wait_started(sampler, bots, args.start_timeout)
            except TimeoutError as exc:
                print(f"{n:>5}  FAIL: {exc}")
                break
            settled = settle(sampler, bots, args.settle, args.settle_max)
            api = ApiLoad(base, tokens, paths, args.api_rate, args.api_clients)
            figures = measure(sampler, bots, api, pids, args.seconds)
            broken = verdict(n, figures)
            print_row(n, started, settled, figures, broken)
            if broken and not args.keep_going:
                break
            intact = intact and not broken
            if intact:
                passed = n
    engine.dispose()
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,100,200,300,500,750,1000")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured per step")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="least seconds between the last runner's first bar and the "
                             "measure (then until the start-up backlog drained)")
    parser.add_argument("--settle-max", type=float, default=180.0,
                        help="most seconds waited for the backlog to drain")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--api-rate", type=float, default=20.0, help="GETs per second")
    parser.add_argument("--api-clients", type=int, default=4)
    parser.add_argument("--keep-going", action="store_true",
                        help="measure every step, past the first that fails")
    parser.add_argument("--pg-url", help="a PostgreSQL server (any database on it)")
    args = parser.parse_args()
    os.environ.update(CHEAP_HASHING)  # the bench's own accounts: argon2 cost is not measured
    with tempfile.TemporaryDirectory(prefix="runner-capacity-") as name, ExitStack() as stack:
        tmp = Path(name)
        if args.pg_url:
            url = stack.enter_context(pg_database(args.pg_url, "capacity"))
        else:
            url = f"sqlite:///{tmp / 'bench.db'}"
            upgrade(url)
        passed = run(url, args, tmp)
    print(f"largest N that passed: {passed if passed is not None else 'none'} "
          "(target: at least 500)")


if __name__ == "__main__":
    main()
