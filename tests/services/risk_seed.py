"""Rows the risk monitor reads, written straight through the models: bots with risk configs,
runner jobs, positions, trades, orders, runner states, integration status, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from botwarden.ids import new_id
from botwarden.store.models import (
    Account,
    Bot,
    BotJob,
    CircuitBreaker,
    EquitySnapshot,
    IntegrationStatus,
    Order,
    Position,
    RiskConfig,
    RunnerState,
    TradeLog,
)

# Wednesday 2026-03-11, 15:00 UTC: inside the CME Globex session that opened on Tuesday at
# 22:00 UTC (17:00 Chicago) and closes at 21:00 UTC (16:00 Chicago).
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
SESSION_OPEN = datetime(2026, 3, 10, 22, 0, tzinfo=UTC)
SESSION_CLOSE = datetime(2026, 3, 11, 21, 0, tzinfo=UTC)

RISK = {"max_contracts_per_order": 1, "max_position_contracts": 2,
        "max_daily_loss_usd": "500", "max_drawdown_pct": "10"}


def seed_bot(session: Session, *, stage: str = "PAPER", symbol: str = "MES",
             starting_capital: Decimal = Decimal(50000), risk: dict[str, Any] | None = None,
             kill_state: str = "NONE", trading_state: str | None = None,
             account_id: str | None = None) -> Bot:
    if account_id is None:
        account = Account(name="risk-test", starting_capital=starting_capital)
        session.add(account)
        session.flush()
        account_id = account.id
    bot = Bot(account_id=account_id, name=f"bot-{new_id()[:8]}", strategy_kind="sma_cross",
              strategy_params={"fast": 5, "slow": 20}, symbol=symbol, stage=stage,
              is_trading_enabled=stage in ("CANARY", "LIVE"), kill_state=kill_state,
              trading_state=trading_state or {"NONE": "ACTIVE",
                                              "SOFT_KILLED": "REDUCING"}.get(kill_state,
                                                                             "HALTED"))
    session.add(bot)
    session.flush()
    session.add(RiskConfig(bot_id=bot.id, config=dict(risk if risk is not None else RISK)))
    session.flush()
    return bot


def seed_job(session: Session, bot: Bot, *, status: str = "RUNNING",
             heartbeat: datetime | None = NOW, job_type: str = "RUNNER",
             payload: dict[str, Any] | None = None) -> BotJob:
    terminal = status in ("COMPLETED", "FAILED", "CANCELED", "TIMEOUT")
    job = BotJob(account_id=bot.account_id, bot_id=bot.id, job_type=job_type, status=status,
                 payload=payload or {}, last_heartbeat_at=heartbeat,
                 started_at=NOW - timedelta(hours=1),
                 completed_at=NOW if terminal else None,
                 status_reason_code="TEST" if status in ("FAILED", "CANCELED", "TIMEOUT")
                 else None)
    session.add(job)
    session.flush()
    return job


def seed_position(session: Session, bot: Bot, lots: list[tuple[int, str]], *, short: bool = False,
                  realized: str = "0", fees: str = "0", symbol: str | None = None) -> Position:
    qty = sum(q for q, _ in lots) * (-1 if short else 1)
    position = Position(bot_id=bot.id, symbol=symbol or bot.symbol, qty=qty,
                        lots=[[q, p] for q, p in lots], realized_pnl=Decimal(realized),
                        fees=Decimal(fees))
    session.add(position)
    session.flush()
    return position


def seed_trade(session: Session, bot: Bot, job: BotJob, pnl: str, exit_time: datetime, *,
               source: str = "PAPER", invalid: bool = False) -> TradeLog:
    trade = TradeLog(bot_id=bot.id, bot_instance_id=job.id, source_type=source,
                     symbol=bot.symbol, side="LONG", qty=1,
                     entry_time=exit_time - timedelta(minutes=5), exit_time=exit_time,
                     entry_price=Decimal("5000"), exit_price=Decimal("5000"),
                     pnl=Decimal(pnl), fees=Decimal("1.24"), is_invalid=invalid)
    session.add(trade)
    session.flush()
    return trade


def seed_runner_state(session: Session, bot: Bot, *, last_price: str | None = None,
                      last_bar_time: datetime | None = None, updated_at: datetime = NOW,
                      bar_wall_seconds: float = 60.0) -> RunnerState:
    state = RunnerState(bot_id=bot.id, last_price=None if last_price is None
                        else Decimal(last_price), last_bar_time=last_bar_time,
                        updated_at=updated_at, bar_wall_seconds=bar_wall_seconds)
    session.add(state)
    session.flush()
    return state


def seed_order(session: Session, bot: Bot, *, status: str, created_at: datetime = NOW,
               reject_code: str | None = None, broker: str = "paper") -> Order:
    order = Order(bot_id=bot.id, client_order_id=new_id(), broker=broker, mode="PAPER",
                  symbol=bot.symbol, side="BUY", qty=1, order_type="MARKET", status=status,
                  reject_code=reject_code, created_at=created_at, updated_at=created_at)
    session.add(order)
    session.flush()
    return order


def seed_integration(session: Session, name: str, status: str, *, kind: str = "data",
                     configured: bool = True, code: str | None = None,
                     error_at: datetime | None = NOW) -> IntegrationStatus:
    row = IntegrationStatus(name=name, kind=kind, status=status, configured=configured,
                            last_error_code=code, last_error_at=error_at if code else None,
                            updated_at=NOW)
    session.add(row)
    session.flush()
    return row


def seed_snapshot(session: Session, bot: Bot, equity: str, at: datetime) -> EquitySnapshot:
    row = EquitySnapshot(bot_id=bot.id, at=at, equity=Decimal(equity),
                         realized_pnl=Decimal(0), unrealized_pnl=Decimal(0))
    session.add(row)
    session.flush()
    return row


def seed_breaker(session: Session, bot: Bot, state: str = "OPEN") -> CircuitBreaker:
    row = CircuitBreaker(bot_id=bot.id, state=state, failures=[],
                         opened_at=NOW if state == "OPEN" else None)
    session.add(row)
    session.flush()
    return row
