"""The runner in SHADOW mode, and a runner stopped and started again resuming where it was."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.store.models import Order, Position, RunnerState, Trace, TradeLog
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.runner_job import run_runner
from tests.research.jobs_support import END
from tests.trading.runner_support import (
    backtest_of,
    first_bar_iso,
    make_bot,
    run_to_completion,
    runner_context,
    runner_payload,
)


@pytest.fixture
def replay_settings(settings: Settings) -> Settings:
    write_synthetic(BarStore(settings.data_dir), "MES", 2, seed=5, end=END)
    return settings


def _position(engine: Engine, bot_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(Position.qty), 0))
                                .where(Position.bot_id == bot_id)).scalar_one())


def test_a_shadow_runner_fills_at_the_quotes_and_agrees_with_its_broker(
        engine: Engine, replay_settings: Settings) -> None:
    account_id, bot_id = make_bot(engine, stage="SHADOW")
    payload = runner_payload(bot_id, mode="SHADOW", start=first_bar_iso(replay_settings))
    result = run_runner(runner_context(engine, replay_settings, account_id, bot_id, payload))
    assert result["orders_sent"] > 10
    with engine.connect() as conn:
        sources = set(conn.execute(sa.select(TradeLog.source_type).where(
            TradeLog.bot_id == bot_id)).scalars())
        kinds = Counter(conn.execute(sa.select(Trace.kind).where(Trace.bot_id == bot_id))
                        .scalars())
    assert sources == {"SHADOW"}
    assert kinds["DECISION"] >= result["orders_sent"]
    broker = make_broker(engine, replay_settings, bot_id, "shadow")
    assert broker.position("MES").qty == _position(engine, bot_id)


def test_a_runner_started_again_resumes_after_its_last_bar(engine: Engine,
                                                           replay_settings: Settings) -> None:
    """Two runs (stop at the middle, start again) make the trades of one run."""
    account_id, bot_id = make_bot(engine)
    start = first_bar_iso(replay_settings)
    middle = (datetime.fromisoformat(start) + timedelta(hours=20)).isoformat()
    first = run_to_completion(engine, replay_settings, account_id, bot_id,
                              runner_payload(bot_id, start=start, end=middle))
    assert first["ended"] == "REPLAY_EXHAUSTED"
    with engine.connect() as conn:
        resumed_from = conn.execute(sa.select(RunnerState.last_bar_time).where(
            RunnerState.bot_id == bot_id)).scalar_one()
    second = run_to_completion(engine, replay_settings, account_id, bot_id,
                               runner_payload(bot_id, start=start))
    assert second["bars"] > 0 and resumed_from is not None
    _, expected = backtest_of(replay_settings)
    with engine.connect() as conn:
        got = conn.execute(sa.select(TradeLog.entry_time, TradeLog.exit_time, TradeLog.pnl)
                           .where(TradeLog.bot_id == bot_id)
                           .order_by(TradeLog.exit_time, TradeLog.entry_time)).all()
        ids = conn.execute(sa.select(Order.client_order_id).where(Order.bot_id == bot_id)
                           ).scalars().all()
    assert [(g.entry_time, g.exit_time, g.pnl) for g in got] == [
        (t.entry_time, t.exit_time, t.pnl) for t in expected]
    assert len(ids) == len(set(ids))
    broker = make_broker(engine, replay_settings, bot_id, "paper")
    assert broker.position("MES").qty == _position(engine, bot_id)
