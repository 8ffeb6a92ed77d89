"""One racer of tests/trading/test_account_race.py, run in its own process: a bot of the
shared account with its own engine, order manager and paper broker, placing entries in
rounds that start together with the other racer's (a barrier), then reporting what its
broker holds and tidying up (fill, cancel or exit) before the next round."""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from botwarden.data.providers.base import Bar
from botwarden.domain.risk import MarketFacts
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.trading import OrderType, Side
from botwarden.store.db import make_engine
from botwarden.trading.brokers.paper import PaperBroker
from botwarden.trading.brokers.state_store import MemoryStateStore
from botwarden.trading.order_manager import OrderManager, RiskContext
from botwarden.trading.order_store import NewOrder

SYMBOL = "MES"
START = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
PRICE = Decimal("5000.00")
ENTRIES_PER_ROUND = 2
BARRIER_SECONDS = 120
# Only the account cap may refuse an entry here: the bot's own limits are far above it, and
# each order's market time is 2 s after the last (no rate or duplicate refusals).
LIMITS = RiskLimits(max_contracts_per_order=2, max_position_contracts=10,
                    max_daily_loss_usd=Decimal(1_000_000), max_drawdown_pct=Decimal(99),
                    max_daily_loss_pct=Decimal(100), max_orders_per_minute=100_000,
                    max_orders_per_second=10_000, news_blackout_minutes=0)


@dataclass(frozen=True, slots=True)
class Attempt:
    round: int
    client_order_id: str
    qty: int
    allowed: bool
    code: str
    message: str
    started: float  # wall clock around place(), to show the racers' calls overlapped
    ended: float


class Racer:
    def __init__(self, url: str, bot_id: str, job_id: str, seed: int) -> None:
        self.engine = make_engine(url)
        self.broker = PaperBroker(f"paper:{bot_id}", MemoryStateStore())
        self.manager = OrderManager(self.engine, bot_id=bot_id, job_id=job_id,
                                    broker=self.broker, mode="PAPER", source_type="PAPER",
                                    limits=LIMITS)
        self.bot_id = bot_id
        self.rng = random.Random(seed)
        self.now = START
        self.bars = 0
        self.attempts: list[Attempt] = []

    def context(self) -> RiskContext:
        self.now += timedelta(seconds=2)
        market = MarketFacts(now=self.now, last_price=PRICE,
                             last_bar_time=self.now - timedelta(seconds=30), bar_seconds=60,
                             session_open=True, minutes_to_close=300,
                             minutes_to_high_impact_event=None)
        capital = Decimal(50_000)
        return RiskContext(market=market, daily_pnl=Decimal(0), equity=capital,
                           equity_peak=capital, capital=capital, account_equity=capital,
                           account_peak=capital)

    def place(self, round_: int, index: int, side: Side, qty: int) -> Attempt:
        client_order_id = f"{self.bot_id[:16]}-{round_}-{index}-{side.value[0]}"
        started = time.time()
        placed = self.manager.place(NewOrder(client_order_id, SYMBOL, side, qty,
                                             OrderType.MARKET), self.context())
        return Attempt(round_, client_order_id, qty, placed.status is not None,
                       placed.verdict.code, placed.verdict.message, started, time.time())

    def enter(self, round_: int) -> None:
        for index in range(ENTRIES_PER_ROUND):
            self.attempts.append(self.place(round_, index, Side.BUY, self.rng.choice((1, 1, 2))))

    def held_and_working(self) -> tuple[int, int]:
        working = sum(o.qty - o.filled_qty for o in self.broker.open_orders(SYMBOL))
        return self.broker.position(SYMBOL).qty, working

    def bar(self) -> None:
        self.bars += 1
        ts = int((START + timedelta(minutes=self.bars)).timestamp()) * 1_000_000_000
        price = float(PRICE)
        self.manager.on_fills(self.broker.on_bar(
            SYMBOL, Bar(SYMBOL, "1m", ts, price, price + 1, price - 1, price, 100.0)))

    def tidy(self, round_: int) -> None:
        """Cancel the entries, or fill them and keep the position, trim it by one contract
        or close it: the account's open contracts go up and down between rounds."""
        action = self.rng.choice(("cancel", "hold", "trim", "close", "close"))
        if action == "cancel":
            for order in self.broker.open_orders(SYMBOL):
                self.manager.cancel(order.client_order_id)
            return
        self.bar()
        held = self.broker.position(SYMBOL).qty
        wanted = {"hold": 0, "trim": min(held, 1), "close": held}[action]
        index = 0
        while wanted > 0:  # reducing orders: the account cap never refuses them
            qty = min(wanted, LIMITS.max_contracts_per_order)
            exit_ = self.place(round_, index, Side.SELL, qty)
            assert exit_.allowed, f"a reducing exit was refused: {exit_}"
            wanted -= qty
            index += 1
        self.bar()


def race(url: str, bot_index: int, bot_id: str, job_id: str, rounds: int, barrier: Barrier,
         reports: Queue[Any]) -> None:
    """The racer's process. Each round: wait for the start, enter, report the broker's
    book, wait while the parent reads the tables, tidy up."""
    try:
        racer = Racer(url, bot_id, job_id, seed=1000 + bot_index)
        for round_ in range(rounds):
            barrier.wait(BARRIER_SECONDS)
            racer.enter(round_)
            reports.put(("book", bot_index, round_, *racer.held_and_working()))
            barrier.wait(BARRIER_SECONDS)  # entries placed: the parent reads the tables
            barrier.wait(BARRIER_SECONDS)  # read
            racer.tidy(round_)
        reports.put(("attempts", bot_index, racer.attempts))
        racer.engine.dispose()
    except BaseException:
        reports.put(("error", bot_index, traceback.format_exc()))
        barrier.abort()
        raise
