"""What a runner does with one bar: the same strategy kernel as the backtest, the same
decision rules as its fill kernel, orders through the order manager.

For bar i (closed):
1. a decision deferred while the market was closed is sent first (it meets this bar's open);
2. a simulated broker sees the bar (`on_bar`) and its fills are applied once;
3. the strategy's kernel runs on the bar, from its saved state, giving target[i];
4. the decision for the next bar follows research.fill_kernel exactly: a target that
   changed clears the latch a forced exit set; inside the no-hold window before the close
   the wanted position is flat; an exit (after cancelling its bracket) precedes an entry;
   an entry carries the bot's stop-loss and profit target as a bracket;
5. the state is saved with the bar, so a restart resumes after it.

Client order ids are fixed by the bot, the bar and the leg, so a bar replayed after a crash
names the same intents again and nothing is sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from botwarden.data.calendar import SessionCalendar
from botwarden.data.econ_calendar import EconEvent, blackout
from botwarden.data.providers.base import Bar
from botwarden.domain.instruments import Instrument
from botwarden.domain.ledger import unrealized as unrealized_pnl
from botwarden.domain.orders import client_id_prefix
from botwarden.domain.risk import MarketFacts, RiskVerdict, evaluate_bands
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.trading import OrderStatus, OrderType, Side, TradingState
from botwarden.research.strategies.base import Strategy
from botwarden.research.ticks import TickBars
from botwarden.trading import crashpoints, intents
from botwarden.trading.brokers.base import (
    PROFIT_TARGET_SUFFIX,
    STOP_LOSS_SUFFIX,
    BrokerDisconnected,
    BrokerTimeout,
    FillReport,
)
from botwarden.trading.managed_exits import MANAGED_STOP_SUFFIX, MANAGED_TARGET_SUFFIX
from botwarden.trading.order_manager import OrderManager, Placed, RiskContext
from botwarden.trading.order_store import NewOrder

NO_SESSION = np.iinfo(np.int64).min
BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"  # a bar whose fills the broker could not give
# Blind bars in a row a runner rides out; at the next one its error ends the runner, and the
# supervisor's retries and circuit breaker (an open circuit is a kill trigger) take over.
BLIND_BARS_LIMIT = 5
# Fills of these orders are forced exits (a bracket's, native or managed by us).
FORCED_EXIT_SUFFIXES = (STOP_LOSS_SUFFIX, PROFIT_TARGET_SUFFIX, MANAGED_STOP_SUFFIX,
                        MANAGED_TARGET_SUFFIX)


@dataclass
class Money:
    """The bot's figures the risk engine reads, kept current from fills and marks."""

    capital: Decimal
    realized_before_today: Decimal
    daily_realized: Decimal
    equity_peak: Decimal
    account_equity: Decimal
    account_peak: Decimal
    session: int = NO_SESSION


@dataclass
class RunnerCore:
    bot_id: str
    strategy: Strategy
    instrument: Instrument
    calendar: SessionCalendar
    manager: OrderManager
    limits: RiskLimits | None
    money: Money
    size: int = 1
    bar_seconds: int = 60
    events: list[EconEvent] = field(default_factory=list)
    # The fills `on_bar` is given come from a simulated broker's match of that bar: each is
    # new (a fill polled from a real broker may have been applied before).
    fresh_fills: bool = False
    state: np.ndarray[Any, Any] = field(init=False)
    latched: bool = False
    previous_target: int = 0
    deferred_target: int | None = None
    last_bar: Bar | None = None
    bars_seen: int = 0
    orders_sent: int = 0
    # Why the broker's fills could not be read, from that bar until a read succeeds.
    fills_unknown: str | None = None
    blind_bars: int = 0  # bars in a row whose fills could not be read

    def __post_init__(self) -> None:
        self.state = self.strategy.initial_state()

    # ---- state ----

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_to_json(self.state), "latched": self.latched,
                "previous_target": self.previous_target,
                "deferred_target": self.deferred_target, "bars_seen": self.bars_seen}

    def restore(self, saved: dict[str, Any]) -> bool:
        """Resume from a saved state; False when there is none usable (warm up instead)."""
        if not saved.get("strategy"):
            return False
        self.state = self.strategy.state_from_json(saved["strategy"])
        self.latched = bool(saved.get("latched", False))
        self.previous_target = int(saved.get("previous_target", 0))
        deferred = saved.get("deferred_target")
        self.deferred_target = None if deferred is None else int(deferred)
        self.bars_seen = int(saved.get("bars_seen", 0))
        return True

    def warm_up(self, history: TickBars, sessions: np.ndarray[Any, Any]) -> int:
        """Run the kernel over bars before the start; their targets are history, not orders.
        The last one is the position the strategy holds, as the backtest would."""
        if len(history) == 0:
            return 0
        targets = self.strategy.run(history, self.state, sessions)
        self.previous_target = int(targets[-1])
        return len(history)

    # ---- one bar ----

    def target_for(self, bar: Bar) -> int:
        tick = self.instrument.tick_size
        ticks = np.array([[round(p / float(tick)) for p in (bar.open, bar.high, bar.low,
                                                              bar.close)]], dtype=np.int64)
        one = TickBars(np.array([bar.ts], dtype=np.int64), ticks[:, 0], ticks[:, 1],
                       ticks[:, 2], ticks[:, 3], np.array([bar.volume], dtype=np.float64),
                       tick)
        session = np.array([self.calendar.session_id(bar.ts)], dtype=np.int64)
        return int(self.strategy.run(one, self.state, session)[0])

    def market_facts(self, now: datetime, bar: Bar) -> MarketFacts:
        minutes = self.limits.news_blackout_minutes if self.limits else 10
        event = blackout(self.events, now, minutes) if self.events else None
        distance = None if event is None else abs((event.at - now).total_seconds()) / 60
        return MarketFacts(
            now=now, last_price=Decimal(str(bar.close)), last_bar_time=bar.at,
            bar_seconds=self.bar_seconds, session_open=self.calendar.is_open(now),
            minutes_to_close=self.calendar.minutes_to_close(now) if self.calendar.is_open(now)
            else None, minutes_to_high_impact_event=distance)

    def in_no_hold_window(self, ts: datetime) -> bool:
        if self.limits is not None and not self.limits.flatten_intraday:
            return False
        minutes = self.limits.flatten_before_close_minutes if self.limits else 15
        if minutes <= 0 or not self.calendar.is_open(ts):
            return False
        return self.calendar.minutes_to_close(ts) <= minutes

    def on_bar(self, bar: Bar, fills_for_bar: Any) -> list[Placed]:
        """Process one closed bar. `fills_for_bar(bar)` feeds a simulated broker and returns
        its new fills (a real broker's fills are polled instead)."""
        placed: list[Placed] = []
        if self.last_bar is not None and bar.ts <= self.last_bar.ts:
            return placed  # replayed after a restart: already processed
        if self.deferred_target is not None:
            target, self.deferred_target = self.deferred_target, None
            with self.manager.transitions_deferred():
                placed += self._decide(target, bar.at, bar, now=bar.at)
        try:
            reports = fills_for_bar(bar)
        except (BrokerTimeout, BrokerDisconnected) as error:
            self.blind_bars += 1
            if self.blind_bars > BLIND_BARS_LIMIT:
                raise
            return placed + self._blind_bar(bar, error)
        self.fills_unknown, self.blind_bars = None, 0
        crashpoints.reached(crashpoints.BAR_MATCHED)
        # The bar's intents commit before its first order is sent; its fills, with an
        # in-process broker's book, in the transaction after the sends (bar_transaction).
        with self.manager.one_transaction():
            applied = self.manager.on_fills(reports, new=self.fresh_fills)
            if self.manager.unsettled:
                applied += self.manager.resolve_open()
            self._roll_day(bar.at)  # the bar's fills count for the bar's trading day
            self._note_fills(applied)
            target = self.target_for(bar)
            self.last_bar = bar
            self.bars_seen += 1
            close_time = bar.at + timedelta(seconds=self.bar_seconds)
            if self.calendar.is_open(close_time):
                with self.manager.transitions_deferred():
                    placed += self._decide(target, close_time, bar, now=close_time)
            else:
                self.deferred_target = target  # the market is closed: decide at its next open
        return placed

    def _blind_bar(self, bar: Bar, error: BrokerTimeout | BrokerDisconnected) -> list[Placed]:
        """The broker's fills could not be read (a timeout, the broker unreachable or
        refusing us): the position is not known, so this bar orders nothing, and a no-trade
        trace says why. The strategy still sees the bar (its state follows every bar, as in
        the backtest) and the trading day rolls; the watchdog asks for the fills again every
        second (fill_poll), and the next bar decides on what they are then."""
        self.fills_unknown = f"{error.code}: {error.message}"
        self._roll_day(bar.at)
        target = self.target_for(bar)
        self.last_bar = bar
        self.bars_seen += 1
        close_time = bar.at + timedelta(seconds=self.bar_seconds)
        if not self.calendar.is_open(close_time):
            self.deferred_target = target  # decided at the next open, as on any closed bar
            return []
        self._follow_target(target)
        intents.record_no_trade(
            self.manager, bar.at, BROKER_UNAVAILABLE, f"the broker's fills could not be read "
            f"({self.fills_unknown}): the position is unknown, so this bar orders nothing",
            "Nothing to do if it passes: the runner asks again every second and decides at "
            "the next bar. If it lasts, check the broker's status and the integration's "
            "health (GET /api/integrations).",
            {"target": target, "close": bar.close, "strategy": self.strategy.kind})
        return []

    def _follow_target(self, wanted_side: int) -> None:
        """A target that changed clears the latch a forced exit set (the fill kernel's rule)."""
        if wanted_side != self.previous_target:
            self.latched = False
            self.previous_target = wanted_side

    def on_fills_between_bars(self, reports: list[FillReport]) -> list[Any]:
        """A real broker's fills learnt between bars (fill_poll): applied now, so the order
        manager places a filled entry's protective exits, or cancels a filled exit's twin,
        without waiting for the next bar. They count for the trading day of their own time
        (a live feed's bars run on the same clock), as a bar's fills count for its day."""
        if not reports:
            return []
        applied = self.manager.on_fills(reports, new=False)
        latest = max(report.at for report in reports)
        if self.last_bar is None or latest >= self.last_bar.at:
            self._roll_day(latest)
        self._note_fills(applied)
        return applied

    def _note_fills(self, applied: list[Any]) -> None:
        for item in applied:
            client_id = item.fill.client_order_id
            if client_id.endswith(FORCED_EXIT_SUFFIXES):
                self.latched = True  # a forced exit: wait for the strategy to change its mind
            if item.closed_pnl is not None:
                self.money.daily_realized += item.closed_pnl

    def _decide(self, wanted_side: int, next_open: datetime, bar: Bar, now: datetime,
                ) -> list[Placed]:
        """The fill kernel's step 1, for the bar opening at `next_open`."""
        self._follow_target(wanted_side)
        flatten = self.in_no_hold_window(next_open)
        wanted = 0 if (self.latched or flatten) else wanted_side * self.size
        symbol = self.instrument.symbol
        position = self.manager.position(symbol)
        stamp = f"{client_id_prefix(self.bot_id)}{int(next_open.timestamp())}"
        # The risk context costs calendar and event lookups: built only for a bar that orders.
        needs_order = (position != 0 and (wanted == 0 or (wanted > 0) != (position > 0))) \
            or (position == 0 and wanted != 0)
        ctx = self._risk_context(now, bar, wanted_side, flatten) if needs_order else None
        chain: list[NewOrder] = []
        if position != 0 and (wanted == 0 or (wanted > 0) != (position > 0)):
            self.manager.cancel_many([leg.client_order_id
                                      for leg in self.manager.working_children(symbol)])
            reason = "SESSION_FLATTEN" if flatten and wanted_side * position > 0 else "SIGNAL"
            chain.append(NewOrder(f"{stamp}-x", symbol, Side.SELL if position > 0 else Side.BUY,
                                  abs(position), OrderType.MARKET, reason=reason))
            position = 0
        if flatten:
            self.latched = True
        if position == 0 and wanted != 0:
            chain.append(NewOrder(f"{stamp}-e", symbol, Side.BUY if wanted > 0 else Side.SELL,
                                  abs(wanted), OrderType.MARKET, reason="SIGNAL"))
        if not chain:
            return []
        assert ctx is not None
        return self._place(chain, ctx)

    def _place(self, chain: list[NewOrder], ctx: RiskContext) -> list[Placed]:
        """The exit (if any), then the entry (if any): persisted together, the entry sent
        only if the exit went (no entry on top of the position)."""
        placed: list[Placed] = []
        fresh = []
        for order in chain:
            if order.client_order_id in self.manager.seen_ids:
                # Placed before a restart: the intent exists; resolve_open settles it.
                placed.append(Placed(order.client_order_id, OrderStatus.PENDING,
                                     _ALREADY_PLACED))
            else:
                fresh.append(order)
        if fresh:
            placed += self.manager.place_chain(fresh, ctx)
        for result in placed:
            if result.status is not None and result.verdict is not _ALREADY_PLACED \
                    and result.status is not OrderStatus.CANCELED:
                self.orders_sent += 1
            self._note_fills(list(result.fills))
        return placed

    def _figures(self, now: datetime, bar: Bar) -> tuple[Decimal, Decimal]:
        """(daily PnL, equity) at `now`, marked at the bar's close; rolls the trading day."""
        money = self.money
        self._roll_day(now)
        book = self.manager.books.get(self.instrument.symbol)
        unrealized = Decimal(0)
        if book is not None and book.qty:
            unrealized = unrealized_pnl(book, Decimal(str(bar.close)),
                                        self.instrument.point_value)
        equity = money.capital + money.realized_before_today + money.daily_realized + unrealized
        money.equity_peak = max(money.equity_peak, equity)
        return money.daily_realized + unrealized, equity

    def _risk_context(self, now: datetime, bar: Bar, target: int, flatten: bool) -> RiskContext:
        money = self.money
        daily_pnl, equity = self._figures(now, bar)
        return RiskContext(
            market=self.market_facts(now, bar), daily_pnl=daily_pnl,
            equity=equity, equity_peak=money.equity_peak, capital=money.capital,
            account_equity=money.account_equity, account_peak=money.account_peak,
            bar_time=bar.at, detail={"target": target, "no_hold_window": flatten,
                                     "close": bar.close, "strategy": self.strategy.kind})

    def breaches_limits(self, bar: Bar) -> bool:
        """True when this bar's figures cross a band of the post-trade monitor (REDUCING or
        worse) or the daily loss limit in dollars: the caller then runs the monitor now,
        rather than at its next scheduled pass."""
        daily_pnl, equity = self._figures(bar.at + timedelta(seconds=self.bar_seconds), bar)
        verdict = evaluate_bands(daily_pnl, self.money.capital, equity, self.money.equity_peak)
        if verdict.trading_state is not TradingState.ACTIVE:
            return True
        return self.limits is not None and -daily_pnl >= self.limits.max_daily_loss_usd

    def _roll_day(self, when: datetime) -> None:
        """Start the trading day of `when` (its session; NO_SESSION while closed) if the
        figures are still on another: what was realised moves to the days before."""
        money = self.money
        session = self._session_of(when)
        if session != money.session:
            money.realized_before_today += money.daily_realized
            money.daily_realized = Decimal(0)
            money.session = session

    def _session_of(self, when: datetime) -> int:
        day = self.calendar.session_of(when)
        return NO_SESSION if day is None else day.toordinal()


_ALREADY_PLACED = RiskVerdict(True, "ALREADY_PLACED", "the intent was persisted before a restart")
