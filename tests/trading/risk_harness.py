"""Drivers for the risk property tests: one sequence through the real OrderManager (on a
database, with a paper broker behind a recording broker), or through `check_order` alone
with a model of the broker's book. Both judge every decision with the independent oracle
(tests/trading/risk_oracle.py) and keep what they saw for the test to assert on."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.data.providers.base import Bar
from botwarden.domain.kill import KillState
from botwarden.domain.risk import MarketFacts
from botwarden.domain.trading import OrderType
from botwarden.trading.brokers.base import (
    Ack,
    BrokerRejected,
    FillReport,
    OrderReport,
    OrderRequest,
    PositionReport,
)
from botwarden.trading.brokers.paper import PaperBroker
from botwarden.trading.order_manager import RiskContext
from tests.trading.risk_oracle import Sent, Situation, Wanted, Working, breaches, is_reducing
from tests.trading.risk_sequences import (
    ACCOUNT_PEAK,
    ACCOUNT_START,
    BAR_SECONDS,
    CAPITAL,
    EQUITY_PEAK,
    TICK,
    BarStep,
    Gate,
    OrderSequence,
    OrderStep,
)

SYMBOL = "MES"
START = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
_run_numbers = itertools.count()


def new_prefix() -> str:
    """Client ids unique across every example sharing one database."""
    return f"rs{next(_run_numbers)}"


def situation(seq: OrderSequence, gate: Gate, step: OrderStep, now: datetime,
              other_contracts: int) -> Situation:
    return Situation(
        stage=gate.stage, kill_state=gate.kill_state,
        account_kill_switch=gate.account_kill_switch, trading_state=gate.trading_state,
        live_trading_on=gate.live_trading_on, limits=seq.limits, now=now,
        last_price=None if step.no_last_price else seq.price,
        last_bar_time=None if step.bar_age_s is None else now - timedelta(seconds=step.bar_age_s),
        bar_seconds=BAR_SECONDS, session_open=step.session_open,
        minutes_to_close=step.minutes_to_close if step.session_open else None,
        minutes_to_event=step.minutes_to_event, daily_pnl=Decimal(step.daily_pnl),
        equity=Decimal(step.equity), equity_peak=EQUITY_PEAK, capital=CAPITAL,
        account_start=ACCOUNT_START, account_equity=Decimal(step.account_equity),
        account_peak=ACCOUNT_PEAK, account_cap=seq.account_cap,
        other_bots_contracts=other_contracts)


def wanted(step: OrderStep, client_order_id: str, price: Decimal) -> Wanted:
    at = price + step.price_ticks * TICK if step.order_type is not OrderType.MARKET else None
    return Wanted(client_order_id, step.side, step.qty, step.order_type, at,
                  step.system_flatten)


def market_facts(s: Situation) -> MarketFacts:
    return MarketFacts(now=s.now, last_price=s.last_price, last_bar_time=s.last_bar_time,
                       bar_seconds=s.bar_seconds, session_open=s.session_open,
                       minutes_to_close=s.minutes_to_close,
                       minutes_to_high_impact_event=s.minutes_to_event)


def risk_context(s: Situation) -> RiskContext:
    return RiskContext(market=market_facts(s), daily_pnl=s.daily_pnl, equity=s.equity,
                       equity_peak=s.equity_peak, capital=s.capital,
                       account_equity=s.account_equity, account_peak=s.account_peak,
                       bar_time=s.last_bar_time)


def bar_for(step: BarStep, price: Decimal, index: int) -> Bar:
    open_ = price + step.open_ticks * TICK
    close = price + step.close_ticks * TICK
    reach = step.reach_ticks * TICK
    ts = int((START + timedelta(minutes=index)).timestamp()) * 1_000_000_000
    return Bar(SYMBOL, "1m", ts, float(open_), float(max(open_, close) + reach),
               float(min(open_, close) - reach), float(close), 100.0)


def client_id(prefix: str, step_index: int, step: OrderStep, earlier: list[str]) -> str:
    if step.reuse_id is not None and earlier:
        return earlier[-1 - step.reuse_id % len(earlier)]
    return f"{prefix}-{step_index}"


@dataclass
class Judged:
    """What the oracle said of one order and what became of it."""

    wanted: Wanted
    expected: frozenset[str]  # the oracle's breaches before the decision
    code: str  # the engine's verdict code
    fix: str
    allowed: bool


@dataclass
class BrokerSide:
    """The requests a broker received, each judged by the oracle at the moment it came."""

    sent: list[Sent] = field(default_factory=list)
    breaches_at_send: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    @property
    def entry_ids(self) -> frozenset[str]:
        return frozenset(x.client_order_id for x in self.sent if not x.reducing)

    def receive(self, order: Wanted, s: Situation, position: int,
                working: list[Working]) -> None:
        found = breaches(order, s, position, working, self.sent, self.entry_ids)
        self.breaches_at_send.append((order.client_order_id, frozenset(found)))
        self.sent.append(Sent(order.client_order_id, s.now, order.side, order.qty,
                              order.order_type, order.price,
                              is_reducing(order, position, working)))


class RecordingBroker:
    """A paper broker (its own in-memory book) behind a recorder: every request that
    reaches it is judged by the oracle first, with the book as it stands at that moment."""

    name = "paper"

    def __init__(self, inner: PaperBroker, judge: Callable[[OrderRequest], None]) -> None:
        self.inner = inner
        self.judge = judge
        self.received: list[OrderRequest] = []
        self.reject_next = False

    def book(self) -> tuple[int, list[Working]]:
        working = [Working(o.client_order_id, o.side, o.qty - o.filled_qty)
                   for o in self.inner.open_orders(SYMBOL)]
        return self.inner.position(SYMBOL).qty, working

    def submit(self, request: OrderRequest) -> Ack:
        self.received.append(request)
        self.judge(request)
        if self.reject_next:
            self.reject_next = False
            raise BrokerRejected("TEST_REJECT", "refused by the test broker")
        return self.inner.submit(request)

    def cancel(self, client_order_id: str) -> OrderReport | None:
        return self.inner.cancel(client_order_id)

    def query_order(self, client_order_id: str) -> OrderReport | None:
        return self.inner.query_order(client_order_id)

    def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        return self.inner.open_orders(symbol)

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        return self.inner.fills(since)

    def position(self, symbol: str) -> PositionReport:
        return self.inner.position(symbol)

    def flatten(self, symbol: str, client_order_id: str) -> Ack | None:
        raise AssertionError("the order manager never flattens by itself")


def write_gate(engine: Engine, bot_id: str, account_id: str, gate: Gate) -> None:
    from botwarden.store.db import write_transaction
    from botwarden.trading.order_store import accounts, bots

    with write_transaction(engine) as conn:
        conn.execute(sa.update(bots).where(bots.c.id == bot_id).values(
            stage=gate.stage.value, kill_state=gate.kill_state.value,
            trading_state=gate.trading_state.value, is_trading_enabled=gate.live_trading_on))
        conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(
            kill_switch_engaged=gate.account_kill_switch))


def other_contracts(seq: OrderSequence) -> int:
    return abs(seq.other_held) + seq.other_working


def engine_kill_state(gate: Gate) -> KillState:
    """The kill state the order manager hands the engine: the account switch halts a bot
    that is not hard-killed already (OrderManager._bot_risk)."""
    if gate.account_kill_switch and gate.kill_state in (KillState.NONE, KillState.SOFT_KILLED):
        return KillState.HARD_KILLED
    return gate.kill_state

