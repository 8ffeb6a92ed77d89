"""The worker in-process: outcomes of handlers, retries with backoff on an injectable clock,
lease loss, runner capacity and graceful shutdown."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from botwarden.workers.registry import HandlerRegistry
from botwarden.workers.worker import Worker
from tests.workers.helpers import FakeClock, fast_settings, make_account, make_bot
from tests.workers.jobs_for_tests import install


def submit(engine: Engine, account: str, now: datetime, n: int = 1, **kw: Any) -> list[str]:
    job_type = kw.pop("job_type", JobType.BACKTEST)
    with write_transaction(engine) as conn:
        return [js.create_job(conn, account_id=account, actor="test", now=now,
                              job_type=job_type, **kw) for _ in range(n)]


def job(engine: Engine, job_id: str) -> tuple[Any, list[Any]]:
    with engine.connect() as conn:
        return js.get_job(conn, job_id), js.job_events(conn, job_id)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_an_always_failing_handler_is_dead_lettered_after_three_attempts(
    engine: Engine, settings: Settings
) -> None:
    clock = FakeClock()
    worker = Worker(settings, engine=engine, registry=install(HandlerRegistry()), clock=clock,
                    rng=random.Random(7))
    [job_id] = submit(engine, make_account(engine), clock(), payload={"fail_attempts": 99})
    delays = []
    for attempt in (1, 2, 3):
        assert worker.run_available() == 1
        row, _ = job(engine, job_id)
        assert row.attempts == attempt
        if attempt < 3:
            assert row.status == "QUEUED" and row.status_reason_code == "HANDLER_ERROR"
            delays.append(row.run_after - clock())
            clock.advance(seconds=delays[-1].total_seconds() - 1)
            assert worker.run_available() == 0  # still backing off
            clock.advance(seconds=1)
    row, events = job(engine, job_id)
    assert row.status == "FAILED" and row.status_reason_code == "MAX_ATTEMPTS_EXCEEDED"
    assert "planned failure on attempt 3" in row.status_reason and row.completed_at == clock()
    # jittered 30 s then 2 min (default schedule, +-20 %)
    assert timedelta(seconds=24) <= delays[0] <= timedelta(seconds=36)
    assert timedelta(seconds=96) <= delays[1] <= timedelta(seconds=144)
    assert [e.to_status for e in events] == ["QUEUED", "RUNNING", "QUEUED", "RUNNING", "QUEUED",
                                             "RUNNING", "FAILED"]


def test_outcomes_of_a_handler(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    worker = Worker(settings, engine=engine, registry=install(HandlerRegistry()), clock=clock)
    account = make_account(engine)
    ok, refused, flaky = (submit(engine, account, clock(), payload=p)[0] for p in (
        {"n": 1}, {"refuse": "DATA_UNAVAILABLE"}, {"fail_attempts": 1}))
    worker.run_available()
    assert job(engine, ok)[0].result == {"worker": worker.id, "attempt": 1, "n": 1}
    refused_row = job(engine, refused)[0]
    assert (refused_row.status, refused_row.status_reason_code) == ("FAILED", "DATA_UNAVAILABLE")
    assert refused_row.attempts == 1  # a refusal is not retried
    clock.advance(minutes=1)
    worker.run_available()
    assert job(engine, flaky)[0].status == "COMPLETED"


def test_a_handler_that_loses_its_job_is_told_to_stop(engine: Engine, settings: Settings) -> None:
    settings = fast_settings(settings)
    worker = Worker(settings, engine=engine, registry=install(HandlerRegistry()), concurrency=1)
    [job_id] = submit(engine, make_account(engine), worker.clock(), payload={"sleep": 30})
    worker.start()
    try:
        wait_for(lambda: job(engine, job_id)[0].status == "RUNNING")
        with write_transaction(engine) as conn:
            js.cancel_job(conn, job_id, account_id=None, actor="user:1", now=worker.clock())
        wait_for(lambda: not worker._contexts())  # the handler returned early
    finally:
        worker.stop(grace=1)
    row, events = job(engine, job_id)
    assert row.status == "CANCELED" and row.result is None
    assert [e.actor for e in events][-1] == "user:1"


def test_runners_do_not_take_the_short_jobs_capacity(engine: Engine, settings: Settings) -> None:
    settings = fast_settings(settings)
    account = make_account(engine)
    worker = Worker(settings, engine=engine, registry=install(HandlerRegistry()), concurrency=1,
                    runner_slots=3)
    runners = [submit(engine, account, worker.clock(), job_type=JobType.RUNNER,
                      bot_id=make_bot(engine, account))[0] for _ in range(3)]
    shorts = submit(engine, account, worker.clock(), 5)
    worker.start()
    try:
        wait_for(lambda: all(job(engine, j)[0].status == "COMPLETED" for j in shorts))
        assert all(job(engine, r)[0].status == "RUNNING" for r in runners)
        before = job(engine, runners[0])[0].last_heartbeat_at
        wait_for(lambda: job(engine, runners[0])[0].last_heartbeat_at > before)
    finally:
        worker.stop(grace=2)
    # Stopping hands every runner back at once, without spending an attempt.
    for runner in runners:
        row, events = job(engine, runner)
        assert row.status == "QUEUED" and row.status_reason_code == "WORKER_SHUTDOWN"
        assert row.attempts == 0 and row.lease_token is None
        assert events[-1].actor == worker.id


@pytest.mark.parametrize(("grace", "sleep", "outcome"), [
    (5.0, 0.5, ("COMPLETED", None, 1)),  # finishes within the grace period
    (0.2, 30.0, ("QUEUED", "WORKER_SHUTDOWN", 0)),  # released unfinished, attempt refunded
])
def test_shutdown_finishes_or_releases_short_jobs(
    engine: Engine, settings: Settings, grace: float, sleep: float, outcome: tuple[Any, ...]
) -> None:
    settings = fast_settings(settings)
    worker = Worker(settings, engine=engine, registry=install(HandlerRegistry()), concurrency=1)
    [job_id] = submit(engine, make_account(engine), worker.clock(), payload={"sleep": sleep})
    worker.start()
    wait_for(lambda: job(engine, job_id)[0].status == "RUNNING")
    worker.stop(grace=grace)
    row, _ = job(engine, job_id)
    assert (row.status, row.status_reason_code, row.attempts) == outcome
    with engine.connect() as conn:
        status = conn.exec_driver_sql(f"SELECT status FROM workers WHERE id = '{worker.id}'")
        assert status.scalar() == "STOPPED"


def test_types_without_a_handler_are_refused(engine: Engine, settings: Settings) -> None:
    with pytest.raises(ValueError, match="SWEEP"):
        Worker(settings, engine=engine, registry=install(HandlerRegistry()),
               types=[JobType.SWEEP])


def test_a_workers_postgresql_pool_holds_a_connection_per_runner_slot_up_to_a_cap() -> None:
    from botwarden.workers.worker import RUNNER_POOL_CAP, worker_engine

    settings = Settings(database_url="postgresql://botwarden@127.0.0.1:1/none")
    engines = [worker_engine(settings, 4), worker_engine(settings, 4, runner_slots=10),
               worker_engine(settings, 4, runner_slots=250)]
    try:  # sized, never connected
        assert [e.pool.size() for e in engines] == [8, 18, 8 + RUNNER_POOL_CAP]  # type: ignore[attr-defined]
    finally:
        for engine in engines:
            engine.dispose()
