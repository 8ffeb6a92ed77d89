"""Promotion evidence written straight into the store, for the stage and promotion tests:
backtests and research runs with provenance, a stage's own trades with their runner job,
step-ups and stages set directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.domain.stages import Stage
from botwarden.store.models import Bot, BotJob, ResearchRun, TradeLog, User
from tests.api.conftest import ApiUser

GOOD_BACKTEST = {"trades": 60, "winners": 35, "losers": 25, "net_pnl": 1500.0,
                 "gross_profit": 3500.0, "gross_loss": 2000.0, "final_equity": 51500.0,
                 "win_rate": 58.3, "profit_factor": 1.75, "expectancy": 25.0, "sharpe": 1.4,
                 "max_drawdown_pct": 6.0, "days": 120}
TRADE_DAY0 = datetime(2026, 1, 5, 14, tzinfo=UTC)  # a Monday
NEXT = {Stage.TRIALS: Stage.PAPER, Stage.PAPER: Stage.SHADOW, Stage.SHADOW: Stage.CANARY}


def research(session: Session, bot: Bot, kind: str, *, metrics: dict[str, Any],
              passed: bool, provider: str | None = "databento",
              dataset: str | None = "GLBX.MDP3") -> None:
    now = utcnow()
    session.add(ResearchRun(
        account_id=bot.account_id, bot_id=bot.id, kind=kind, status="COMPLETED",
        strategy_kind=bot.strategy_kind, params=dict(bot.strategy_params), symbol=bot.symbol,
        timeframe=bot.timeframe, provider=provider, dataset=dataset,
        range_start=now - timedelta(days=365) if provider else None,
        range_end=now - timedelta(days=1) if provider else None,
        data_hash="ab" * 32 if provider else None, metrics=metrics, passed=passed,
        completed_at=now))
    session.flush()


def add_backtests(app: FastAPI, bot_id: str, *, count: int = 3, passed: bool = True,
                  provider: str = "databento", dataset: str = "GLBX.MDP3",
                  metrics: dict[str, Any] | None = None) -> None:
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        for _ in range(count):
            research(session, bot, "BACKTEST", metrics=metrics or GOOD_BACKTEST,
                      passed=passed, provider=provider, dataset=dataset)
        session.commit()


def add_stage_trades(app: FastAPI, bot_id: str, source: str, *, days: int = 16,
                     per_day: int = 20, losers: bool = True, provider: str = "databento",
                     dataset: str = "GLBX.MDP3") -> None:
    """A finished RUNNER job that recorded its data, and its trades: enough, on enough
    weekdays, with enough edge to pass even the CANARY gates."""
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        job = BotJob(account_id=bot.account_id, bot_id=bot.id, job_type="RUNNER",
                     status="COMPLETED", completed_at=utcnow(),
                     payload={"provider": provider, "dataset": dataset})
        session.add(job)
        session.flush()
        day, placed = TRADE_DAY0, 0
        rows = []
        while placed < days:
            if day.weekday() < 5:
                # 60-70 % winners of +80 against losers of -30; the share varies by day so
                # daily returns vary (a constant return has no Sharpe ratio).
                wins = per_day if not losers else per_day * 3 // 5 + placed % 2
                for k in range(per_day):
                    pnl = Decimal(80) if k >= per_day - wins else Decimal(-30)
                    at = day + timedelta(minutes=10 * k)
                    rows.append(TradeLog(
                        bot_id=bot.id, bot_instance_id=job.id, source_type=source,
                        symbol=bot.symbol, side="LONG", qty=1, entry_time=at,
                        exit_time=at + timedelta(minutes=5), entry_price=Decimal("5000"),
                        exit_price=Decimal("5000") + pnl / 5, pnl=pnl, fees=Decimal("1.24")))
                placed += 1
            day += timedelta(days=1)
        session.add_all(rows)
        session.commit()


def add_walk_forward_and_stress(app: FastAPI, bot_id: str) -> None:
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        research(session, bot, "WALK_FORWARD", passed=True,
                  metrics={"consistency": 0.7, "overfit_ratio": 1.5})
        research(session, bot, "STRESS", passed=True, metrics={"worst_drawdown_pct": 8.0})
        session.commit()


def add_evidence_for(app: FastAPI, bot_id: str, stage: Stage, *, demo: bool = False) -> None:
    """Everything the gates for leaving `stage` read; `demo`: just enough for the demo
    profile's volume (fewer rows, a faster test)."""
    if stage is Stage.TRIALS:
        add_backtests(app, bot_id)
        return
    if demo:
        add_stage_trades(app, bot_id, stage.value, days=4, per_day=12)
    else:
        add_stage_trades(app, bot_id, stage.value)
    if stage in (Stage.SHADOW, Stage.CANARY):
        add_walk_forward_and_stress(app, bot_id)


def set_step_up(app: FastAPI, user_id: str, active: bool) -> None:
    with app.state.session_factory() as session:
        user = session.get(User, user_id)
        user.step_up_until = utcnow() + (timedelta(minutes=5) if active
                                         else -timedelta(seconds=1))
        session.commit()


def set_stage(app: FastAPI, bot_id: str, stage: Stage) -> None:
    with app.state.session_factory() as session:
        session.get(Bot, bot_id).stage = stage.value
        session.commit()


def stage_of(client: TestClient, user: ApiUser, bot_id: str) -> str:
    return str(client.get(f"/api/bots/{bot_id}", headers=user.headers).json()["stage"])


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def issue_token(client: TestClient, user: ApiUser, bot_id: str) -> str:
    issued = client.post(f"/api/bots/{bot_id}/approvals", headers=user.headers)
    assert issued.status_code == 201, issued.text
    return str(issued.json()["approval_token"])
