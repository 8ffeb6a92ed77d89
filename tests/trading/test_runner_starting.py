"""Runners of one process start a few at a time (runner_job.starting); one waiting its turn
keeps beating, so a lost lease stops it there instead of after its start."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.trading import runner_job
from botwarden.workers.context import LeaseLost
from tests.trading.runner_support import make_bot, runner_context, runner_payload


def test_a_runner_waiting_to_start_beats_and_stops_when_its_lease_is_lost(
        engine: Engine, settings: Settings) -> None:
    account_id, bot_id = make_bot(engine)
    ctx = runner_context(engine, settings, account_id, bot_id, runner_payload(bot_id))
    held = [runner_job._starting.acquire(blocking=False)
            for _ in range(runner_job.STARTING_AT_ONCE)]
    assert all(held)  # every start slot taken by (pretend) runners starting
    try:
        ctx.lose_lease()
        with pytest.raises(LeaseLost), runner_job.starting(ctx):
            pytest.fail("started while every slot was taken")
    finally:
        for _ in held:
            runner_job._starting.release()
    ctx.lease_lost = False
    ctx.last_beat = long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with runner_job.starting(ctx):  # a slot free: in at once, with a beat
        assert ctx.last_beat > long_ago
    assert runner_job._starting.acquire(blocking=False)  # and the slot given back
    runner_job._starting.release()
