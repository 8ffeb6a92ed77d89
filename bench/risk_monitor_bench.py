"""The risk monitor's cost: one `monitor_bot` call (what a runner pays on every bar) and one
run of the `risk_monitor` loop over a fleet, on SQLite and optionally PostgreSQL.

    uv run python bench/risk_monitor_bench.py [--bots 200] [--calls 2000]
                                              [--pg-url postgresql://...]

Each bot is a healthy PAPER bot with a RUNNER job beating now, one open MES contract, a
runner state with a last price, 20 trades in the current session, 20 orders in the last
five minutes and a day of minute equity snapshots (1,440 rows), so no trigger fires and
the calls measure the reads (facts and figures) plus, once a minute, the snapshot write.
A call is timed from entry to return with time.perf_counter_ns; the clock given to the
monitor moves 1 s per round over the fleet, so a bot's first call (and then one a minute)
writes its snapshot. Prints p50, p99 and max of the read-only calls and of those that
wrote, and the wall time of one loop over the whole fleet (every snapshot due). Asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.services.risk_monitor import monitor_bot, run_risk_monitor
from botwarden.store.db import make_engine, normalise_url
from botwarden.store.migrate import upgrade
from botwarden.store.models import (
    Account,
    Bot,
    BotJob,
    EquitySnapshot,
    Order,
    Position,
    RiskConfig,
    RunnerState,
    TradeLog,
)
from botwarden.workers.tasks import LoopContext

# Mid-session on a Wednesday (CME Globex: 22:00 to 21:00 UTC).
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
RISK = {"max_contracts_per_order": 1, "max_position_contracts": 2,
        "max_daily_loss_usd": "500", "max_drawdown_pct": "10"}
SNAPSHOTS = 1440
TRADES = 20
ORDERS = 20


def seed(engine: Engine, bots: int) -> list[str]:
    ids = []
    with Session(engine) as session:
        account = Account(name="bench", starting_capital=Decimal(50000))
        session.add(account)
        session.flush()
        for i in range(bots):
            bot = Bot(account_id=account.id, name=f"bench-{i}", strategy_kind="sma_cross",
                      strategy_params={"fast": 5, "slow": 20}, symbol="MES", stage="PAPER")
            session.add(bot)
            session.flush()
            session.add(RiskConfig(bot_id=bot.id, config=dict(RISK)))
            job = BotJob(account_id=account.id, bot_id=bot.id, job_type="RUNNER",
                         status="RUNNING", started_at=NOW - timedelta(hours=3),
                         last_heartbeat_at=NOW)
            session.add(job)
            session.flush()
            session.add(Position(bot_id=bot.id, symbol="MES", qty=1, lots=[[1, "5000.25"]],
                                 realized_pnl=Decimal("12.50"), fees=Decimal("2.48")))
            session.add(RunnerState(bot_id=bot.id, job_id=job.id, last_price=Decimal("5001"),
                                    last_bar_time=NOW - timedelta(minutes=1), updated_at=NOW))
            session.add_all(TradeLog(
                bot_id=bot.id, bot_instance_id=job.id, source_type="PAPER", symbol="MES",
                side="LONG", qty=1, entry_time=NOW - timedelta(minutes=30 + k),
                exit_time=NOW - timedelta(minutes=20 + k), entry_price=Decimal("5000"),
                exit_price=Decimal("5000.25"), pnl=Decimal("0.01"), fees=Decimal("1.24"))
                for k in range(TRADES))
            session.add_all(Order(
                bot_id=bot.id, job_id=job.id, client_order_id=f"{bot.id}-{k}", broker="paper",
                mode="PAPER", symbol="MES", side="BUY", qty=1, order_type="MARKET",
                status="FILLED", filled_qty=1, created_at=NOW - timedelta(seconds=10 * k))
                for k in range(ORDERS))
            session.add_all(EquitySnapshot(
                bot_id=bot.id, at=NOW - timedelta(minutes=SNAPSHOTS - k),
                equity=Decimal(50000) + k, realized_pnl=Decimal(0), unrealized_pnl=Decimal(0))
                for k in range(SNAPSHOTS))
            ids.append(bot.id)
        session.commit()
    return ids


def measure(label: str, url: str, bots: int, calls: int) -> None:
    engine = make_engine(url)
    settings = Settings(database_url=url, env="test", log_json=False)
    ids = seed(engine, bots)
    reads, writes = [], []
    for n in range(calls):
        now = NOW + timedelta(seconds=n // len(ids))  # a round over the fleet a second
        began = time.perf_counter_ns()
        result = monitor_bot(engine, ids[n % len(ids)], now, settings=settings)
        (writes if result["snapshot"] else reads).append((time.perf_counter_ns() - began) / 1e6)
        assert result["kill"] is None, result
    for kind, samples in (("read only", reads), ("with snapshot", writes)):
        if samples:
            samples.sort()
            p99 = samples[int(0.99 * (len(samples) - 1))]
            print(f"{label}: monitor_bot, {kind}, {len(samples)} calls: p50 "
                  f"{statistics.median(samples):.2f} ms, p99 {p99:.2f} ms, "
                  f"max {samples[-1]:.2f} ms")
    later = NOW + timedelta(seconds=calls // len(ids) + 61)
    with Session(engine) as session:  # the runners kept beating meanwhile
        session.execute(sa.update(BotJob).values(last_heartbeat_at=later))
        session.commit()
    ctx = LoopContext(engine, settings, lambda: later, "risk_monitor", None)
    began = time.perf_counter()
    summary = run_risk_monitor(ctx)
    print(f"{label}: one loop over {summary['checked']} bots ({summary['snapshots']} snapshots "
          f"written): {(time.perf_counter() - began) * 1000:.0f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        measure("sqlite", url, args.bots, args.calls)
    if args.pg_url:
        admin = sa.create_engine(normalise_url(args.pg_url), isolation_level="AUTOCOMMIT")
        name = f"risk_bench_{int(time.time())}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        url = normalise_url(args.pg_url).rsplit("/", 1)[0] + f"/{name}"
        try:
            upgrade(url)
            measure("postgresql", url, args.bots, args.calls)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
            admin.dispose()


if __name__ == "__main__":
    main()
