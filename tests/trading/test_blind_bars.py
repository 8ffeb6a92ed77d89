"""A bar whose fills the broker cannot give (a timeout, the broker unreachable or refusing
us): the runner orders nothing on it, says why in a no-trade trace, turns DEGRADED, asks
again every second, and decides again once the fills can be read. Before, the read's
error ended the runner."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.calendar import get_calendar
from botwarden.data.synth import write_synthetic
from botwarden.domain.instruments import get_instrument
from botwarden.domain.jobs import JobType
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.research.strategies import build_strategy
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import JobRunEvent, Trace
from botwarden.trading import runner_job
from botwarden.trading.brokers import PaperBroker, SqlStateStore
from botwarden.trading.brokers.base import BrokerDisconnected, FillReport
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.runner_core import BLIND_BARS_LIMIT, BROKER_UNAVAILABLE, Money, RunnerCore
from tests.research.jobs_support import END
from tests.trading.runner_support import (
    GENEROUS,
    NOW,
    first_bar_iso,
    flat_bar,
    make_bot,
    run_to_completion,
    runner_payload,
)
from tests.trading.test_fills_between_bars import RemoteMarket


def _zigzag_core(engine: Engine) -> tuple[str, PaperBroker, RunnerCore]:
    """SMA(1) against SMA(2) on closes that alternate: the target flips on every bar."""
    account_id, bot_id = make_bot(engine)
    with write_transaction(engine) as conn:  # the runner instance its trades are booked to
        job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                             actor="test", now=utcnow(), bot_id=bot_id)
    broker = PaperBroker(f"paper:{bot_id}", SqlStateStore(engine))
    manager = OrderManager(engine, bot_id=bot_id, job_id=None, broker=broker, mode="PAPER",
                           source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                           clock=lambda: NOW)
    manager.load("MES")
    capital = Decimal(50_000)
    money = Money(capital, Decimal(0), Decimal(0), capital, capital, capital)
    core = RunnerCore(bot_id, build_strategy("sma_cross", {"fast": 1, "slow": 2}),
                      get_instrument("MES"), get_calendar(), manager, None, money)
    return bot_id, broker, core


def _no_trades(engine: Engine, bot_id: str) -> list[tuple[str | None, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Trace.reason_code, Trace.detail)
                            .where(Trace.bot_id == bot_id, Trace.kind == "NO_TRADE")).all()
    return [(row.reason_code, row.detail) for row in rows]


def test_a_bar_without_its_fills_orders_nothing_and_the_next_one_decides(
        engine: Engine) -> None:
    bot_id, broker, core = _zigzag_core(engine)
    prices = [5000.0, 5000.25] * 4

    def matched(bar: Any) -> list[FillReport]:
        return broker.on_bar("MES", bar)

    def unreachable(_bar: Any) -> list[FillReport]:
        raise BrokerDisconnected("connection refused")

    placed = []
    for minute, price in enumerate(prices):
        bar = flat_bar(NOW + timedelta(minutes=minute), price)
        placed.append(core.on_bar(bar, unreachable if minute == 5 else matched))
    assert all(placed[minute] for minute in (2, 3, 4))  # a reversal on every bar
    assert placed[5] == [] and core.bars_seen == len(prices)
    # Bar 6 meets the position bar 4 ordered, which is the one it wants (the simulated
    # broker, not asked on the blind bar, matched bar 4's orders at bar 6's open); bar 7
    # reverses again.
    assert placed[6] == [] and placed[7]
    assert core.fills_unknown is None  # read again on the bar after
    ((code, detail),) = _no_trades(engine, bot_id)
    assert code == BROKER_UNAVAILABLE
    assert "DISCONNECTED: connection refused" in detail["message"] and detail["fix"]
    # The strategy saw the blind bar: after it, the target is the one for the bar's close.
    assert core.previous_target == (1 if prices[7] > prices[6] else -1)
    assert core.manager.position("MES") == broker.position("MES").qty


class FlakyMarket(RemoteMarket):
    """RemoteMarket whose fills cannot be read while `down` reads more than 0."""

    def __init__(self) -> None:
        super().__init__()
        self.down = 0
        self.refused = 0

    def fills(self, since: datetime | None = None) -> list[FillReport]:
        if self.down > 0:
            self.down -= 1
            self.refused += 1
            raise BrokerDisconnected("connection reset by peer")
        return super().fills(since)


def test_a_runner_that_cannot_read_its_fills_turns_degraded_and_recovers(
        engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    write_synthetic(BarStore(settings.data_dir), "MES", 2, seed=5, end=END)
    market = FlakyMarket()
    monkeypatch.setattr(runner_job, "make_broker", lambda *_a, **_k: market)
    on_bar = RunnerCore.on_bar
    seen = [0]

    def counted(self: RunnerCore, bar: Any, fills_for: Any) -> Any:
        seen[0] += 1
        market.price = Decimal(str(bar.close))
        if seen[0] == 2:
            market.down = 2  # this bar's read and the watchdog's first retry
        return on_bar(self, bar, fills_for)

    monkeypatch.setattr(RunnerCore, "on_bar", counted)
    account_id, bot_id = make_bot(engine)
    start = datetime.fromisoformat(first_bar_iso(settings)) + timedelta(hours=1)
    payload = runner_payload(bot_id, start=start.isoformat(), speed=30.0,
                             end=(start + timedelta(minutes=4)).isoformat())
    result = run_to_completion(engine, settings, account_id, bot_id, payload)
    assert result["ended"] == "REPLAY_EXHAUSTED" and result["bars"] == 4
    assert market.refused == 2
    assert [code for code, _detail in _no_trades(engine, bot_id)] == [BROKER_UNAVAILABLE]
    with engine.connect() as conn:
        events = conn.execute(
            sa.select(JobRunEvent.from_status, JobRunEvent.to_status, JobRunEvent.reason_code)
            .order_by(JobRunEvent.created_at)).all()
    moves = [tuple(event) for event in events]
    assert ("RUNNING", "DEGRADED", BROKER_UNAVAILABLE) in moves
    assert moves.index(("RUNNING", "DEGRADED", BROKER_UNAVAILABLE)) < moves.index(
        ("DEGRADED", "RUNNING", "BROKER_RECOVERED"))


def test_past_the_limit_of_blind_bars_the_error_ends_the_runner(engine: Engine) -> None:
    """A broker away for longer than a blip: the runner ends, and the supervisor's retries
    and circuit breaker (an open circuit is a kill trigger) take over, as before."""
    _bot_id, _broker, core = _zigzag_core(engine)

    def unreachable(_bar: Any) -> list[FillReport]:
        raise BrokerDisconnected("connection refused")

    for minute in range(BLIND_BARS_LIMIT):
        assert core.on_bar(flat_bar(NOW + timedelta(minutes=minute), 5000.0), unreachable) == []
    with pytest.raises(BrokerDisconnected):
        core.on_bar(flat_bar(NOW + timedelta(minutes=BLIND_BARS_LIMIT), 5000.0), unreachable)
