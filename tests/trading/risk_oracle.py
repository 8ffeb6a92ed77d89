"""An independent oracle of the pre-trade rules, written from domain.md's "Risk engine"
table for the risk property tests. It never calls `domain.risk`: it recomputes each rule
from what a broker would see (the position it holds, the orders working there, the requests
it has received) and from the facts the runner had at the decision.

`breaches(...)` answers every rule an order would break, not only the first: an order may
reach the broker only when the set is empty, and a refusal's reason code must be in it.

Where the table is silent the oracle takes these readings (each one a risk argument, not a
copy of the engine's code):
- an order is *risk-reducing* when it shrinks the absolute position even if every working
  order on its side fills before it; a reducing order is no new entry;
- MAX_POSITION, MAX_DAILY_LOSS, MAX_DRAWDOWN, the pre-close window, NEWS_BLACKOUT and
  ACCOUNT_BREACH refuse new risk, so they never refuse a reducing order; nor does
  TRADING_DISABLED (live trading switched off must not trap a bot in its position);
- HARD_KILLED, QUARANTINED, a HALTED trading state and the account kill switch (which halts
  every bot of the account) admit only the system's own flatten, and only if it reduces;
  SOFT_KILLED and REDUCING admit any reducing order;
- the system's reducing flatten runs on stale data (the stale-data detector is one of the
  things that calls for it); a closed market still refuses it;
- "identical order" means same side, quantity, type and price and the same intent (a
  reversal's exit and its new entry have the same side and size on purpose);
- a limit order with no last trade price cannot be collared: STALE_DATA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from botwarden.domain.kill import KillState
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.stages import Stage
from botwarden.domain.trading import OrderType, Side, TradingState

RUNNER_STAGES = (Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE)
CANARY_ORDER_CAP = 1
ACCOUNT_DRAWDOWN_PCT = Decimal(30)
ACCOUNT_FLOOR_PCT = Decimal(10)


@dataclass(frozen=True, slots=True)
class Wanted:
    """An order the runner wants to send."""

    client_order_id: str
    side: Side
    qty: int
    order_type: OrderType
    price: Decimal | None = None  # the limit price of a LIMIT, the stop price of a STOP
    system_flatten: bool = False


@dataclass(frozen=True, slots=True)
class Working:
    """An order resting at the broker."""

    client_order_id: str
    side: Side
    remaining: int


@dataclass(frozen=True, slots=True)
class Sent:
    """A request the broker received, with what it was when it was sent."""

    client_order_id: str
    at: datetime
    side: Side
    qty: int
    order_type: OrderType
    price: Decimal | None
    reducing: bool


@dataclass(frozen=True, slots=True)
class Situation:
    """The facts at the decision: the bot's states, the market, the money, the account."""

    stage: Stage
    kill_state: KillState
    account_kill_switch: bool
    trading_state: TradingState
    live_trading_on: bool
    limits: RiskLimits | None
    now: datetime
    last_price: Decimal | None
    last_bar_time: datetime | None
    bar_seconds: int
    session_open: bool
    minutes_to_close: float | None
    minutes_to_event: float | None
    daily_pnl: Decimal
    equity: Decimal
    equity_peak: Decimal
    capital: Decimal
    account_start: Decimal
    account_equity: Decimal
    account_peak: Decimal
    account_cap: int | None
    other_bots_contracts: int  # held plus working entries of the account's other bots


def direction(side: Side) -> int:
    return 1 if side is Side.BUY else -1


def is_reducing(order: Wanted, position: int, working: Sequence[Working]) -> bool:
    if position == 0 or direction(order.side) * position > 0:
        return False
    ahead = sum(o.remaining for o in working if o.side is order.side)
    return ahead + order.qty <= abs(position)


def _percent_below(value: Decimal, peak: Decimal) -> Decimal:
    return (peak - value) / peak * 100 if peak > 0 else Decimal(0)


def breaches(order: Wanted, s: Situation, position: int, working: Sequence[Working],
             sent: Sequence[Sent], entry_ids: frozenset[str]) -> set[str]:
    """Every rule `order` breaks. `working` and `sent` are the broker's side of this bot;
    `entry_ids` names the sent orders that were new entries (not reducing) when sent."""
    reducing = is_reducing(order, position, working)
    flatten_ok = order.system_flatten and reducing
    found: set[str] = set()
    if order.qty <= 0:
        found.add("INVALID_ORDER")
    halted_by_kill = (s.kill_state in (KillState.HARD_KILLED, KillState.QUARANTINED)
                      or s.account_kill_switch)
    if halted_by_kill and not flatten_ok:
        found.add("KILLED")
    if s.kill_state is KillState.SOFT_KILLED and not reducing:
        found.add("KILLED")
    if s.trading_state is TradingState.HALTED and not flatten_ok:
        found.add("TRADING_HALTED")
    if s.trading_state is TradingState.REDUCING and not reducing:
        found.add("TRADING_REDUCING")
    if s.stage in (Stage.CANARY, Stage.LIVE) and not s.live_trading_on and not reducing:
        found.add("TRADING_DISABLED")
    if s.stage not in RUNNER_STAGES:
        found.add("BOT_RETIRED")
    if s.limits is None:
        found.add("NO_LIMIT_CONFIGURED")
        return found
    found |= _limit_breaches(order, s, s.limits, position, working, reducing, entry_ids)
    found |= _flow_breaches(order, s, s.limits, sent, reducing)
    found |= _market_breaches(order, s, s.limits, reducing, flatten_ok)
    return found


def _limit_breaches(order: Wanted, s: Situation, limits: RiskLimits, position: int,
                    working: Sequence[Working], reducing: bool,
                    entry_ids: frozenset[str]) -> set[str]:
    found: set[str] = set()
    cap = limits.max_contracts_per_order
    if s.stage is Stage.CANARY:
        cap = min(cap, CANARY_ORDER_CAP)
    if order.qty > cap:
        found.add("MAX_ORDER_SIZE")
    if reducing:
        return found
    # The worst case: every working order on this side fills, then this one.
    ahead = sum(o.remaining for o in working if o.side is order.side)
    if abs(position + direction(order.side) * (ahead + order.qty)) > limits.max_position_contracts:
        found.add("MAX_POSITION")
    if s.account_cap is not None:
        own_entries = sum(o.remaining for o in working if o.client_order_id in entry_ids)
        total = s.other_bots_contracts + abs(position) + own_entries + order.qty
        if total > s.account_cap:
            found.add("MAX_POSITION")
    loss = -s.daily_pnl
    if loss >= limits.max_daily_loss_usd or (
            s.capital > 0 and loss >= s.capital * limits.max_daily_loss_pct / 100):
        found.add("MAX_DAILY_LOSS")
    if _percent_below(s.equity, s.equity_peak) >= limits.max_drawdown_pct:
        found.add("MAX_DRAWDOWN")
    return found


def _flow_breaches(order: Wanted, s: Situation, limits: RiskLimits, sent: Sequence[Sent],
                   reducing: bool) -> set[str]:
    found: set[str] = set()
    ages = [(s.now - x.at).total_seconds() for x in sent]
    if sum(1 for age in ages if 0 <= age < 1) >= limits.max_orders_per_second:
        found.add("ORDER_RATE")
    if sum(1 for age in ages if 0 <= age < 60) >= limits.max_orders_per_minute:
        found.add("ORDER_RATE")
    if any(x.client_order_id == order.client_order_id for x in sent):
        found.add("DUPLICATE_ORDER")
    for x, age in zip(sent, ages, strict=True):
        if (0 <= age < 1 and (x.side, x.qty, x.order_type, x.price, x.reducing)
                == (order.side, order.qty, order.order_type, order.price, reducing)):
            found.add("DUPLICATE_ORDER")
    if order.order_type is OrderType.LIMIT:
        assert order.price is not None
        if s.last_price is None:
            found.add("STALE_DATA")
        elif abs(order.price - s.last_price) > s.last_price * limits.price_collar_pct / 100:
            found.add("PRICE_COLLAR")
    return found


def _market_breaches(order: Wanted, s: Situation, limits: RiskLimits, reducing: bool,
                     flatten_ok: bool) -> set[str]:
    found: set[str] = set()
    stale = s.last_bar_time is None or (
        (s.now - s.last_bar_time).total_seconds() > 2 * s.bar_seconds)
    if stale and not flatten_ok:
        found.add("STALE_DATA")
    if not s.session_open:
        found.add("OUTSIDE_SESSION")
    if reducing:
        return found
    if s.minutes_to_close is not None and s.minutes_to_close <= limits.flatten_before_close_minutes:
        found.add("OUTSIDE_SESSION")
    if s.minutes_to_event is not None and s.minutes_to_event <= limits.news_blackout_minutes:
        found.add("NEWS_BLACKOUT")
    if (_percent_below(s.account_equity, s.account_peak) >= ACCOUNT_DRAWDOWN_PCT
            or s.account_equity < s.account_start * ACCOUNT_FLOOR_PCT / 100):
        found.add("ACCOUNT_BREACH")
    return found
