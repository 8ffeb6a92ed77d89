"""Two ways to play one generated sequence, each judged by the oracle:

- `ModelRun`: `check_order` alone, fed the way the order manager feeds it, on a model of
  the broker's book (cheap: thousands of sequences a second);
- `ManagerRun`: the real `OrderManager.place` on a database, under its write transaction,
  reading the kill state, the account switch and the account cap from the store, sending to
  a paper broker behind `RecordingBroker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.domain.jobs import JobType
from botwarden.domain.risk import (
    AccountRisk,
    BotRisk,
    OrderIntent,
    check_order,
    order_signature,
    reduces_position,
)
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.ids import new_id
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.trading import order_store as store
from botwarden.trading.brokers.base import OrderRequest
from botwarden.trading.brokers.paper import PaperBroker
from botwarden.trading.brokers.state_store import MemoryStateStore
from botwarden.trading.order_manager import OrderManager
from tests.trading.risk_harness import (
    START,
    SYMBOL,
    BrokerSide,
    Judged,
    RecordingBroker,
    bar_for,
    client_id,
    engine_kill_state,
    market_facts,
    new_prefix,
    other_contracts,
    risk_context,
    situation,
    wanted,
    write_gate,
)
from tests.trading.risk_oracle import Situation, Wanted, Working, breaches
from tests.trading.risk_sequences import (
    ACCOUNT_PEAK,
    ACCOUNT_START,
    BarStep,
    CancelStep,
    GateStep,
    OrderSequence,
    OrderStep,
)


def _intent(want: Wanted) -> OrderIntent:
    return OrderIntent(want.client_order_id, want.side, want.qty, want.order_type,
                       want.price if want.order_type is OrderType.LIMIT else None,
                       want.price if want.order_type is OrderType.STOP else None,
                       want.system_flatten)


@dataclass
class _ModelOrder:
    client_order_id: str
    side: Side
    remaining: int
    order_type: OrderType
    price: Decimal | None
    reduce_only: bool


class ModelRun:
    """The sequence through `check_order`, with the bookkeeping the order manager keeps
    (position, working orders, send times, last signature, seen ids) done here."""

    def __init__(self, seq: OrderSequence) -> None:
        self.seq = seq
        self.gate = seq.gate
        self.now = START
        self.position = 0
        self.working: list[_ModelOrder] = []
        self.side = BrokerSide()
        self.judged: list[Judged] = []
        self.sent_times: list[datetime] = []
        self.seen: set[str] = set()
        self.last_signature: tuple[str, int, str, str] | None = None
        self.last_time: datetime | None = None
        self.recent_signatures: list[tuple[tuple[str, int, str, str], datetime]] = []
        self.ids: list[str] = []

    def run(self) -> ModelRun:
        for index, step in enumerate(self.seq.steps):
            if isinstance(step, OrderStep):
                self._order(index, step)
            elif isinstance(step, BarStep):
                self._bar(step)
            elif isinstance(step, CancelStep) and self.working:
                self.working.pop(step.pick % len(self.working))
            elif isinstance(step, GateStep):
                self.gate = step.gate
        return self

    def _order(self, index: int, step: OrderStep) -> None:
        self.now += timedelta(milliseconds=step.advance_ms)
        s = situation(self.seq, self.gate, step, self.now, other_contracts(self.seq))
        want = wanted(step, client_id("m", index, step, self.ids), self.seq.price)
        self.ids.append(want.client_order_id)
        working = [Working(o.client_order_id, o.side, o.remaining) for o in self.working]
        expected = frozenset(breaches(want, s, self.position, working, self.side.sent,
                                      self.side.entry_ids))
        intent = _intent(want)
        bot = BotRisk(
            stage=s.stage, kill_state=engine_kill_state(self.gate),
            is_trading_enabled=s.live_trading_on, position=self.position,
            working_buy=sum(o.remaining for o in self.working if o.side is Side.BUY),
            working_sell=sum(o.remaining for o in self.working if o.side is Side.SELL),
            daily_pnl=s.daily_pnl, equity=s.equity, equity_peak=s.equity_peak,
            capital=s.capital,
            recent_order_times=tuple(t for t in self.sent_times
                                     if (self.now - t).total_seconds() < 60),
            last_order_signature=self.last_signature, last_order_time=self.last_time,
            trading_state=s.trading_state,
            recent_signatures=tuple((sig, at) for sig, at in self.recent_signatures
                                    if (self.now - at).total_seconds() < 1))
        entries = sum(o.remaining for o in self.working if not o.reduce_only)
        account = AccountRisk(ACCOUNT_START, s.account_equity, ACCOUNT_PEAK,
                              open_contracts=s.other_bots_contracts + abs(self.position)
                              + entries, max_contracts=self.seq.account_cap)
        verdict = check_order(intent, bot, account, market_facts(s), self.seq.limits,
                              frozenset(self.seen))
        self.judged.append(Judged(want, expected, verdict.code, verdict.fix, verdict.allowed))
        if not verdict.allowed:
            return
        reducing = reduces_position(intent, bot)
        self.side.receive(want, s, self.position, working)
        self.seen.add(want.client_order_id)
        self.last_signature = order_signature(intent, reducing)
        self.last_time = self.now
        self.recent_signatures.append((self.last_signature, self.now))
        self.sent_times.append(self.now)
        if not step.broker_rejects:
            self.working.append(_ModelOrder(want.client_order_id, want.side, want.qty,
                                            want.order_type, want.price, reducing))

    def _bar(self, step: BarStep) -> None:
        """Market orders fill; limits and stops fill when the bar trades through them."""
        bar = bar_for(step, self.seq.price, 0)
        high, low = Decimal(str(bar.high)), Decimal(str(bar.low))
        still: list[_ModelOrder] = []
        for o in self.working:
            buy = o.side is Side.BUY
            price = o.price if o.price is not None else Decimal(0)
            fills = (o.order_type is OrderType.MARKET
                     or (o.order_type is OrderType.LIMIT and (low <= price if buy
                                                              else high >= price))
                     or (o.order_type is OrderType.STOP and (high >= price if buy
                                                             else low <= price)))
            if fills:
                self.position += o.remaining if buy else -o.remaining
            else:
                still.append(o)
        self.working = still


class ManagerRun:
    """The sequence through the real order manager: a fresh account, bot and runner job
    per sequence; an account neighbour bot holding `other_held` and working
    `other_working` entry contracts; a paper broker with its own book."""

    def __init__(self, engine: Engine, seq: OrderSequence) -> None:
        self.engine = engine
        self.seq = seq
        self.gate = seq.gate
        self.now = START
        self.prefix = new_prefix()
        self.account_id, self.bot_id, job_id = self._seed()
        self.inner = PaperBroker(f"paper:{self.bot_id}", MemoryStateStore())
        self.broker = RecordingBroker(self.inner, self._judge)
        self.side = BrokerSide()
        self.manager = OrderManager(engine, bot_id=self.bot_id, job_id=job_id,
                                    broker=self.broker, mode="PAPER", source_type="PAPER",
                                    limits=seq.limits)
        self.judged: list[Judged] = []
        self.ids: list[str] = []
        self.bars = 0
        self._current: tuple[Wanted, Situation] | None = None

    def _seed(self) -> tuple[str, str, str]:
        gate, seq = self.gate, self.seq
        account_id, bot_id, other_id = new_id(), new_id(), new_id()
        with write_transaction(self.engine) as conn:
            conn.execute(sa.insert(store.accounts).values(
                id=account_id, name="risk-sequences", starting_capital=ACCOUNT_START,
                max_contracts=seq.account_cap, kill_switch_engaged=gate.account_kill_switch))
            for id_, stage, kill, trading, live in (
                    (bot_id, gate.stage.value, gate.kill_state.value, gate.trading_state.value,
                     gate.live_trading_on),
                    (other_id, "PAPER", "NONE", "ACTIVE", False)):
                conn.execute(sa.insert(store.bots).values(
                    id=id_, account_id=account_id, name=f"{self.prefix}-bot",
                    strategy_kind="sma_cross", strategy_params={}, symbol=SYMBOL,
                    timeframe="1m", stage=stage, kill_state=kill, trading_state=trading,
                    is_trading_enabled=live))
            if seq.other_held:
                conn.execute(sa.insert(store.positions).values(
                    id=new_id(), bot_id=other_id, symbol=SYMBOL, qty=seq.other_held,
                    avg_price=seq.price, lots=[[seq.other_held, str(seq.price)]],
                    updated_at=START))
            if seq.other_working:
                store.insert_order(conn, other_id, None, store.NewOrder(
                    f"{self.prefix}-other", SYMBOL, Side.BUY, seq.other_working,
                    OrderType.MARKET), broker="paper", mode="PAPER", now=START,
                    status=OrderStatus.WORKING)
            job_id = job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                                          actor="test", bot_id=bot_id, now=START)
            conn.execute(sa.insert(store.runner_states).values(
                bot_id=bot_id, job_id=job_id, state={}, updated_at=START))
        return account_id, bot_id, job_id

    def _judge(self, request: OrderRequest) -> None:
        assert self._current is not None, "a request reached the broker outside place()"
        want, s = self._current
        assert request.client_order_id == want.client_order_id
        position, working = self.broker.book()
        self.side.receive(want, s, position, working)

    def run(self) -> ManagerRun:
        for index, step in enumerate(self.seq.steps):
            if isinstance(step, OrderStep):
                self._order(index, step)
            elif isinstance(step, BarStep):
                self.bars += 1
                fills = self.inner.on_bar(SYMBOL, bar_for(step, self.seq.price, self.bars))
                self.manager.on_fills(fills)
            elif isinstance(step, CancelStep):
                working = self.inner.open_orders(SYMBOL)
                if working:
                    self.manager.cancel(working[step.pick % len(working)].client_order_id)
            elif isinstance(step, GateStep):
                self.gate = step.gate
                write_gate(self.engine, self.bot_id, self.account_id, step.gate)
        return self

    def _order(self, index: int, step: OrderStep) -> None:
        self.now += timedelta(milliseconds=step.advance_ms)
        s = situation(self.seq, self.gate, step, self.now, other_contracts(self.seq))
        want = wanted(step, client_id(self.prefix, index, step, self.ids), self.seq.price)
        self.ids.append(want.client_order_id)
        position, working = self.broker.book()
        expected = frozenset(breaches(want, s, position, working, self.side.sent,
                                      self.side.entry_ids))
        intent = _intent(want)
        self._current = (want, s)
        self.broker.reject_next = step.broker_rejects
        placed = self.manager.place(
            store.NewOrder(want.client_order_id, SYMBOL, want.side, want.qty, want.order_type,
                           intent.limit_price, intent.stop_price),
            risk_context(s), system_flatten=want.system_flatten)
        self.broker.reject_next = False
        self._current = None
        self.judged.append(Judged(want, expected, placed.verdict.code, placed.verdict.fix,
                                  placed.status is not None))
