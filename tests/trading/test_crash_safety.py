"""Crash safety with real processes: the runner's process is killed with SIGKILL at random
points of the order lifecycle (botwarden.trading.crashpoints), and restarted, again and
again, on one bot. After every restart's reconcile, and at the end:

- 0 duplicated orders: every order the paper broker holds is one intent of ours, in the
  same state, and the bot never holds more than its one contract;
- 0 lost intents: nothing is left PENDING or UNRESOLVED, nothing refused as unknown;
- fills applied once: ours are the broker's, fill for fill;
- our position (and realised PnL) equals the paper broker's;
- no order fills at a bar before the one its intent was decided for.

Each run is a process forked from this one (everything is imported already, so a restart
costs milliseconds), hosting the RUNNER handler on a freshly claimed job, as a worker
would after a crash. The schedule is seeded: the seed is printed, and
BOTWARDEN_CRASH_SEED=<seed> replays a failure exactly.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import traceback
from collections import Counter
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.domain.job_machine import JobReason
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.research.strategies import build_strategy
from botwarden.research.ticks import TickBars
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.trading import crashpoints
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.reconcile_service import reconcile
from botwarden.trading.runner_core import RunnerCore
from botwarden.trading.runner_job import Runner
from botwarden.workers.context import JobContext
from tests.research.jobs_support import END
from tests.trading.crash_support import Ledger, check_agreement, trades_of
from tests.trading.runner_support import (
    PARAMS,
    backtest_of,
    first_bar_iso,
    make_bot,
    runner_context,
    runner_payload,
)

DAYS = 1  # 1,380 bars: 100 crashes take ~800 of them, the last run trades the rest
SEED = int(os.environ.get("BOTWARDEN_CRASH_SEED", "20260306"))
CRASHES = {"sqlite": 100, "postgresql": 100}
# How far into a run each point may be armed (the n-th time it is reached): points met on
# every bar get a longer run than those met only when an order or a fill happens.
REACH = {crashpoints.BAR_MATCHED: 12, crashpoints.BAR_PROCESSED: 12,
         crashpoints.STATE_SAVED: 12, crashpoints.FILLS_APPLIED: 3,
         crashpoints.ORDER_PERSISTED: 3, crashpoints.ORDER_SUBMITTED: 3}
SILENCE_SECONDS = 120  # a run that says nothing for this long is hung: fail, don't wait
FORK = multiprocessing.get_context("fork")


class AnnouncingRunner(Runner):
    """The RUNNER handler, telling the test when its start (claim, reconcile, restore) is
    done and waiting for a go, so the invariants are read between reconcile and trading."""

    def __init__(self, ctx: JobContext, pipe: Connection) -> None:
        super().__init__(ctx)
        self.pipe = pipe

    def prepare(self) -> RunnerCore:
        core = super().prepare()
        self.pipe.send(("ready", self.reconciled.as_json()))
        if self.pipe.recv() != "go":
            raise RuntimeError("the test did not let the runner go on")
        return core


def run_child(ctx: JobContext, crash_at: str | None, pipe: Connection) -> None:
    ctx.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    if crash_at is None:
        os.environ.pop(crashpoints.ENV, None)
    else:
        os.environ[crashpoints.ENV] = crash_at
    try:
        pipe.send(("done", AnnouncingRunner(ctx, pipe).run()))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
        raise


def schedule(rng: random.Random, count: int) -> list[str]:
    """`count` crash points, every point about as often, in a seeded random order."""
    points = [crashpoints.POINTS[i % len(crashpoints.POINTS)] for i in range(count)]
    rng.shuffle(points)
    return [f"{p}:{rng.randint(1, REACH[p])}" for p in points]


def reclaim(engine: Engine, settings: Settings, job_id: str) -> JobContext:
    """What the supervisor and the next worker do once a worker died: its job's lease is
    given up (requeued) and the job claimed again, the same job, by another worker."""
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(job_store.jobs).where(job_store.jobs.c.id == job_id)).one()
        assert job_store.transition_observed(
            conn, row, JobStatus.QUEUED, actor="test-supervisor", now=utcnow(),
            reason_code=JobReason.LEASE_EXPIRED.value, reason="its worker was killed")
    with write_transaction(engine) as conn:
        [job] = job_store.claim_jobs(conn, owner="next-worker", types=[JobType.RUNNER],
                                     limit=1, lease_seconds=600, now=utcnow())
    assert job.id == job_id
    return JobContext(job, settings, utcnow, "next-worker", engine)


def restart(engine: Engine, ctx: JobContext, crash_at: str | None, ledger: Ledger,
            ) -> dict[str, Any]:
    """One run of the runner, in its own process, from claim to its death or its end."""
    ours, theirs = FORK.Pipe()
    process = FORK.Process(target=run_child, args=(ctx, crash_at, theirs), daemon=True)
    process.start()
    theirs.close()
    seen: dict[str, Any] = {"ready": False}
    try:
        while True:
            if not ours.poll(SILENCE_SECONDS):
                pytest.fail(f"the runner said nothing for {SILENCE_SECONDS} s ({crash_at})")
            try:
                kind, body = ours.recv()
            except EOFError:
                break  # the process is gone
            if kind == "ready":
                assert not body["killed"], f"reconcile at start quarantined the bot: {body}"
                assert not [a for a in body["actions"] if a["kind"] == "CANCEL_AT_BROKER"], (
                    f"reconcile cancelled an order of ours: {body['actions']}")
                check_agreement(engine, str(ctx.bot_id), "MES", ledger)
                seen["ready"] = True
                ours.send("go")
            elif kind == "error":
                pytest.fail(f"the runner failed ({crash_at}):\n{body}")
            else:
                seen["result"] = body
    finally:
        ours.close()
        process.join(SILENCE_SECONDS)
        if process.is_alive():
            process.kill()
    seen["exitcode"] = process.exitcode
    return seen


def load_strategy_kernel() -> None:
    """Load the strategy's compiled kernel (numba) here, once, the way the runner calls it:
    forked runs inherit it instead of each spending seconds loading it from the cache."""
    strategy = build_strategy("sma_cross", PARAMS)
    ticks = np.array([[16_000, 16_001, 15_999, 16_000]], dtype=np.int64)
    one = TickBars(np.array([0], dtype=np.int64), ticks[:, 0], ticks[:, 1], ticks[:, 2],
                   ticks[:, 3], np.array([1.0]), Decimal("0.25"))
    strategy.run(one, strategy.initial_state(), np.zeros(1, dtype=np.int64))


@pytest.fixture
def crash_settings(settings: Settings) -> Settings:
    write_synthetic(BarStore(settings.data_dir), "MES", DAYS, seed=7, end=END)
    load_strategy_kernel()
    return settings


@pytest.mark.parametrize("first, then", [
    # The bot starts flat: its first order is an entry, persisted and never sent. Sent at
    # restart, before the broker saw its decision bar again, it would fill at that bar's
    # open (a price from before the decision); it waits for the bar's replay instead.
    ("order.persisted:1", "state.saved:3"),
    # The first entry filled and the broker opened its bracket's exits; the runner died
    # before recording them. Reconcile adopts them, working or done, instead of cancelling
    # them as strangers or leaving the broker with orders we have no row for.
    ("fills.applied:1", "state.saved:3"),
])
def test_a_crash_at_a_known_hard_point_is_recovered(engine: Engine, crash_settings: Settings,
                                                    first: str, then: str) -> None:
    account_id, bot_id = make_bot(engine)
    payload = runner_payload(bot_id, start=first_bar_iso(crash_settings))
    ledger = Ledger.empty()
    ctx = runner_context(engine, crash_settings, account_id, bot_id, payload)
    assert restart(engine, ctx, first, ledger)["exitcode"] == -signal.SIGKILL
    ctx = reclaim(engine, crash_settings, ctx.job_id)
    run = restart(engine, ctx, then, ledger)
    assert run["ready"] and run["exitcode"] == -signal.SIGKILL
    figures = check_agreement(engine, bot_id, "MES", ledger)
    assert figures["entries"] >= 1 and figures["bracket_legs"] == 2 * figures["entries"]


def test_slow_sigkill_at_random_lifecycle_points_loses_and_duplicates_nothing(
        engine: Engine, crash_settings: Settings) -> None:
    rng = random.Random(SEED)
    count = CRASHES[engine.dialect.name]
    print(f"crash-safety seed {SEED} ({count} crashes on {engine.dialect.name}); "
          f"replay with BOTWARDEN_CRASH_SEED={SEED}")
    account_id, bot_id = make_bot(engine)
    payload = runner_payload(bot_id, start=first_bar_iso(crash_settings))
    ledger = Ledger.empty()
    killed_at: Counter[str] = Counter()
    started = time.perf_counter()
    ctx = runner_context(engine, crash_settings, account_id, bot_id, payload)
    for crash_at in schedule(rng, count):
        run = restart(engine, ctx, crash_at, ledger)
        assert "result" not in run, (
            f"the replay ended before the crash at {crash_at}: give the test more bars")
        assert run["exitcode"] == -signal.SIGKILL, f"{crash_at}: exit code {run['exitcode']}"
        killed_at[crash_at.split(":")[0]] += 1
        ctx = reclaim(engine, crash_settings, ctx.job_id)
    crashed_in = time.perf_counter() - started
    final = restart(engine, ctx, None, ledger)
    assert final["ready"] and final["exitcode"] == 0
    assert final["result"]["ended"] == "REPLAY_EXHAUSTED"
    # The last word: a reconcile by the system (no fence) finds nothing to do.
    broker = make_broker(engine, crash_settings, bot_id, "paper")
    manager = OrderManager(engine, bot_id=bot_id, job_id=None, broker=broker, mode="PAPER",
                           source_type="PAPER", limits=None)
    outcome = reconcile(engine, manager, "MES", actor="test").as_json()
    assert outcome["actions"] == [] and not outcome["killed"], outcome
    figures = check_agreement(engine, bot_id, "MES", ledger, final=True)
    # Crashes change nothing: the trades are the backtest's on the same bars, one for one.
    _backtest, expected = backtest_of(crash_settings)
    got = trades_of(engine, bot_id)
    want = [(t.entry_time, t.exit_time, t.side, t.qty, t.entry_price, t.exit_price, t.pnl)
            for t in expected]
    diverged = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w]
    assert not diverged and len(got) == len(want), (
        f"{len(diverged)} trades differ from the backtest, {len(got)} vs {len(want)}; "
        f"first: {diverged[:3]}")
    assert figures["entries"] > count / 2, "the bot should have traded through the crashes"
    print(f"crashes by point {dict(killed_at)}; {ledger.checks} checks, {ledger.waiting} "
          f"intents waiting for their bar at a restart; {figures}; {crashed_in:.1f} s for "
          f"the crashes, {time.perf_counter() - started:.1f} s in all")
