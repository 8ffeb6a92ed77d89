"""Where a demo bot that stays in PAPER goes live: a few bars before its first trade from
the first live session's cash open on, so that `make run` shows live orders at once instead
of waiting, at one bar a second, for a wide band to be crossed. Staging only, never
evidence: found with the backtest engine on the bot's own configuration (the runner makes
the same decisions; research/fill_kernel.py is shared). The bot paper-trades the bars just
before that point at full speed and its runner warms up on the session before them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.demo.plan import Timeline
from botwarden.domain.errors import DomainError
from botwarden.research import lab
from botwarden.research.market import open_series
from botwarden.research.spec import build_spec
from botwarden.services.bots import current_limits
from botwarden.store.models import Account, Bot

LEAD_BARS = 15  # live this many bars before the first signal: a quarter minute at speed 60
RUN_IN_BARS = 60  # paper-traded at full speed just before going live
WARM_UP = timedelta(days=7)
SEARCH = timedelta(days=1)  # a bot without a trade within a day of the cash open goes live there


def paper_live_start(session: Session, settings: Settings, bot: Bot, account: Account,
                     timeline: Timeline, dataset: str) -> datetime:
    """`LEAD_BARS` bars before the bot's first entry within a day of the cash open of the
    first live session; the cash open when it has none then."""
    begin = timeline.paper_live_start
    spec = build_spec(kind=bot.strategy_kind, params=dict(bot.strategy_params or {}),
                      symbol=bot.symbol, timeframe=bot.timeframe,
                      cash=account.starting_capital, limits=current_limits(session, bot.id))
    try:
        market, _, _ = open_series(settings.data_dir, bot.symbol, bot.timeframe,
                                   begin - WARM_UP, begin + SEARCH * 2, dataset)
    except DomainError:
        return begin
    lead = timedelta(minutes=LEAD_BARS)
    for trade in lab.backtest(market, spec).trades():
        if begin <= trade.entry_time - lead <= begin + SEARCH:
            return trade.entry_time - lead
    return begin


def run_in_start(live_start: datetime, timeline: Timeline) -> datetime:
    """Where the short paper run before `live_start` begins (never before the session)."""
    return max(timeline.shadow_live_start, live_start - timedelta(minutes=RUN_IN_BARS))
