"""A HARD kill acting on the market: cancel every working order, flatten the position
through the broker, and verify that the broker shows the bot flat.

The bot's own runner does this when it sees the kill (after the bar in hand, or within a
second between bars; every order it sends re-reads the kill in the transaction that
persists the intent), and sends the flatten again should it be refused. When no runner is
alive, the kill engine's hook (`ExecutionHooks.halt`) does it directly. A paper or shadow
position without a runner feeding bars is closed at the last price its market saw (the
later of the broker's last bar and the runner's, plus the paper broker's slippage): a
simulated market has no other price to offer.

Measured (tests/trading/test_kill_switch.py, 20 paper runners at a bar every 0.5 s, 2 cores):
no order accepted after the switch; every bot flat, ours and the broker's, 1.1-2.1 s after
the request, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings, get_settings
from botwarden.data.calendar import to_ns
from botwarden.data.providers.base import Bar
from botwarden.domain.bars import TIMEFRAME_SECONDS
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.kill import KillState
from botwarden.domain.orders import client_id_prefix
from botwarden.domain.risk import MarketFacts
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.domain.trading import OrderType, Side
from botwarden.store.models import Bot, BotJob, RiskConfig, RunnerState
from botwarden.trading.broker_factory import MODE_BROKERS, make_broker
from botwarden.trading.brokers.base import BrokerError
from botwarden.trading.brokers.simulated import SimulatedBrokerCore
from botwarden.trading.order_manager import OrderManager, RiskContext
from botwarden.trading.order_store import NewOrder

jobs = cast(sa.Table, BotJob.__table__)
runner_states = cast(sa.Table, RunnerState.__table__)
ACTIVE = [JobStatus.RUNNING.value, JobStatus.DEGRADED.value]
HALTING_STATES = (KillState.HARD_KILLED.value, KillState.QUARANTINED.value)


@dataclass(frozen=True, slots=True)
class HaltResult:
    cancelled: int
    flatten_client_order_id: str | None
    position_after: int
    broker_position_after: int

    def as_json(self) -> dict[str, Any]:
        return {"cancelled": self.cancelled, "flatten_order": self.flatten_client_order_id,
                "position_after": self.position_after,
                "broker_position_after": self.broker_position_after,
                "flat": self.position_after == 0 and self.broker_position_after == 0}


def halt_orders(manager: OrderManager, symbol: str, facts: MarketFacts, *, tag: str,
                mark: Decimal) -> tuple[int, str | None]:
    """Cancel working orders, then send the system's flatten. Returns (cancelled, flatten id)."""
    cancelled = 0
    for working in list(manager.open.values()):
        if working.symbol == symbol and manager.cancel(working.client_order_id) is not None:
            cancelled += 1
    position = manager.position(symbol)
    if position == 0:
        return cancelled, None
    client_id = f"{client_id_prefix(manager.bot_id)}halt-{tag}"
    if client_id in manager.seen_ids:
        return cancelled, client_id
    ctx = RiskContext(market=facts, daily_pnl=Decimal(0), equity=Decimal(1),
                      equity_peak=Decimal(1), capital=Decimal(1), account_equity=Decimal(1),
                      account_peak=Decimal(1), detail={"why": "HARD kill flatten"})
    order = NewOrder(client_id, symbol, Side.SELL if position > 0 else Side.BUY, abs(position),
                     OrderType.MARKET, reduce_only=True, reason="KILL_FLATTEN")
    manager.place(order, ctx, system_flatten=True)
    return cancelled, client_id


class RunnerlessHalt:
    """The kill engine's execution hook, for bots whose runner is not alive."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]:
        # The API's session may be bound to one connection (SQLite's write turn): the
        # orders and the broker's book are written through the engine behind it.
        engine = session.get_bind().engine
        if bot.kill_state not in HALTING_STATES:
            return {"bot_id": bot.id, "skipped": f"bot is {bot.kill_state}: nothing to halt"}
        runner = session.execute(sa.select(jobs.c.id, jobs.c.payload).where(
            jobs.c.bot_id == bot.id, jobs.c.job_type == JobType.RUNNER.value,
            jobs.c.status.in_(ACTIVE))).first()
        if runner is not None:
            return {"bot_id": bot.id, "delegated_to_runner": runner.id}
        broker_name = MODE_BROKERS.get(bot.stage)
        if broker_name is None:
            return {"bot_id": bot.id, "skipped": f"a {bot.stage} bot has no broker"}
        try:
            return self._halt(session, engine, bot, broker_name)
        except (DomainError, BrokerError) as exc:
            # The kill stands (it is committed); what the market side could not do is
            # reported, and the halt_sweep loop tries again.
            return {"bot_id": bot.id, "flat": False, "error": exc.code, "message": str(exc)}

    def _halt(self, session: Session, engine: Engine, bot: Bot,
              broker_name: str) -> dict[str, Any]:
        settings = self.settings or get_settings()
        broker = make_broker(engine, settings, bot.id, broker_name)
        config = session.get(RiskConfig, bot.id)
        limits = parse_risk_limits(config.config) if config else None
        manager = OrderManager(engine, bot_id=bot.id, job_id=None,
                               broker=broker, mode=bot.stage, source_type=bot.stage,
                               limits=limits)
        manager.load(bot.symbol)
        now = utcnow()
        last = last_market_bar(session, broker, bot) \
            if isinstance(broker, SimulatedBrokerCore) else None
        mark = Decimal(str(last.close)) if last is not None else Decimal(0)
        facts = MarketFacts(now=now, last_price=mark if last else None,
                            last_bar_time=now, bar_seconds=60, session_open=True,
                            minutes_to_close=None, minutes_to_high_impact_event=None)
        cancelled, flatten_id = halt_orders(manager, bot.symbol, facts,
                                            tag=str(int(now.timestamp())), mark=mark)
        if flatten_id and last is not None and isinstance(broker, SimulatedBrokerCore):
            manager.on_fills(broker.on_bar(bot.symbol, settling_bar(last)))
        result = HaltResult(cancelled, flatten_id, manager.position(bot.symbol),
                            broker.position(bot.symbol).qty)
        return {"bot_id": bot.id, **result.as_json()}


def last_market_bar(session: Session, broker: SimulatedBrokerCore, bot: Bot) -> Bar | None:
    """The last bar a simulated market saw for the bot: the broker's own (it saves its book
    only when something fills) or the bar the bot's last runner saved, whichever is newer.
    The runner's is known by its close only, so it stands as a bar of that one price."""
    seen = broker.last_bar.get(bot.symbol)
    saved = session.execute(sa.select(runner_states.c.last_bar_time, runner_states.c.last_price)
                            .where(runner_states.c.bot_id == bot.id)).first()
    if saved is None or saved.last_bar_time is None or saved.last_price is None:
        return seen
    ts = to_ns(saved.last_bar_time)
    if seen is not None and seen.ts >= ts:
        return seen
    price = float(saved.last_price)
    return Bar(bot.symbol, bot.timeframe, ts, price, price, price, price, 0.0)


def settling_bar(last: Bar) -> Bar:
    """The bar after `last`, all at its close: where a simulated market settles a flatten
    sent while no bars come (market orders fill at the next bar's open)."""
    step = TIMEFRAME_SECONDS.get(last.timeframe, 60) * 1_000_000_000
    price = last.close
    return Bar(last.symbol, last.timeframe, last.ts + step, price, price, price, price, 0.0)
