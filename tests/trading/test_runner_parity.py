"""Parity: a runner on replayed bars makes exactly the trades the backtest makes on the same
bars (same strategy kernel, same decision rules, the paper broker's fills)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.store.models import Order, TradeLog
from botwarden.trading.runner_job import run_runner
from tests.research.jobs_support import END
from tests.trading.runner_support import (
    backtest_of,
    first_bar_iso,
    make_bot,
    runner_context,
    runner_payload,
)


@pytest.fixture
def replay_settings(settings: Settings) -> Settings:
    write_synthetic(BarStore(settings.data_dir), "MES", 3, seed=7, end=END)
    return settings


def test_runner_trades_exactly_as_the_backtest(engine: Engine,
                                               replay_settings: Settings) -> None:
    account_id, bot_id = make_bot(engine)
    payload = runner_payload(bot_id, start=first_bar_iso(replay_settings))
    result = run_runner(runner_context(engine, replay_settings, account_id, bot_id, payload))
    assert result["ended"] == "REPLAY_EXHAUSTED"
    backtest, expected = backtest_of(replay_settings)
    assert len(expected) > 20, "the bars should make the strategy trade"
    with engine.connect() as conn:
        rows = conn.execute(sa.select(TradeLog).where(TradeLog.bot_id == bot_id)
                            .order_by(TradeLog.exit_time, TradeLog.entry_time)).all()
        statuses = conn.execute(sa.select(Order.status, sa.func.count()).where(
            Order.bot_id == bot_id).group_by(Order.status)).all()
    got = [(r.entry_time, r.exit_time, r.side, r.qty, Decimal(r.entry_price),
            Decimal(r.exit_price), Decimal(r.pnl)) for r in rows]
    want = [(t.entry_time, t.exit_time, t.side, t.qty, t.entry_price, t.exit_price, t.pnl)
            for t in expected]
    assert got == want
    assert all(r.source_type == "PAPER" for r in rows)
    assert dict(statuses).get("REJECTED", 0) == 0
    assert result["orders_sent"] > 0
