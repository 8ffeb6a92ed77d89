"""A bot's money figures from the store, to the cent (exact decimals on both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.services.bot_figures import BotFigures, bot_figures, market_clock, session_bounds
from tests.services.risk_seed import (
    NOW,
    RISK,
    SESSION_CLOSE,
    SESSION_OPEN,
    seed_bot,
    seed_job,
    seed_position,
    seed_runner_state,
    seed_snapshot,
    seed_trade,
)


def test_a_flat_new_bot_is_worth_its_account_capital(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, starting_capital=Decimal("25000"))
        session.commit()
        figures = bot_figures(session, bot.id, NOW)
    zero = Decimal(0)
    assert figures == BotFigures(capital=Decimal("25000"), realized_pnl=zero,
                                 daily_realized=zero, unrealized=zero, daily_pnl=zero,
                                 equity=Decimal("25000"), equity_peak=Decimal("25000"))


def test_capital_usd_in_the_risk_config_overrides_the_account(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, risk={**RISK, "capital_usd": "10000.50"})
        session.commit()
        assert bot_figures(session, bot.id, NOW).capital == Decimal("10000.50")


def test_every_figure_to_the_cent(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, risk={**RISK, "capital_usd": "10000"})
        other = seed_bot(session)
        job = seed_job(session, bot)
        other_job = seed_job(session, other)
        # All-time realised PnL lives on the positions (net of fees), one row per symbol.
        seed_position(session, bot, [(1, "5000.25"), (1, "5001.00")], realized="-120.38")
        seed_position(session, bot, [], realized="45.12", symbol="MNQ")
        seed_runner_state(session, bot, last_price="5003.50",
                          last_bar_time=NOW - timedelta(minutes=1))
        # Today's session: counted.
        seed_trade(session, bot, job, "-60.62", SESSION_OPEN + timedelta(minutes=1))
        seed_trade(session, bot, job, "12.38", NOW - timedelta(minutes=3))
        # Not counted: the previous session, an invalid row, backtest and test rows,
        # another bot's trade.
        seed_trade(session, bot, job, "-999.99", SESSION_OPEN - timedelta(minutes=30))
        seed_trade(session, bot, job, "-500", NOW - timedelta(minutes=2), invalid=True)
        seed_trade(session, bot, job, "-400", NOW - timedelta(minutes=2), source="BACKTEST")
        seed_trade(session, bot, job, "-300", NOW - timedelta(minutes=2), source="TEST")
        seed_trade(session, other, other_job, "-200", NOW - timedelta(minutes=2))
        session.commit()
        figures = bot_figures(session, bot.id, NOW)
    # Long 2 MES from 5000.25 and 5001.00 marked at 5003.50: (3.25 + 2.50) x $5.
    assert figures.unrealized == Decimal("28.75")
    assert figures.realized_pnl == Decimal("-75.26")
    assert figures.daily_realized == Decimal("-48.24")
    assert figures.daily_pnl == Decimal("-19.49")
    assert figures.equity == Decimal("9953.49")
    assert figures.equity_peak == Decimal("10000")


def test_a_short_is_marked_against_its_lots(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, symbol="MNQ")
        seed_position(session, bot, [(2, "18010.50"), (1, "18000.00")], short=True)
        seed_runner_state(session, bot, last_price="18005.25")
        session.commit()
        figures = bot_figures(session, bot.id, NOW)
    # Short 3 MNQ ($2 a point): (18010.50 - 18005.25) x 2 x 2 + (18000 - 18005.25) x 1 x 2.
    assert figures.unrealized == Decimal("10.50")
    assert figures.equity == Decimal("50010.50")


def test_without_a_mark_open_lots_count_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_position(session, bot, [(1, "5000")], realized="10")
        session.commit()
        figures = bot_figures(session, bot.id, NOW)
    assert figures.unrealized == 0 and figures.equity == Decimal("50010")


def test_equity_peak_is_the_numeric_maximum_of_the_snapshots(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session, risk={**RISK, "capital_usd": "9000"})
        # As text "9999.99" sorts after "10250.37": the peak must be read as a number.
        seed_snapshot(session, bot, "9999.99", NOW - timedelta(minutes=3))
        seed_snapshot(session, bot, "10250.37", NOW - timedelta(minutes=2))
        seed_snapshot(session, bot, "8500.00", NOW - timedelta(minutes=1))
        seed_position(session, bot, [], realized="-600")
        session.commit()
        figures = bot_figures(session, bot.id, NOW)
    assert figures.equity == Decimal("8400")
    assert figures.equity_peak == Decimal("10250.37")


def test_current_equity_above_every_snapshot_is_the_peak(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_snapshot(session, bot, "50010", NOW - timedelta(minutes=2))
        seed_position(session, bot, [], realized="25.50")
        session.commit()
        assert bot_figures(session, bot.id, NOW).equity_peak == Decimal("50025.50")


def test_while_the_market_is_closed_the_last_session_counts(engine: Engine) -> None:
    saturday = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    friday_open = datetime(2026, 3, 12, 22, 0, tzinfo=UTC)
    with Session(engine) as session:
        bot = seed_bot(session)
        job = seed_job(session, bot)
        seed_trade(session, bot, job, "-80", friday_open + timedelta(hours=3))
        seed_trade(session, bot, job, "-30", friday_open - timedelta(hours=3))
        session.commit()
        assert bot_figures(session, bot.id, saturday).daily_realized == Decimal("-80")


def test_a_replaying_runner_counts_the_session_of_its_last_bar(engine: Engine) -> None:
    """Replayed bars carry market time: the day is the bar's session, not the wall clock's."""
    bar_time = datetime(2025, 6, 4, 15, 0, tzinfo=UTC)
    with Session(engine) as session:
        bot = seed_bot(session)
        job = seed_job(session, bot)
        seed_runner_state(session, bot, last_price="5000", last_bar_time=bar_time)
        seed_trade(session, bot, job, "-42.50", bar_time - timedelta(minutes=10))
        seed_trade(session, bot, job, "-7", NOW - timedelta(minutes=10))
        session.commit()
        assert bot_figures(session, bot.id, NOW).daily_realized == Decimal("-42.50")


def test_figures_read_through_a_connection_too(engine: Engine) -> None:
    with Session(engine) as session:
        bot = seed_bot(session)
        seed_position(session, bot, [], realized="1.01")
        session.commit()
        bot_id = bot.id
    with engine.connect() as conn:
        assert bot_figures(conn, bot_id, NOW).realized_pnl == Decimal("1.01")


def test_an_unknown_bot_is_not_found(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(DomainError) as raised:
        bot_figures(session, "no-such-bot", NOW)
    assert raised.value.code == "NOT_FOUND"


def test_session_bounds_and_the_market_clock() -> None:
    assert session_bounds("CMES", NOW) == (SESSION_OPEN, SESSION_CLOSE)
    # During the daily halt: the session that just closed.
    halt = SESSION_CLOSE + timedelta(minutes=30)
    assert session_bounds("CMES", halt) == (SESSION_OPEN, SESSION_CLOSE)
    closed = market_clock("MES", "1m", None, halt)
    assert not closed.is_open and closed.minutes_to_close is None
    wall = market_clock("MES", "1m", None, SESSION_CLOSE - timedelta(minutes=10))
    assert wall.is_open and wall.minutes_to_close == 10.0
    # From a bar, the clock stands at the bar's end: the 20:44 bar ends 15 minutes early.
    bar = market_clock("MES", "1m", SESSION_CLOSE - timedelta(minutes=16), NOW)
    assert bar.is_open and bar.minutes_to_close == 15.0
