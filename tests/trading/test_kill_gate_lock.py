"""An intent and a kill of its bot take turns (PostgreSQL; SQLite's writers always do): a
kill that commits while an intent is being judged waits for it, so no order judged before a
kill is saved after it, and an intent judged after the kill sees the bot killed."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.trading import order_store as store
from tests.trading.runner_support import (
    NOW,
    hard_kill,
    make_bot,
    runner_context,
    runner_payload,
)


def _a_backend_waits_on_a_lock(engine: Engine, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar_one()
        if waiting:
            return True
        time.sleep(0.05)
    return False


def test_a_kill_waits_for_the_intent_being_judged(engine: Engine, settings: Settings) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions take turns by BEGIN IMMEDIATE")
    account_id, bot_id = make_bot(engine)
    ctx = runner_context(engine, settings, account_id, bot_id, runner_payload(bot_id))
    store.claim_fence(engine, bot_id, ctx.job_id, NOW)
    with engine.connect() as conn:
        with conn.begin():
            gate = store.fenced_gate(conn, bot_id, ctx.job_id)  # the intent being judged
            assert gate.kill_state == "NONE"
            killer = threading.Thread(target=hard_kill, args=(engine, bot_id))
            killer.start()
            assert _a_backend_waits_on_a_lock(engine), "the kill did not wait for the intent"
            assert killer.is_alive()
        killer.join(timeout=30)  # the intent committed: now the kill goes through
    assert not killer.is_alive()
    with engine.connect() as conn, conn.begin():
        assert store.fenced_gate(conn, bot_id, ctx.job_id).kill_state == "HARD_KILLED"
