"""A bot's money figures from the store, in exact decimals: what the risk monitor bands and
the runner's pre-trade checks are computed from.

- capital: the risk config's `capital_usd`, else the account's starting capital;
- realized_pnl: all time, net of fees (the sum of the bot's positions' realised PnL);
- daily_realized: trade_logs PnL of the current trading session (stage trades only, valid
  rows only);
- unrealized: the open FIFO lots marked at the runner's last price;
- daily_pnl = daily_realized + unrealized; equity = capital + realized_pnl + unrealized;
- equity_peak = max(capital, every stored equity snapshot, equity).

"The current session" is taken on the market clock: the session of the runner's last bar
when the bot has one (replayed bars carry market time, not wall time), else the session at
`now`; while the market is closed, the last session that opened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from botwarden.data.calendar import get_calendar, to_datetime, to_ns
from botwarden.domain.bars import TIMEFRAME_SECONDS
from botwarden.domain.errors import DomainError, NotFound
from botwarden.domain.instruments import get_instrument
from botwarden.domain.ledger import Book, unrealized
from botwarden.domain.risk_limits import RiskLimits, parse_risk_limits
from botwarden.domain.trading import SourceType
from botwarden.store.models import (
    Account,
    Bot,
    EquitySnapshot,
    Position,
    RiskConfig,
    RunnerState,
    TradeLog,
)

ZERO = Decimal(0)
# Trades a runner makes; backtests may share a bot id and market dates, but are not money.
STAGE_SOURCES = (SourceType.PAPER.value, SourceType.SHADOW.value, SourceType.CANARY.value,
                 SourceType.LIVE.value)


@dataclass(frozen=True, slots=True)
class BotFigures:
    capital: Decimal
    realized_pnl: Decimal
    daily_realized: Decimal
    unrealized: Decimal
    daily_pnl: Decimal
    equity: Decimal
    equity_peak: Decimal

    def to_json(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class MarketClock:
    """Where a bot stands in its trading session, on the market clock."""

    session_open: datetime  # the current session, or the last one while closed
    session_close: datetime
    is_open: bool
    minutes_to_close: float | None  # None while the market is closed


def session_bounds(calendar: str, at: datetime) -> tuple[datetime, datetime]:
    """[open, close) of the session containing `at`, or of the last session that opened
    before it while the market is closed."""
    cal = get_calendar(calendar)
    i = int(np.searchsorted(cal.opens, to_ns(at), side="right")) - 1
    if i < 0:
        raise DomainError("CALENDAR_OUT_OF_RANGE", f"no {cal.name} session before {at}",
                          "Use a time inside the calendar's range.", status=422)
    return to_datetime(int(cal.opens[i])), to_datetime(int(cal.closes[i]))


def market_clock(symbol: str, timeframe: str, last_bar_time: datetime | None,
                 now: datetime) -> MarketClock:
    """The session of the runner's last bar (its open time lies inside the session) and the
    minutes from that bar's end to the close; without a bar, the session at `now`."""
    calendar = get_instrument(symbol).calendar
    anchor = last_bar_time if last_bar_time is not None else now
    opens, closes = session_bounds(calendar, anchor)
    is_open = opens <= anchor < closes
    moment = (anchor + timedelta(seconds=TIMEFRAME_SECONDS[timeframe])
              if last_bar_time is not None else now)
    minutes = max(0.0, (closes - moment).total_seconds() / 60) if is_open else None
    return MarketClock(opens, closes, is_open, minutes)


def capital_of(limits: RiskLimits | None, starting_capital: Decimal) -> Decimal:
    if limits is not None and limits.capital_usd is not None:
        return limits.capital_usd
    return starting_capital


def read_limits(conn: Session | Connection, bot_id: str) -> RiskLimits | None:
    """The bot's parsed risk limits; None when it has none or they no longer parse."""
    raw = conn.execute(sa.select(RiskConfig.config).where(RiskConfig.bot_id == bot_id)).scalar()
    if raw is None:
        return None
    try:
        return parse_risk_limits(raw)
    except DomainError:
        return None


def book_of(row: Any) -> Book:
    """A positions row as a ledger Book (lots are stored as [[qty, "price"], ...])."""
    lots = tuple((int(q), Decimal(str(p))) for q, p in (row.lots or []))
    return Book(int(row.qty), lots, row.realized_pnl, row.fees)


def bot_figures(session_or_conn: Session | Connection, bot_id: str,
                now: datetime) -> BotFigures:
    conn = session_or_conn
    bot = conn.execute(
        sa.select(Bot.symbol, Bot.timeframe, Account.starting_capital)
        .join(Account, Account.id == Bot.account_id).where(Bot.id == bot_id)).first()
    if bot is None:
        raise NotFound("bot")
    capital = capital_of(read_limits(conn, bot_id), bot.starting_capital)
    runner = conn.execute(sa.select(RunnerState.last_price, RunnerState.last_bar_time)
                          .where(RunnerState.bot_id == bot_id)).first()
    last_price = runner.last_price if runner is not None else None
    last_bar_time = runner.last_bar_time if runner is not None else None

    realized, open_pnl = ZERO, ZERO
    for row in conn.execute(sa.select(Position.symbol, Position.qty, Position.lots,
                                      Position.realized_pnl, Position.fees)
                            .where(Position.bot_id == bot_id)).all():
        realized += row.realized_pnl
        # The runner's last price is the mark of the bot's one symbol.
        if row.qty != 0 and last_price is not None and row.symbol == bot.symbol:
            open_pnl += unrealized(book_of(row), last_price,
                                   get_instrument(row.symbol).point_value)

    opens, closes = session_bounds(get_instrument(bot.symbol).calendar,
                                   last_bar_time if last_bar_time is not None else now)
    daily_pnls = conn.execute(
        sa.select(TradeLog.pnl).where(
            TradeLog.bot_id == bot_id, TradeLog.is_invalid.is_(False),
            TradeLog.source_type.in_(STAGE_SOURCES),
            TradeLog.exit_time >= opens, TradeLog.exit_time < closes)).scalars().all()
    # Summed here, not in SQL: SQLite stores Money as text and would sum it as floats.
    daily_realized = sum(daily_pnls, ZERO)

    equity = capital + realized + open_pnl
    peak = max(capital, equity)
    stored_peak = _snapshot_peak(conn, bot_id)
    if stored_peak is not None:
        peak = max(peak, stored_peak)
    return BotFigures(capital=capital, realized_pnl=realized, daily_realized=daily_realized,
                      unrealized=open_pnl, daily_pnl=daily_realized + open_pnl, equity=equity,
                      equity_peak=peak)


def _snapshot_peak(conn: Session | Connection, bot_id: str) -> Decimal | None:
    """The highest stored equity, read exactly: ordered numerically (SQLite keeps Money as
    text, whose MAX would be the lexicographic one) and returned as stored."""
    column = EquitySnapshot.equity
    return conn.execute(sa.select(column).where(EquitySnapshot.bot_id == bot_id)
                        .order_by(sa.cast(column, sa.Numeric).desc()).limit(1)).scalar()
