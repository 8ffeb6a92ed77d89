"""Live runners for the kill tests: each is the RUNNER handler on a thread, as a worker hosts
it, on replayed bars at a speed that brings a bar every few tens of milliseconds, and the
job is completed when the handler returns, as the worker would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.synth import write_synthetic
from botwarden.domain.orders import OPEN
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Order, Position, Trace
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.runner_job import run_runner
from botwarden.workers.context import JobContext
from tests.research.jobs_support import END
from tests.trading.runner_support import runner_context, runner_payload

# Brackets far outside a test's price range: a bot holds its position and its two working
# exits from its first fill on (a reversal swaps them within one bar).
WIDE_BRACKET = {"stop_loss_ticks": 400, "profit_target_ticks": 800}
OPEN_STATUSES = [s.value for s in OPEN]


@pytest.fixture
def replay_settings(settings: Settings) -> Settings:
    write_synthetic(BarStore(settings.data_dir), "MES", 3, seed=7, end=END)
    return settings


def mid_session_start(settings: Settings, *, offset: int = 60) -> str:
    """A bar `offset` minutes into the stored series' second session: history before it
    to warm up on, and a whole session of one-minute bars after it (no break, no close)."""
    ts = BarStore(settings.data_dir).load("MES", None, None, "1m",
                                          dataset=SYNTHETIC_DATASET).ts
    breaks = np.flatnonzero(np.diff(ts) != 60 * 1_000_000_000)
    first = int(breaks[0]) + 1 + offset
    return str(np.datetime64(int(ts[first]), "ns").astype("datetime64[us]")) + "+00:00"


@dataclass
class LiveRunner:
    ctx: JobContext
    engine: Engine
    result: dict[str, Any] | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    @property
    def bot_id(self) -> str:
        return str(self.ctx.payload["bot_id"])

    def _run(self) -> None:
        try:
            self.result = run_runner(self.ctx)
        except BaseException as exc:  # the test reports it
            self.error = exc
            return
        with write_transaction(self.engine) as conn:
            job_store.complete_jobs(conn, [job_store.Completion(self.ctx.job, self.ctx.status,
                                                                self.result)],
                                    actor="test-worker", now=utcnow())

    def start(self) -> LiveRunner:
        self.thread = threading.Thread(target=self._run, name=f"runner-{self.bot_id[:8]}",
                                       daemon=True)
        self.thread.start()
        return self

    def join(self, timeout: float) -> dict[str, Any]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.ctx.request_shutdown()
            self.thread.join(10)
            raise AssertionError(f"runner of {self.bot_id} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def start_runner(engine: Engine, settings: Settings, account_id: str, bot_id: str, *,
                 speed: float | None, start: str, **extra: Any) -> LiveRunner:
    payload = runner_payload(bot_id, start=start, speed=speed, **extra)
    ctx = runner_context(engine, settings, account_id, bot_id, payload)
    return LiveRunner(ctx, engine).start()


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               runners: Sequence[LiveRunner] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for runner in runners:
            if runner.error is not None:
                raise runner.error
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        time.sleep(0.05)


# ---- what the store says ----

def our_position(engine: Engine, bot_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(Position.qty), 0))
                                .where(Position.bot_id == bot_id)).scalar_one())


def broker_position(engine: Engine, settings: Settings, bot_id: str) -> int:
    return make_broker(engine, settings, bot_id, "paper").position("MES").qty


def working_exits(engine: Engine, bot_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Order).where(
            Order.bot_id == bot_id, Order.parent_client_order_id.is_not(None),
            Order.status == "WORKING")).scalar_one())


def holds_with_exits(engine: Engine, bot_id: str) -> bool:
    return our_position(engine, bot_id) != 0 and working_exits(engine, bot_id) == 2


def open_orders(engine: Engine, bot_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(Order).where(
            Order.bot_id == bot_id, Order.status.in_(OPEN_STATUSES))).scalar_one())


def orders(engine: Engine, bot_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Order).where(Order.bot_id == bot_id)
                                 .order_by(Order.created_at)).all())


def killed_denials(engine: Engine, bot_id: str, since: datetime) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Trace).where(
            Trace.bot_id == bot_id, Trace.kind == "NO_TRADE", Trace.reason_code == "KILLED",
            Trace.created_at >= since)).all())


def is_flatten(order: Any) -> bool:
    """The system's flatten (trading.halt names it so; a rejection overwrites its reason)."""
    return "-halt-" in order.client_order_id
