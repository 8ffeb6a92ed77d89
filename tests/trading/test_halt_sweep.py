"""The halt sweep finishes the halt of a killed bot whose runner is gone."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.domain.trading import OrderType, Side
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.halt_sweep import halt_sweep
from botwarden.trading.order_store import NewOrder
from botwarden.workers.tasks import LoopContext
from tests.trading.runner_support import (
    NOW,
    flat_bar,
    hard_kill,
    make_bot,
    paper_manager,
    risk_context,
)


def test_a_killed_bot_without_runner_is_flattened_by_the_sweep(engine: Engine,
                                                               settings: Settings) -> None:
    account_id, bot_id = make_bot(engine)
    with write_transaction(engine) as conn:  # the runner that traded, now gone
        job_id = job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                                      actor="test", now=utcnow(), bot_id=bot_id)
        job_store.cancel_job(conn, job_id, account_id=account_id, actor="test", now=utcnow())
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    manager.place(NewOrder("sweep-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    manager.on_fills(manager.broker.on_bar("MES", flat_bar(NOW, 5000.0)))
    assert manager.position("MES") == 1
    hard_kill(engine, bot_id)
    ctx = LoopContext(engine, settings, utcnow, "halt_sweep", None)
    first = halt_sweep(ctx)
    assert first["halted"] == 1 and first["flat"] == 1
    assert make_broker(engine, settings, bot_id, "paper").position("MES").qty == 0
    assert halt_sweep(ctx)["halted"] == 0  # flat now: nothing left to sweep
