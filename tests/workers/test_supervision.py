"""The supervisor and the timeout worker on an injectable clock: requeue with backoff,
dead letter, heartbeat timeouts, the per-bot circuit breaker and its CIRCUIT_OPEN kill."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.domain.stages import Stage
from botwarden.services import kill as kill_service
from botwarden.store import jobs as js
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, CircuitBreaker, KillEvent
from botwarden.workers.presence import register_worker
from botwarden.workers.supervisor import run_supervisor
from botwarden.workers.tasks import LoopContext
from botwarden.workers.timeouts import run_timeout_worker
from tests.workers.helpers import FakeClock, make_account, make_bot

LEASE = 30.0


def loop(fn: Any, engine: Engine, settings: Settings, clock: FakeClock) -> dict[str, Any]:
    name = "supervisor" if fn is run_supervisor else "timeout_worker"
    return fn(LoopContext(engine, settings, clock, name, None))  # type: ignore[no-any-return]


def submit(engine: Engine, clock: FakeClock, account: str, **kw: Any) -> str:
    job_type = kw.pop("job_type", JobType.BACKTEST)
    with write_transaction(engine) as conn:
        return js.create_job(conn, account_id=account, job_type=job_type, actor="test",
                             now=clock(), **kw)


def claim_one(engine: Engine, clock: FakeClock, job_type: JobType) -> js.ClaimedJob:
    with write_transaction(engine) as conn:
        [job] = js.claim_jobs(conn, owner="doomed", types=[job_type], limit=1,
                              lease_seconds=LEASE, now=clock())
    return job


def row(engine: Engine, job_id: str) -> Any:
    with engine.connect() as conn:
        return js.get_job(conn, job_id)


def lose_lease(engine: Engine, settings: Settings, clock: FakeClock, job_id: str,
               job_type: JobType = JobType.BACKTEST) -> Any:
    """Claim the job once it is due, let its holder die, and let the supervisor run."""
    due = row(engine, job_id).run_after
    if due is not None and due > clock():
        clock.advance(seconds=(due - clock()).total_seconds())
    claim_one(engine, clock, job_type)
    clock.advance(seconds=LEASE + 1)
    loop(run_supervisor, engine, settings, clock)
    return row(engine, job_id)


def test_a_lost_job_is_requeued_with_backoff_then_dead_lettered(
    engine: Engine, settings: Settings
) -> None:
    clock = FakeClock()
    job_id = submit(engine, clock, make_account(engine))
    first = lose_lease(engine, settings, clock, job_id)
    assert (first.status, first.status_reason_code, first.attempts) == ("QUEUED",
                                                                        "LEASE_EXPIRED", 1)
    # The backoff counts from the start of the lost attempt: 30 s +- 20 %.
    started = first.started_at
    assert timedelta(seconds=24) <= first.run_after - started <= timedelta(seconds=36)
    second = lose_lease(engine, settings, clock, job_id)
    assert timedelta(seconds=96) <= second.run_after - second.started_at <= timedelta(seconds=144)
    assert second.run_after > clock()
    third = lose_lease(engine, settings, clock, job_id)
    assert (third.status, third.status_reason_code, third.attempts) == (
        "FAILED", "MAX_ATTEMPTS_EXCEEDED", 3)
    assert third.completed_at == clock() and third.lease_token is None


def test_a_quiet_handler_times_out_by_its_type(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    account = make_account(engine)
    quiet, lively = submit(engine, clock, account), submit(engine, clock, account)
    runner = submit(engine, clock, account, job_type=JobType.RUNNER,
                    bot_id=make_bot(engine, account))
    with write_transaction(engine) as conn:
        held = js.claim_jobs(conn, owner="alive", types=[JobType.BACKTEST, JobType.RUNNER],
                             limit=3, lease_seconds=LEASE, now=clock())
    started = clock()
    for minutes in range(1, 32):  # the worker stays alive and renews; only `lively` beats
        clock.advance(minutes=1)
        with write_transaction(engine) as conn:
            js.renew_leases(conn, [js.Beat(j.lease, clock() if j.id == lively else started)
                                   for j in held], now=clock(), lease_seconds=LEASE)
        result = loop(run_timeout_worker, engine, settings, clock)
        if minutes == 1:  # the runner is stale after 30 s; the backtest has 30 minutes
            assert result["job_ids"] == [runner]
    assert row(engine, quiet).status == "TIMEOUT" and row(engine, lively).status == "RUNNING"
    assert row(engine, quiet).status_reason_code == "HEARTBEAT_TIMEOUT"
    assert row(engine, runner).status_reason_code == "HEARTBEAT_TIMEOUT"
    with Session(engine) as session:
        breaker = session.get(CircuitBreaker, row(engine, runner).bot_id)
        assert breaker is not None and len(breaker.failures) == 1  # a dead runner counts


def test_an_expired_lease_is_the_supervisors_not_the_timeout_workers(
    engine: Engine, settings: Settings
) -> None:
    clock = FakeClock()
    job_id = submit(engine, clock, make_account(engine))
    claim_one(engine, clock, JobType.BACKTEST)
    clock.advance(minutes=45)
    assert loop(run_timeout_worker, engine, settings, clock)["timed_out"] == 0
    assert loop(run_supervisor, engine, settings, clock)["requeued"] == 1
    assert row(engine, job_id).status == "QUEUED"


def _breaker_state(engine: Engine, bot_id: str) -> str:
    with Session(engine) as session:
        breaker = session.get(CircuitBreaker, bot_id)
        return breaker.state if breaker else "CLOSED"


def test_the_breaker_opens_after_three_lost_runners_and_half_opens(
    engine: Engine, settings: Settings
) -> None:
    clock = FakeClock()
    account = make_account(engine)
    bot_id = make_bot(engine, account, Stage.PAPER)
    job_id = submit(engine, clock, account, job_type=JobType.RUNNER, bot_id=bot_id)
    for _ in range(2):
        restarted = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
        assert restarted.status == "QUEUED" and restarted.bot_id == bot_id
    blocked = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
    opened_at = clock()
    assert clock() - blocked.created_at < timedelta(minutes=30)
    assert (blocked.status, blocked.status_reason_code) == ("BLOCKED", "CIRCUIT_OPEN")
    assert _breaker_state(engine, bot_id) == "OPEN"
    clock.advance(minutes=14)
    loop(run_supervisor, engine, settings, clock)
    assert row(engine, job_id).status == "BLOCKED"  # no automatic restart while open
    clock.advance(seconds=(opened_at + timedelta(minutes=15) - clock()).total_seconds())
    assert loop(run_supervisor, engine, settings, clock)["restarted"] == 1
    trial = row(engine, job_id)
    assert (trial.status, trial.status_reason_code) == ("QUEUED", "CIRCUIT_HALF_OPEN")
    assert _breaker_state(engine, bot_id) == "HALF_OPEN"
    again = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)  # the trial fails
    assert again.status == "BLOCKED" and _breaker_state(engine, bot_id) == "OPEN"
    with Session(engine) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None and bot.kill_state == "NONE"  # PAPER: blocked, not killed


def test_failures_spread_over_more_than_the_window_keep_it_closed(
    engine: Engine, settings: Settings
) -> None:
    clock = FakeClock()
    account = make_account(engine)
    bot_id = make_bot(engine, account)
    job_id = submit(engine, clock, account, job_type=JobType.RUNNER, bot_id=bot_id)
    for _ in range(4):
        assert lose_lease(engine, settings, clock, job_id, JobType.RUNNER).status == "QUEUED"
        clock.advance(minutes=16)
    assert _breaker_state(engine, bot_id) == "CLOSED"


@pytest.mark.parametrize("stage", [Stage.CANARY, Stage.LIVE])
def test_an_open_breaker_kills_a_real_money_bot(
    engine: Engine, settings: Settings, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    halted: list[str] = []

    class Hooks:
        def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]:
            halted.append(bot.id)
            return {"flat": True}

    monkeypatch.setattr(kill_service, "_hooks", [Hooks()])
    clock = FakeClock()
    account = make_account(engine)
    bot_id = make_bot(engine, account, stage)
    job_id = submit(engine, clock, account, job_type=JobType.RUNNER, bot_id=bot_id)
    for _ in range(3):
        last = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
    assert (last.status, last.status_reason_code) == ("FAILED", "CIRCUIT_OPEN")
    with Session(engine) as session:
        bot = session.get(Bot, bot_id)
        [event] = session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot_id)).all()
        assert bot is not None and (bot.kill_state, bot.trading_state) == ("HARD_KILLED",
                                                                          "HALTED")
        assert (event.event_type, event.state, event.trigger_code, event.actor) == (
            "KILL", "HARD_KILLED", "CIRCUIT_OPEN", "supervisor")
    assert halted == [bot_id]


def test_a_killed_bots_runner_is_not_restarted(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    account = make_account(engine)
    bot_id = make_bot(engine, account)
    job_id = submit(engine, clock, account, job_type=JobType.RUNNER, bot_id=bot_id)
    with Session(engine) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        kill_service.kill_bot(session, bot, mode=kill_service.KillMode.HARD,
                              trigger=kill_service.TriggerCode.MANUAL_KILL, reason="test",
                              actor="user:1")
        session.commit()
    lost = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
    assert (lost.status, lost.status_reason_code) == ("CANCELED", "BOT_KILLED")


def test_silent_workers_are_retired(engine: Engine, settings: Settings) -> None:
    clock = FakeClock()
    with write_transaction(engine) as conn:
        register_worker(conn, worker_id="gone", hostname="h", pid=1, job_types=[], now=clock())
    clock.advance(seconds=LEASE - 1)
    assert loop(run_supervisor, engine, settings, clock)["workers_retired"] == 0
    clock.advance(seconds=2)
    assert loop(run_supervisor, engine, settings, clock)["workers_retired"] == 1


@pytest.mark.parametrize("stage", [Stage.LIVE])
def test_a_bot_killed_by_another_process_meanwhile_is_not_killed_twice(
    engine: Engine, settings: Settings, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker opens on a bot that a person kills between the supervisor's read of its
    kill state and the supervisor's kill: the supervisor's kill reads the committed state
    under the row's lock, finds it killed, and writes no second KILL."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions take turns by BEGIN IMMEDIATE")
    clock = FakeClock()
    account = make_account(engine)
    bot_id = make_bot(engine, account, stage)
    job_id = submit(engine, clock, account, job_type=JobType.RUNNER, bot_id=bot_id)
    real_kill = kill_service.kill_bot

    def killed_meanwhile(session: Session, bot: Bot, **kw: Any) -> KillEvent:
        with Session(engine) as person:  # another connection: another process
            target = person.get(Bot, bot_id)
            assert target is not None
            real_kill(person, target, mode=kill_service.KillMode.SOFT,
                      trigger=kill_service.TriggerCode.MANUAL_KILL, reason="by hand",
                      actor="person")
            person.commit()
        return real_kill(session, bot, **kw)

    for _ in range(2):
        lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
    monkeypatch.setattr(kill_service, "kill_bot", killed_meanwhile)
    last = lose_lease(engine, settings, clock, job_id, JobType.RUNNER)
    assert last.status == "CANCELED"  # a killed bot's runner is not restarted
    with Session(engine) as session:
        events = session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot_id)).all()
        assert [(e.actor, e.state) for e in events] == [("person", "SOFT_KILLED")]
