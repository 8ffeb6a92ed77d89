"""The pre-trade risk engine: each rule denies with its code, and no allowed order ever
breaks a limit (hypothesis over random orders, positions and markets)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.kill import KillState
from botwarden.domain.risk import (
    AccountRisk,
    BotRisk,
    MarketFacts,
    OrderIntent,
    check_order,
    evaluate_bands,
    reduces_position,
    signed,
)
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.stages import Stage
from botwarden.domain.trading import OrderType, Side, TradingState

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
LIMITS = RiskLimits(max_contracts_per_order=2, max_position_contracts=3,
                    max_daily_loss_usd=Decimal(500), max_drawdown_pct=Decimal(10))
BOT = BotRisk(stage=Stage.PAPER, kill_state=KillState.NONE, is_trading_enabled=False,
              position=0, working_buy=0, working_sell=0, daily_pnl=Decimal(0),
              equity=Decimal(50000), equity_peak=Decimal(50000), capital=Decimal(50000))
ACCOUNT = AccountRisk(Decimal(50000), Decimal(50000), Decimal(50000))
MARKET = MarketFacts(now=NOW, last_price=Decimal("5000.25"), last_bar_time=NOW - timedelta(
    seconds=30), bar_seconds=60, session_open=True, minutes_to_close=300,
    minutes_to_high_impact_event=None)
BUY1 = OrderIntent("c1", Side.BUY, 1, OrderType.MARKET)


def test_a_plain_order_passes() -> None:
    assert check_order(BUY1, BOT, ACCOUNT, MARKET, LIMITS).allowed


@pytest.mark.parametrize(("change", "code"), [
    ({"bot": {"kill_state": KillState.HARD_KILLED}}, "KILLED"),
    ({"bot": {"stage": Stage.CANARY}}, "TRADING_DISABLED"),
    ({"limits": None}, "NO_LIMIT_CONFIGURED"),
    ({"order": {"qty": 3}}, "MAX_ORDER_SIZE"),
    ({"bot": {"stage": Stage.CANARY, "is_trading_enabled": True}, "order": {"qty": 2}},
     "MAX_ORDER_SIZE"),
    ({"bot": {"position": 3}}, "MAX_POSITION"),
    ({"bot": {"working_buy": 3}}, "MAX_POSITION"),
    ({"bot": {"daily_pnl": Decimal(-500)}}, "MAX_DAILY_LOSS"),
    ({"bot": {"daily_pnl": Decimal(-2500), "capital": Decimal(50000)}}, "MAX_DAILY_LOSS"),
    ({"bot": {"equity": Decimal(45000)}}, "MAX_DRAWDOWN"),
    ({"bot": {"recent_order_times": (NOW,) * 5}}, "ORDER_RATE"),
    ({"bot": {"recent_order_times": (NOW - timedelta(seconds=30),) * 30}}, "ORDER_RATE"),
    ({"seen": frozenset({"c1"})}, "DUPLICATE_ORDER"),
    ({"bot": {"last_order_signature": ("BUY", 1, "MARKET", "None"),
              "last_order_time": NOW - timedelta(milliseconds=500)}}, "DUPLICATE_ORDER"),
    ({"order": {"order_type": OrderType.LIMIT, "limit_price": Decimal("5100")}}, "PRICE_COLLAR"),
    ({"market": {"last_bar_time": NOW - timedelta(seconds=121)}}, "STALE_DATA"),
    ({"market": {"last_bar_time": None}}, "STALE_DATA"),
    ({"market": {"session_open": False}}, "OUTSIDE_SESSION"),
    ({"market": {"minutes_to_close": 15}}, "OUTSIDE_SESSION"),
    ({"market": {"minutes_to_high_impact_event": 10}}, "NEWS_BLACKOUT"),
    ({"account": {"equity": Decimal(35000)}}, "ACCOUNT_BREACH"),
    ({"account": {"equity": Decimal(4000), "equity_peak": Decimal(4000)}}, "ACCOUNT_BREACH"),
])
def test_each_rule_denies_with_its_code(change: dict, code: str) -> None:
    bot = replace(BOT, **change.get("bot", {}))
    order = replace(BUY1, **change.get("order", {}))
    market = replace(MARKET, **change.get("market", {}))
    account = replace(ACCOUNT, **change.get("account", {}))
    limits = change.get("limits", LIMITS)
    verdict = check_order(order, bot, account, market, limits, change.get("seen", frozenset()))
    assert (verdict.allowed, verdict.code) == (False, code) and verdict.fix


def test_reducing_orders_pass_where_entries_do_not() -> None:
    long_bot = replace(BOT, position=2, daily_pnl=Decimal(-600), kill_state=KillState.SOFT_KILLED)
    sell = OrderIntent("c2", Side.SELL, 2, OrderType.MARKET)
    assert check_order(sell, long_bot, ACCOUNT, replace(MARKET, minutes_to_close=5), LIMITS).allowed
    assert not check_order(BUY1, long_bot, ACCOUNT, MARKET, LIMITS).allowed
    halted = replace(long_bot, kill_state=KillState.HARD_KILLED)
    assert not check_order(sell, halted, ACCOUNT, MARKET, LIMITS).allowed
    flatten = replace(sell, is_system_flatten=True)
    stale = replace(MARKET, last_bar_time=None)
    assert check_order(flatten, halted, ACCOUNT, stale, LIMITS).allowed


def test_two_reducing_orders_cannot_flip_the_position() -> None:
    bot = replace(BOT, position=2, working_sell=2)
    assert not reduces_position(OrderIntent("c", Side.SELL, 1, OrderType.MARKET), bot)


orders = st.builds(OrderIntent, client_order_id=st.text(min_size=1, max_size=4),
                   side=st.sampled_from(list(Side)), qty=st.integers(1, 6),
                   order_type=st.just(OrderType.MARKET),
                   is_system_flatten=st.booleans())
bots = st.builds(
    BotRisk, stage=st.sampled_from([Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE]),
    kill_state=st.sampled_from(list(KillState)), is_trading_enabled=st.booleans(),
    position=st.integers(-5, 5), working_buy=st.integers(0, 4), working_sell=st.integers(0, 4),
    daily_pnl=st.decimals(-3000, 1000, places=2), equity=st.decimals(30000, 60000, places=2),
    equity_peak=st.just(Decimal(55000)), capital=st.just(Decimal(50000)))


@settings(max_examples=2000, deadline=None)
@given(order=orders, bot=bots, minutes_to_close=st.floats(0, 600), open_=st.booleans())
def test_no_allowed_order_breaks_a_limit(order: OrderIntent, bot: BotRisk,
                                         minutes_to_close: float, open_: bool) -> None:
    market = replace(MARKET, minutes_to_close=minutes_to_close, session_open=open_)
    verdict = check_order(order, bot, ACCOUNT, market, LIMITS)
    if not verdict.allowed:
        return
    assert open_ and order.qty <= LIMITS.max_contracts_per_order
    if bot.stage is Stage.CANARY:
        assert order.qty == 1
    reducing = reduces_position(order, bot)
    after = bot.position + signed(order.side, order.qty)
    if reducing:
        assert abs(after) < abs(bot.position)
    else:
        assert abs(after) <= LIMITS.max_position_contracts
        assert bot.kill_state is KillState.NONE and -bot.daily_pnl < LIMITS.max_daily_loss_usd
        assert minutes_to_close > LIMITS.flatten_before_close_minutes
    if bot.kill_state is not KillState.NONE:
        assert reducing
    if bot.stage in (Stage.CANARY, Stage.LIVE) and not bot.is_trading_enabled:
        assert reducing


@pytest.mark.parametrize(("pnl", "equity", "state", "trigger"), [
    (Decimal(0), Decimal(50000), TradingState.ACTIVE, None),
    (Decimal(-1000), Decimal(50000), TradingState.ACTIVE, None),  # 2%: warn only
    (Decimal(-1500), Decimal(50000), TradingState.REDUCING, None),
    (Decimal(-2500), Decimal(50000), TradingState.HALTED, "DAILY_LOSS_BREACH"),
    (Decimal(0), Decimal(42500), TradingState.REDUCING, None),
    (Decimal(0), Decimal(40000), TradingState.HALTED, "DD_BREACH"),
])
def test_bands(pnl: Decimal, equity: Decimal, state: TradingState, trigger: str | None) -> None:
    verdict = evaluate_bands(pnl, Decimal(50000), equity, Decimal(50000))
    assert verdict.trading_state is state and verdict.kill_trigger == trigger
