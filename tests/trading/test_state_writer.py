"""The batched runner-state writer (trading/state_writer.py): one transaction for every
runner of a process, the fence row by row, kill states read with the batch, nothing lost or
written backwards. The writer is driven by hand (no thread): each `flush()` is one tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.domain.kill import KillState
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Account, Bot, RunnerState
from botwarden.trading import order_store
from botwarden.trading.order_store import FenceLost, claim_fence
from botwarden.trading.state_writer import SavedState, Seat, StateWriter
from tests.trading.kill_support import replay_settings  # noqa: F401 (fixture)
from tests.trading.runner_support import (
    first_bar_iso,
    make_bot,
    run_to_completion,
    runner_payload,
)

BAR = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def new_job(engine: Engine, account_id: str, bot_id: str) -> str:
    with write_transaction(engine) as conn:
        return job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                                    actor="test", bot_id=bot_id, payload={}, now=utcnow())


def take_over(engine: Engine, account_id: str, seat: Seat) -> str:
    """Another runner job for the seat's bot (its own ended: one active runner a bot)
    claims the bot's fence. -> its job id"""
    jobs = job_store.jobs
    with write_transaction(engine) as conn:
        conn.execute(jobs.update().where(jobs.c.id == seat.job_id).values(
            status="FAILED", completed_at=utcnow(), status_reason_code="HEARTBEAT_TIMEOUT"))
    successor = new_job(engine, account_id, seat.bot_id)
    claim_fence(engine, seat.bot_id, successor, utcnow())
    return successor


def seated(engine: Engine, writer: StateWriter, account_id: str | None = None,
           ) -> tuple[Seat, str]:
    """A bot with a runner job that claimed its fence, and its seat. -> (seat, account)"""
    account_id, bot_id = make_bot(engine, account_id=account_id)
    job_id = new_job(engine, account_id, bot_id)
    claim_fence(engine, bot_id, job_id, utcnow())
    return writer.seat(bot_id, job_id), account_id


def state_after(seat: Seat, minute: int) -> SavedState:
    bar = BAR + timedelta(minutes=minute)
    return SavedState(seat.bot_id, seat.job_id, {"bars_seen": minute}, bar,
                      Decimal("5000.25") + minute, 1.0, bar + timedelta(seconds=1))


def stored(engine: Engine, bot_id: str) -> Any:
    rs = RunnerState.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(rs).where(rs.c.bot_id == bot_id)).one()


def test_one_flush_writes_every_runners_latest_state(engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    first, account_id = seated(engine, writer)
    second, _ = seated(engine, writer, account_id)
    for minute in range(3):
        first.hand(state_after(first, minute))
    second.hand(state_after(second, 7))
    assert writer.flush() == 2
    row = stored(engine, first.bot_id)
    assert (row.state, row.last_bar_time, row.last_price, row.bar_wall_seconds) == (
        {"bars_seen": 2}, BAR + timedelta(minutes=2), Decimal("5002.25"), 1.0)
    assert row.updated_at == BAR + timedelta(minutes=2, seconds=1)  # when it was processed
    assert stored(engine, second.bot_id).state == {"bars_seen": 7}
    assert writer.flush() == 0  # nothing new: nothing written again


def test_a_fence_lost_mid_batch_stops_only_that_runner(engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    replaced, account_id = seated(engine, writer)
    kept, _ = seated(engine, writer, account_id)
    successor = take_over(engine, account_id, replaced)
    replaced.hand(state_after(replaced, 1))
    kept.hand(state_after(kept, 1))
    assert writer.flush() == 1
    assert stored(engine, replaced.bot_id).job_id == successor
    assert stored(engine, replaced.bot_id).state == {}  # the replaced runner wrote nothing
    assert stored(engine, kept.bot_id).state == {"bars_seen": 1}
    with pytest.raises(FenceLost):
        replaced.check()
    kept.check()
    with pytest.raises(FenceLost):
        replaced.save_now(state_after(replaced, 2))


def test_a_seat_whose_fence_was_taken_between_bars_learns_it_at_the_next_flush(
        engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    seat, account_id = seated(engine, writer)
    writer.flush()
    seat.check()
    take_over(engine, account_id, seat)
    writer.flush()  # nothing handed: the flush still reads who owns each hosted bot
    with pytest.raises(FenceLost):
        seat.check()


def test_a_kill_is_seen_at_the_next_flush(engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    killed, account_id = seated(engine, writer)
    switched, _ = seated(engine, writer)  # another account
    assert killed.kill_state() is None  # never read: the runner reads its own
    writer.flush()
    assert killed.kill_state() == KillState.NONE.value
    bots, accounts = Bot.__table__, Account.__table__
    with write_transaction(engine) as conn:
        conn.execute(bots.update().where(bots.c.id == killed.bot_id)
                     .values(kill_state=KillState.QUARANTINED.value))
        conn.execute(accounts.update().where(accounts.c.id == account_id)
                     .values(kill_switch_engaged=False))
        conn.execute(accounts.update().where(
            accounts.c.id == sa.select(bots.c.account_id).where(bots.c.id == switched.bot_id)
            .scalar_subquery()).values(kill_switch_engaged=True))
    assert killed.kill_state() == KillState.NONE.value  # not read yet
    killed.hand(state_after(killed, 1))
    writer.flush()
    assert killed.kill_state() == KillState.QUARANTINED.value
    assert switched.kill_state() == KillState.HARD_KILLED.value  # the account's switch


def test_the_last_state_is_written_when_a_runner_ends_cleanly_and_dropped_otherwise(
        engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    clean, account_id = seated(engine, writer)
    failed, _ = seated(engine, writer, account_id)
    clean.hand(state_after(clean, 4))
    failed.hand(state_after(failed, 4))
    clean.leave(save=True)
    failed.leave(save=False)
    assert stored(engine, clean.bot_id).state == {"bars_seen": 4}
    assert writer.flush() == 0
    assert stored(engine, failed.bot_id).state == {}


def test_ensure_saved_makes_the_previous_bar_durable_before_the_next(engine: Engine) -> None:
    writer = StateWriter(engine, background=False)
    seat, _ = seated(engine, writer)
    seat.hand(state_after(seat, 1))
    seat.ensure_saved()  # the writer has not flushed: the runner writes it itself
    assert stored(engine, seat.bot_id).state == {"bars_seen": 1}
    assert writer.flush() == 0  # taken out of the batch, not written twice
    seat.ensure_saved()  # nothing pending: nothing to do
    assert seat.save_now(state_after(seat, 2)) == KillState.NONE.value
    assert stored(engine, seat.bot_id).state == {"bars_seen": 2}


def test_a_failed_flush_keeps_its_states_for_the_next_unless_newer_came(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = StateWriter(engine, background=False)
    seat, account_id = seated(engine, writer)
    other, _ = seated(engine, writer, account_id)
    seat.hand(state_after(seat, 1))
    other.hand(state_after(other, 1))
    real = writer._write_batch

    def fail_once(*args: Any) -> Any:
        monkeypatch.setattr(writer, "_write_batch", real)
        other.hand(state_after(other, 2))  # a newer state arrives while the batch fails
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))

    monkeypatch.setattr(writer, "_write_batch", fail_once)
    assert writer.flush() == 0
    assert writer.flush() == 2
    assert stored(engine, seat.bot_id).state == {"bars_seen": 1}
    assert stored(engine, other.bot_id).state == {"bars_seen": 2}


def test_a_paced_runner_saves_its_last_bar_through_the_writer(
        engine: Engine, replay_settings: Settings) -> None:  # noqa: F811 (fixture)
    settings = replay_settings
    account_id, bot_id = make_bot(engine)
    start = datetime.fromisoformat(first_bar_iso(settings))
    end = start + timedelta(hours=2)
    # 6000x: a bar every 10 ms, paced, so its states go through the batched writer.
    payload = runner_payload(bot_id, start=start.isoformat(), end=end.isoformat(),
                             speed=6000.0)
    result = run_to_completion(engine, settings, account_id, bot_id, payload)
    assert result["ended"] == "REPLAY_EXHAUSTED" and result["bars"] > 60
    row = stored(engine, bot_id)
    assert row.last_bar_time is not None and row.last_bar_time < end
    assert row.last_bar_time >= end - timedelta(minutes=2)  # the last bar's, written at the end
    assert row.state["bars_seen"] >= result["bars"]
    assert row.bar_wall_seconds == pytest.approx(60 / 6000)
    with engine.connect() as conn:  # it traded: the orders' path ran between the saves
        assert conn.execute(sa.select(sa.func.count()).select_from(order_store.orders)
                            .where(order_store.orders.c.bot_id == bot_id)).scalar_one() > 0


def test_with_its_thread_the_writer_flushes_what_a_runner_waits_for(engine: Engine) -> None:
    writer = StateWriter(engine)  # its own thread, as in a worker process
    seat, _ = seated(engine, writer)
    seat.hand(state_after(seat, 3))
    seat.ensure_saved()  # wakes the thread and waits for its flush
    assert stored(engine, seat.bot_id).state == {"bars_seen": 3}
    assert seat.kill_state() == KillState.NONE.value  # read with that flush
    seat.hand(state_after(seat, 4))
    seat.leave(save=True)
    assert stored(engine, seat.bot_id).state == {"bars_seen": 4}
