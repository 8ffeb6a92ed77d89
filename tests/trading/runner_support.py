"""Bots, runner jobs and contexts for the runner tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.providers.base import Bar
from botwarden.domain.jobs import JobType
from botwarden.domain.kill import KillMode, TriggerCode
from botwarden.domain.risk import MarketFacts
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.research.engine import BacktestResult, Trade, run_backtest
from botwarden.research.market import label
from botwarden.research.spec import build_spec
from botwarden.research.strategies import build_strategy
from botwarden.services.kill import kill_bot
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Account, Bot, RiskConfig
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.order_manager import OrderManager, RiskContext
from botwarden.workers.context import JobContext

GENEROUS = {"max_contracts_per_order": 1, "max_position_contracts": 1,
            "max_daily_loss_usd": 1_000_000, "max_drawdown_pct": 99,
            "max_daily_loss_pct": 100, "news_blackout_minutes": 0,
            "stop_loss_ticks": 12, "profit_target_ticks": 24}
PARAMS = {"fast": 3, "slow": 8}


def make_bot(engine: Engine, *, stage: str = "PAPER", risk: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, account_id: str | None = None,
             kind: str = "sma_cross", symbol: str = "MES") -> tuple[str, str]:
    with Session(engine) as session:
        if account_id is None:
            account = Account(name="runner-tests", starting_capital=Decimal(50_000))
            session.add(account)
            session.flush()
            account_id = account.id
        bot = Bot(account_id=account_id, name=f"{kind}-bot", strategy_kind=kind,
                  strategy_params=params or PARAMS, symbol=symbol, timeframe="1m", stage=stage)
        session.add(bot)
        session.flush()
        session.add(RiskConfig(bot_id=bot.id, config=dict(GENEROUS, **(risk or {}))))
        session.commit()
        return account_id, bot.id


def runner_payload(bot_id: str, *, mode: str = "PAPER", start: str | None = None,
                   symbol: str = "MES", **extra: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "mode": mode, "broker": {"PAPER": "paper",
                                                         "SHADOW": "shadow"}[mode],
            "provider": "replay", "dataset": SYNTHETIC_DATASET, "symbol": symbol,
            "timeframe": "1m", "speed": None, "start": start, **extra}


def runner_context(engine: Engine, settings: Settings, account_id: str, bot_id: str,
                   payload: dict[str, Any]) -> JobContext:
    with write_transaction(engine) as conn:
        job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                             actor="test", bot_id=bot_id, payload=payload, now=utcnow())
    with write_transaction(engine) as conn:
        [job] = job_store.claim_jobs(conn, owner="test-worker", types=[JobType.RUNNER],
                                     limit=1, lease_seconds=600, now=utcnow())
    return JobContext(job, settings, utcnow, "test-worker", engine)


def backtest_of(settings: Settings, risk: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None) -> tuple[BacktestResult, list[Trade]]:
    """The research engine's backtest of the test bot on every stored bar."""
    limits = parse_risk_limits(dict(GENEROUS, **(risk or {})))
    spec = build_spec(kind="sma_cross", params=params or PARAMS, symbol="MES", timeframe="1m",
                      cash=Decimal(50_000), limits=limits)
    store = BarStore(settings.data_dir)
    bars = store.load("MES", None, None, "1m", dataset=SYNTHETIC_DATASET)
    market = label(bars, spec.config.tick_size, "CMES")
    result = run_backtest(market.bars, build_strategy("sma_cross", spec.params), spec.config,
                          sessions=market.sessions, days=market.days,
                          flatten=market.flatten(spec.flatten_minutes))
    return result, result.trades()


def first_bar_iso(settings: Settings) -> str:
    bars = BarStore(settings.data_dir).load("MES", None, None, "1m", dataset=SYNTHETIC_DATASET)
    return str(np.datetime64(int(bars.ts[0]), "ns").astype("datetime64[us]")) + "+00:00"


def run_to_completion(engine: Engine, settings: Settings, account_id: str, bot_id: str,
                      payload: dict[str, Any]) -> dict[str, Any]:
    """Run a RUNNER job in this thread and complete it as its worker would."""
    from botwarden.trading.runner_job import run_runner

    ctx = runner_context(engine, settings, account_id, bot_id, payload)
    result = run_runner(ctx)
    with write_transaction(engine) as conn:
        job_store.complete_jobs(conn, [job_store.Completion(ctx.job, ctx.status, result)],
                                actor="test-worker", now=utcnow())
    return result


# --- an order manager on a fixed clock, for tests that drive it without a runner ---------

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 New York: session open


def paper_manager(engine: Engine, settings: Settings, bot_id: str) -> OrderManager:
    """The bot's order manager on its paper broker, with the GENEROUS limits, at NOW."""
    return OrderManager(engine, bot_id=bot_id, job_id=None,
                        broker=make_broker(engine, settings, bot_id, "paper"), mode="PAPER",
                        source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                        clock=lambda: NOW)


def risk_context() -> RiskContext:
    """A market open at NOW with a fresh bar at 5000, and money far from every limit."""
    facts = MarketFacts(now=NOW, last_price=Decimal("5000"),
                        last_bar_time=NOW - timedelta(seconds=60), bar_seconds=60,
                        session_open=True, minutes_to_close=300,
                        minutes_to_high_impact_event=None)
    money = Decimal(50_000)
    return RiskContext(facts, Decimal(0), money, money, money, money, money)


def flat_bar(at: datetime, price: float) -> Bar:
    """A MES bar opening and closing at `price`, one point either side."""
    return Bar("MES", "1m", int(at.timestamp() * 1e9), price, price + 1, price - 1, price, 10)


def hard_kill(engine: Engine, bot_id: str) -> None:
    """A manual HARD kill of the bot, committed (the halt hooks are not run)."""
    with Session(engine) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        kill_bot(session, bot, mode=KillMode.HARD, trigger=TriggerCode.MANUAL_KILL,
                 reason="test", actor="test")
        session.commit()
