"""The pre-trade risk engine (domain.md, "Risk engine"): a pure function of (order, bot,
account, market, limits) returning allow or the first breached rule's reason code.

Every path that sends an order (backtest, paper, shadow, canary, live, the kill engine's
flatten) calls `check_order`; nothing here reads a clock, a database or a client."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from botwarden.domain.kill import KillState
from botwarden.domain.risk_limits import RiskLimits
from botwarden.domain.stages import REAL_MONEY_STAGES, Stage
from botwarden.domain.trading import OrderType, Side, TradingState

CANARY_MAX_ORDER = 1
ACCOUNT_MAX_DRAWDOWN_PCT = Decimal(30)
ACCOUNT_MIN_CAPITAL_PCT = Decimal(10)
DUPLICATE_WINDOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class OrderIntent:
    client_order_id: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    # A flatten issued by the kill engine or the risk monitor: allowed while halted, if it
    # only reduces the position.
    is_system_flatten: bool = False


@dataclass(frozen=True, slots=True)
class BotRisk:
    stage: Stage
    kill_state: KillState
    is_trading_enabled: bool
    position: int  # signed contracts
    working_buy: int  # contracts in working buy orders
    working_sell: int
    daily_pnl: Decimal  # realised + unrealised since the session began
    equity: Decimal
    equity_peak: Decimal
    capital: Decimal  # the bot's allocated capital, the base of % limits
    recent_order_times: tuple[datetime, ...] = ()  # sent orders, any order
    last_order_signature: tuple[str, int, str, str] | None = None
    last_order_time: datetime | None = None
    # The post-trade monitor's verdict: REDUCING admits risk-reducing orders only, HALTED
    # only the system's flatten.
    trading_state: TradingState = TradingState.ACTIVE
    # The orders sent within the last second, (signature, time): an order identical to any
    # of them is a duplicate, not only one identical to the last (A, B, A within 1 s).
    recent_signatures: tuple[tuple[tuple[str, int, str, str], datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class AccountRisk:
    starting_capital: Decimal
    equity: Decimal
    equity_peak: Decimal
    # Contracts held plus working (entries) across every bot of the account, and the
    # account-wide cap on them (None: no cap).
    open_contracts: int = 0
    max_contracts: int | None = None


@dataclass(frozen=True, slots=True)
class MarketFacts:
    now: datetime
    last_price: Decimal | None
    last_bar_time: datetime | None
    bar_seconds: int
    session_open: bool
    minutes_to_close: float | None
    minutes_to_high_impact_event: float | None  # absolute distance to the nearest one


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    allowed: bool
    code: str
    message: str
    fix: str = ""

    @staticmethod
    def allow() -> RiskVerdict:
        return RiskVerdict(True, "ALLOWED", "all pre-trade checks passed")


def signed(side: Side, qty: int) -> int:
    return qty if side is Side.BUY else -qty


def reduces_position(order: OrderIntent, bot: BotRisk) -> bool:
    """True when the order can only shrink the absolute position, counting the working
    orders on the same side (so two reducing orders cannot together flip it)."""
    if bot.position > 0 and order.side is Side.SELL:
        return order.qty + bot.working_sell <= bot.position
    if bot.position < 0 and order.side is Side.BUY:
        return order.qty + bot.working_buy <= -bot.position
    return False


def order_signature(order: OrderIntent, reducing: bool) -> tuple[str, int, str, str]:
    """What makes two orders "identical" for DUPLICATE_ORDER. Whether the order reduces the
    position is part of it: a reversal's exit and its new entry are two distinct orders
    of the same side and size, sent together on purpose. The price is the limit price or
    the stop price: two stops at different prices are two orders."""
    kind = order.order_type.value + (":reduce" if reducing else "")
    price = order.limit_price if order.limit_price is not None else order.stop_price
    return (order.side.value, order.qty, kind, str(price))


def _deny(code: str, message: str, fix: str) -> RiskVerdict:
    return RiskVerdict(False, code, message, fix)


def check_order(
    order: OrderIntent,
    bot: BotRisk,
    account: AccountRisk,
    market: MarketFacts,
    limits: RiskLimits | None,
    seen_client_ids: AbstractSet[str] = frozenset(),
) -> RiskVerdict:
    """Every rule of domain.md, in its table's order; the first breach decides."""
    reducing = reduces_position(order, bot)
    if order.qty <= 0:
        return _deny("INVALID_ORDER", "quantity must be positive", "Send a whole, positive qty.")
    if bot.kill_state is not KillState.NONE:
        soft_ok = bot.kill_state is KillState.SOFT_KILLED and reducing
        hard_ok = order.is_system_flatten and reducing
        if not (soft_ok or hard_ok):
            return _deny("KILLED", f"bot is {bot.kill_state.value}",
                         "Only risk-reducing orders are allowed; resurrect the bot to trade.")
    if bot.trading_state is TradingState.HALTED and not (order.is_system_flatten and reducing):
        return _deny("TRADING_HALTED", "the risk monitor halted the bot",
                     "Only the system's flatten runs; review the bot's losses.")
    if bot.trading_state is TradingState.REDUCING and not reducing:
        return _deny("TRADING_REDUCING", "the risk monitor allows risk-reducing orders only",
                     "Wait until the daily loss or drawdown is back under its band.")
    if bot.stage in REAL_MONEY_STAGES and not bot.is_trading_enabled and not reducing:
        return _deny("TRADING_DISABLED", f"{bot.stage.value} order while live trading is OFF",
                     "Enable live trading for the bot (2FA step-up).")
    if bot.stage not in (Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE, Stage.TRIALS):
        return _deny("BOT_RETIRED", f"a {bot.stage.value} bot sends no orders",
                     "Create a new bot.")
    if limits is None:
        return _deny("NO_LIMIT_CONFIGURED", "the bot has no valid risk config",
                     "Set the required limits with PUT /api/bots/{id}/risk-config.")
    return _limit_checks(order, bot, account, market, limits, seen_client_ids, reducing)


def _limit_checks(
    order: OrderIntent, bot: BotRisk, account: AccountRisk, market: MarketFacts,
    limits: RiskLimits, seen_client_ids: AbstractSet[str], reducing: bool,
) -> RiskVerdict:
    max_order = limits.max_contracts_per_order
    if bot.stage is Stage.CANARY:
        max_order = min(max_order, CANARY_MAX_ORDER)
    if order.qty > max_order:
        return _deny("MAX_ORDER_SIZE", f"qty {order.qty} > {max_order} per order",
                     f"Send at most {max_order} contracts per order.")
    if not reducing:
        exposure = bot.position + signed(order.side, order.qty) + (
            bot.working_buy if order.side is Side.BUY else -bot.working_sell)
        if abs(exposure) > limits.max_position_contracts:
            return _deny("MAX_POSITION",
                         f"position with working orders would reach {exposure}",
                         f"Stay within {limits.max_position_contracts} contracts.")
        if (account.max_contracts is not None
                and account.open_contracts + order.qty > account.max_contracts):
            return _deny("MAX_POSITION",
                         f"the account's bots would hold {account.open_contracts + order.qty} "
                         f"contracts, over the account cap of {account.max_contracts}",
                         "Wait for other bots to reduce, or raise the account's cap.")
        loss = -bot.daily_pnl
        pct_limit = bot.capital * limits.max_daily_loss_pct / 100
        if loss >= limits.max_daily_loss_usd or (bot.capital > 0 and loss >= pct_limit):
            return _deny("MAX_DAILY_LOSS", f"daily loss {loss} reached the limit",
                         "No new entries until the next session.")
        drawdown = _drawdown_pct(bot.equity, bot.equity_peak)
        if drawdown >= limits.max_drawdown_pct:
            return _deny("MAX_DRAWDOWN", f"drawdown {drawdown:.2f}% >= {limits.max_drawdown_pct}%",
                         "Review the bot; reset its peak only after a human review.")
    rate = _rate_denial(bot, market.now, limits)
    if rate is not None:
        return rate
    if order.client_order_id in seen_client_ids:
        return _deny("DUPLICATE_ORDER", "client order id already seen",
                     "Query the broker for the existing order instead of resending.")
    signature = order_signature(order, reducing)
    sent = bot.recent_signatures
    if bot.last_order_signature is not None and bot.last_order_time is not None:
        sent = (*sent, (bot.last_order_signature, bot.last_order_time))
    if any(earlier == signature
           and (market.now - at).total_seconds() < DUPLICATE_WINDOW_SECONDS
           for earlier, at in sent):
        return _deny("DUPLICATE_ORDER", "identical order within 1 s",
                     "Wait for the first order's outcome.")
    if order.order_type is OrderType.LIMIT and order.limit_price is not None:
        if market.last_price is None:
            return _deny("STALE_DATA", "no last trade price for the price collar",
                         "Wait for market data.")
        collar = market.last_price * limits.price_collar_pct / 100
        if abs(order.limit_price - market.last_price) > collar:
            return _deny("PRICE_COLLAR", f"limit {order.limit_price} is more than "
                         f"{limits.price_collar_pct}% from {market.last_price}",
                         "Price the order closer to the market.")
    return _market_checks(order, bot, account, market, limits, reducing)


def _market_checks(
    order: OrderIntent, bot: BotRisk, account: AccountRisk, market: MarketFacts,
    limits: RiskLimits, reducing: bool,
) -> RiskVerdict:
    stale = market.last_bar_time is None or (
        (market.now - market.last_bar_time).total_seconds() > 2 * market.bar_seconds)
    if stale and not (reducing and order.is_system_flatten):
        return _deny("STALE_DATA", "last bar is older than 2 bar intervals",
                     "Check the data provider (GET /api/integrations).")
    if not market.session_open:
        return _deny("OUTSIDE_SESSION", "the market is closed", "Wait for the session to open.")
    if (not reducing and market.minutes_to_close is not None
            and market.minutes_to_close <= limits.flatten_before_close_minutes):
        return _deny("OUTSIDE_SESSION", "within the pre-close window: no new entries",
                     "Wait for the next session.")
    if (not reducing and market.minutes_to_high_impact_event is not None
            and market.minutes_to_high_impact_event <= limits.news_blackout_minutes):
        return _deny("NEWS_BLACKOUT", "within the blackout of a high-impact economic event",
                     "Wait until the blackout window has passed.")
    if not reducing:
        drawdown = _drawdown_pct(account.equity, account.equity_peak)
        floor = account.starting_capital * ACCOUNT_MIN_CAPITAL_PCT / 100
        if drawdown >= ACCOUNT_MAX_DRAWDOWN_PCT or account.equity < floor:
            return _deny("ACCOUNT_BREACH", "the account breached its drawdown or capital floor",
                         "Account-wide review needed before any new entry.")
    return RiskVerdict.allow()


def _rate_denial(bot: BotRisk, now: datetime, limits: RiskLimits) -> RiskVerdict | None:
    ages = [(now - t).total_seconds() for t in bot.recent_order_times]
    if sum(1 for a in ages if 0 <= a < 1) >= limits.max_orders_per_second:
        return _deny("ORDER_RATE", f"more than {limits.max_orders_per_second} orders per second",
                     "Slow down; the throttle resets within a second.")
    if sum(1 for a in ages if 0 <= a < 60) >= limits.max_orders_per_minute:
        return _deny("ORDER_RATE", f"more than {limits.max_orders_per_minute} orders per minute",
                     "Slow down; the throttle resets within a minute.")
    return None


def _drawdown_pct(equity: Decimal, peak: Decimal) -> Decimal:
    if peak <= 0:
        return Decimal(0)
    return max(Decimal(0), (peak - equity) / peak * 100)


# Bands of the post-trade monitor (domain.md): (warn, REDUCING, HALTED+kill), in percent.
DAILY_LOSS_BANDS = (Decimal(2), Decimal(3), Decimal(5))
DRAWDOWN_BANDS = (Decimal(10), Decimal(15), Decimal(20))


@dataclass(frozen=True, slots=True)
class BandVerdict:
    trading_state: TradingState
    warnings: tuple[str, ...]
    kill_trigger: str | None  # DAILY_LOSS_BREACH or DD_BREACH when HALTED


def evaluate_bands(daily_pnl: Decimal, capital: Decimal, equity: Decimal,
                   equity_peak: Decimal) -> BandVerdict:
    """The trading state a bot's numbers call for. The worse of the two bands wins."""
    loss_pct = (-daily_pnl / capital * 100) if capital > 0 else Decimal(0)
    dd_pct = _drawdown_pct(equity, equity_peak)
    warnings: list[str] = []
    state, trigger = TradingState.ACTIVE, None
    for name, value, bands, code in (("daily_loss", loss_pct, DAILY_LOSS_BANDS,
                                      "DAILY_LOSS_BREACH"),
                                     ("drawdown", dd_pct, DRAWDOWN_BANDS, "DD_BREACH")):
        warn, reducing, halted = bands
        if value >= halted:
            state, trigger = TradingState.HALTED, trigger or code
        elif value >= reducing and state is not TradingState.HALTED:
            state = TradingState.REDUCING
        if value >= warn:
            warnings.append(f"{name} {value:.2f}% >= warn {warn}%")
    return BandVerdict(state, tuple(warnings), trigger)
