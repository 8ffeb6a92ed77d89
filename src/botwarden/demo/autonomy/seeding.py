"""Bringing the demo's bots to PAPER the way any bot gets there: created in TRIALS, proven by
backtests run as BACKTEST jobs by a worker, then promoted by the stage machine once its
gates (the demo account's profile) are met. Nothing writes a stage directly.

The demo fleet (botwarden.demo.fleet) does the same for a dozen bots; this module does it
for the two bots of the autonomy scenario, with the strategies it names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.api.schemas.research import BacktestIn
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobType
from botwarden.domain.stage_machine import Route
from botwarden.domain.stages import Stage
from botwarden.services import bots as bot_service
from botwarden.services import promotion
from botwarden.services.research import create_run
from botwarden.store.db import write_transaction
from botwarden.store.models import Account, Bot
from botwarden.workers.registry import load_modules
from botwarden.workers.worker import Worker

ACTOR = "autonomy-demo"
BACKTESTS = 3  # the TRIALS gate reads the three newest backtests


@dataclass(frozen=True, slots=True)
class BotSpec:
    name: str
    kind: str
    params: dict[str, Any]
    risk: dict[str, Any]
    symbol: str = "MES"


def demo_account(engine: Engine, *, name: str, capital: int = 50_000) -> str:
    """An account on the demo gate profile (lighter on volume, synthetic bars accepted as
    the recorded market data: domain/gates.py)."""
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        account = Account(name=name, gate_profile="demo", starting_capital=capital)
        session.add(account)
        session.flush()
        return account.id


def paper_bot(engine: Engine, settings: Settings, account_id: str, spec: BotSpec) -> str:
    """Create the bot in TRIALS, backtest it, promote it to PAPER; answers its id. Refused
    gates raise the stage machine's error, which names them."""
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        created = bot_service.create_bot(session, account_id, {
            "name": spec.name, "symbol": spec.symbol, "timeframe": "1m",
            "strategy": {"kind": spec.kind, "params": spec.params}, "risk_config": spec.risk})
        session.flush()
        bot_id = created.id
        account = session.get(Account, account_id)
        assert account is not None
        for _ in range(BACKTESTS):
            create_run(session, account, "BACKTEST", BacktestIn(bot_id=bot_id), actor=ACTOR,
                       now=utcnow(), trace_id=None)
    _run_backtests(engine, settings)
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        bot = session.get(Bot, bot_id)
        account = session.get(Account, account_id)
        assert bot is not None and account is not None
        promotion.change_stage(session, bot, account, Route.GRADUATE, now=utcnow(),
                               actor=ACTOR, target=Stage.PAPER)
        session.flush()
    return bot_id


def _run_backtests(engine: Engine, settings: Settings) -> None:
    """The queued BACKTEST jobs, run here by a worker of this process (no thread, no
    lease renewal needed: a backtest of a few weeks of bars takes about a second)."""
    load_modules(["botwarden.research.jobs"])
    worker = Worker(settings, engine=engine, types=[JobType.BACKTEST], concurrency=1)
    if not worker.run_available():
        raise DomainError("NO_BACKTEST_RAN", "the demo's backtests were not run",
                          "Check the research job handlers.")


def tighten_daily_loss(engine: Engine, bot_id: str, max_daily_loss_usd: Any) -> None:
    """Lower the bot's daily loss limit (a tightening needs no step-up), as an operator
    does before leaving a bot to trade on its own."""
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        limits = bot_service.current_limits(session, bot_id)
        if limits is None:
            raise DomainError("NO_LIMIT_CONFIGURED", "the bot has no risk config", "")
        if bot_service.would_loosen(session, bot, {**limits.to_json(),
                                                   "max_daily_loss_usd": str(max_daily_loss_usd)}):
            raise DomainError("NOT_A_TIGHTENING", "the new daily loss limit is looser", "")
        bot_service.set_risk_config(session, bot, {**limits.to_json(),
                                                   "max_daily_loss_usd": str(max_daily_loss_usd)})
        session.flush()
