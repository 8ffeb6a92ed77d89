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

from botwarden.clock import as_utc
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


def parse_limits(raw: Any) -> RiskLimits | None:
    """A stored risk config parsed; None when there is none or it no longer parses."""
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


# Statements built once: the monitor runs them for every bot every few seconds, and a
# prebuilt statement skips SQLAlchemy's construction and cache-key work.
_bot: sa.BindParameter[str] = sa.bindparam("bot_id")
HEAD_COLUMNS = (Bot.symbol, Bot.timeframe, Account.starting_capital,
                RiskConfig.config.label("risk_config"), RunnerState.last_price,
                RunnerState.last_bar_time)


def head_query(*columns: Any) -> sa.Select[Any]:
    """The bot's row with what its figures start from (and `columns` besides)."""
    return (sa.select(*HEAD_COLUMNS, *columns)
            .join(Account, Account.id == Bot.account_id)
            .outerjoin(RiskConfig, RiskConfig.bot_id == Bot.id)
            .outerjoin(RunnerState, RunnerState.bot_id == Bot.id)
            .where(Bot.id == _bot))


_HEAD = head_query()
_POSITIONS = sa.select(Position.symbol, Position.qty, Position.lots, Position.realized_pnl,
                       Position.fees).where(Position.bot_id == _bot)
_SESSION_PNL = sa.select(TradeLog.pnl).where(
    TradeLog.bot_id == _bot, TradeLog.is_invalid.is_(False),
    TradeLog.source_type.in_(STAGE_SOURCES), TradeLog.exit_time >= sa.bindparam("opens"),
    TradeLog.exit_time < sa.bindparam("closes"))
# The highest stored equity, read exactly: ordered numerically (SQLite keeps Money as text,
# whose MAX would be the lexicographic one) and returned as stored; and the latest snapshot.
_SNAPSHOTS = sa.select(
    sa.select(EquitySnapshot.equity).where(EquitySnapshot.bot_id == _bot)
    .order_by(sa.cast(EquitySnapshot.equity, sa.Numeric).desc()).limit(1)
    .scalar_subquery().label("peak"),
    sa.select(sa.func.max(EquitySnapshot.at)).where(EquitySnapshot.bot_id == _bot)
    .scalar_subquery().label("last_at"))


@dataclass(frozen=True, slots=True)
class FiguresRead:
    """The figures with what was read on the way, for callers that need it too."""

    figures: BotFigures
    limits: RiskLimits | None
    position: int  # signed contracts of the bot's symbol
    last_snapshot_at: datetime | None


def bot_figures(session_or_conn: Session | Connection, bot_id: str,
                now: datetime) -> BotFigures:
    head = session_or_conn.execute(_HEAD, {"bot_id": bot_id}).first()
    if head is None:
        raise NotFound("bot")
    return figures_from(session_or_conn, bot_id, head, now).figures


def figures_from(conn: Session | Connection, bot_id: str, head: Any,
                 now: datetime) -> FiguresRead:
    """The figures of a bot whose `head_query` row is `head`."""
    limits = parse_limits(head.risk_config)
    capital = capital_of(limits, head.starting_capital)
    last_price, symbol = head.last_price, head.symbol
    realized, open_pnl, position = ZERO, ZERO, 0
    for row in conn.execute(_POSITIONS, {"bot_id": bot_id}).all():
        realized += row.realized_pnl
        if row.symbol == symbol:
            position = int(row.qty)
        # The runner's last price is the mark of the bot's one symbol.
        if row.qty != 0 and last_price is not None and row.symbol == symbol:
            open_pnl += unrealized(book_of(row), last_price,
                                   get_instrument(row.symbol).point_value)
    anchor = head.last_bar_time if head.last_bar_time is not None else now
    opens, closes = session_bounds(get_instrument(symbol).calendar, anchor)
    daily_pnls = conn.execute(_SESSION_PNL, {"bot_id": bot_id, "opens": opens,
                                             "closes": closes}).scalars().all()
    # Summed here, not in SQL: SQLite stores Money as text and would sum it as floats.
    daily_realized = sum(daily_pnls, ZERO)
    snapshots = conn.execute(_SNAPSHOTS, {"bot_id": bot_id}).one()
    equity = capital + realized + open_pnl
    peak = max(capital, equity)
    if snapshots.peak is not None:
        peak = max(peak, Decimal(str(snapshots.peak)))
    figures = BotFigures(capital=capital, realized_pnl=realized, daily_realized=daily_realized,
                         unrealized=open_pnl, daily_pnl=daily_realized + open_pnl,
                         equity=equity, equity_peak=peak)
    last_at = snapshots.last_at
    return FiguresRead(figures, limits, position, None if last_at is None else as_utc(last_at))
